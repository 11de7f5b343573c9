"""The miss and write anchors: same SQL and pool settings as the API, and DSN rewriting."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import SecretStr

from app.config import Settings
from app.db import sql as api_sql
from bench.perf import dbapp
from bench.perf.anchors import direct_dsn


def test_the_anchor_runs_the_apis_statements() -> None:
    assert dbapp.READ_ONE == api_sql.READ_ONE
    assert dbapp.UPDATE == api_sql.UPDATE


def test_the_anchor_inserts_the_apis_product_columns() -> None:
    # The API's INSERT may carry more than the product (an idempotency key): what is
    # measured is what it adds to the plain INSERT of the same row, returning the same.
    head, _, returning = dbapp.INSERT.strip().rpartition("\n")
    assert api_sql.INSERT.strip().startswith(head.split(") VALUES")[0])
    assert api_sql.INSERT.strip().endswith(returning)


def test_the_anchor_pool_defaults_are_the_apis() -> None:
    s = Settings(
        write_dsn=SecretStr("postgresql://w"),
        read_dsn=SecretStr("postgresql://r"),
        redis_url=SecretStr("redis://x"),
    )
    env: dict[str, str] = {}
    assert int(dbapp.setting(env, "PGHA_POOL_MIN")) == s.pool_min
    assert int(dbapp.setting(env, "PGHA_POOL_MAX")) == s.pool_max
    assert dbapp.setting(env, "PGHA_POOL_TIMEOUT_SECONDS") == s.pool_timeout_seconds
    assert (
        dbapp.setting(env, "PGHA_POOL_RECONNECT_TIMEOUT_SECONDS")
        == s.pool_reconnect_timeout_seconds
    )
    assert dbapp.pool_kwargs(env)["connect_timeout"] == s.connect_timeout_param


def test_the_anchor_takes_pool_settings_from_the_api_env() -> None:
    env = {"PGHA_POOL_MAX": "4", "PGHA_DB_CONNECT_TIMEOUT_SECONDS": "5"}
    assert dbapp.setting(env, "PGHA_POOL_MAX") == 4
    assert dbapp.pool_kwargs(env)["connect_timeout"] == 5
    assert dbapp.pool_kwargs(env)["autocommit"] is True


def test_row_json_and_body_params() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert dbapp.row_json((7, "n", None, Decimal("9.90"), 3, 2, at)) == {
        "id": 7,
        "name": "n",
        "description": None,
        "price": "9.90",
        "stock": 3,
        "version": 2,
        "updated_at": "2026-01-01T00:00:00+00:00",
    }
    assert dbapp.body_params({"name": "n", "price": "1.05", "stock": 4}) == (
        "n",
        None,
        Decimal("1.05"),
        4,
    )


def test_direct_dsn_replaces_only_host_and_port() -> None:
    dsn = "postgresql://pgha:s3cr%40t@haproxy:5432/pgha?sslmode=disable"
    assert (
        direct_dsn(dsn, "pg-0", 5432) == "postgresql://pgha:s3cr%40t@pg-0:5432/pgha?sslmode=disable"
    )
    assert (
        direct_dsn("postgresql://haproxy:5433/pgha", "pg-1", 5432) == "postgresql://pg-1:5432/pgha"
    )
