"""The harness's pure parts: typed outputs, the lost-write ledger, polling, env, ports."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from infra import outputs as out
from pgha_testkit import env
from pgha_testkit.ledger import Ledger, reconcile
from pgha_testkit.poll import NotYet, WaitTimeout, wait_until
from pgha_testkit.ports import free_port, free_port_block
from pgha_testkit.stack import SECRET_KEYS, StackError, outputs_from, throwaway_config

VALUES: dict[str, Any] = {
    out.API_URL: "http://127.0.0.1:8000/",
    out.WRITE_ENDPOINT: "127.0.0.1:5432",
    out.READ_ENDPOINT: "127.0.0.1:5433",
    out.REDIS_ENDPOINT: "127.0.0.1:6379",
    out.HAPROXY_STATS_URL: "http://127.0.0.1:8404/",
    out.PRIMARY: "pg-0",
    out.REPLICAS: ["pg-1", "pg-2"],
    out.SYNCHRONOUS: True,
    out.READ_FALLBACK: "primary",
    out.NETWORK: "pgha-dev",
    out.CONTAINERS: {
        "pg-0": "pgha-dev-pg-0",
        "pg-1": "pgha-dev-pg-1",
        "pg-2": "pgha-dev-pg-2",
        "api": "pgha-dev-api",
    },  # fmt: skip
    out.VOLUMES: {"pg-0": "pgha-dev-pg-0-data"},
    out.WRITE_DSN: "postgresql://pgha:p%40ss@127.0.0.1:5432/pgha",
    out.READ_DSN: "postgresql://pgha:p%40ss@127.0.0.1:5433/pgha",
    out.REDIS_URL: "redis://pgha-app:r3d1s@127.0.0.1:6379/0",
}


def test_outputs_are_typed_and_keyed_by_infra_outputs() -> None:
    o = outputs_from("dev", VALUES, with_secrets=True)
    assert o.api_url == "http://127.0.0.1:8000"
    assert o.replicas == ("pg-1", "pg-2")
    assert o.synchronous is True
    assert o.prefix == "pgha-dev"
    assert o.primary_container == "pgha-dev-pg-0"
    assert o.container_of("replica") == "pgha-dev-pg-1"
    assert o.container_of("api") == "pgha-dev-api"
    secrets = o.require_secrets()
    assert (secrets.pg_password, secrets.redis_user) == ("p@ss", "pgha-app")


def test_api_urls_are_every_haproxys_or_else_the_one_api_url() -> None:
    assert outputs_from("dev", VALUES, with_secrets=False).api_urls == ("http://127.0.0.1:8000",)
    two = {**VALUES, out.API_URLS: ["http://10.0.0.11:8000", "http://10.0.0.12:8000"]}
    assert outputs_from("dev", two, with_secrets=False).api_urls == (
        "http://10.0.0.11:8000",
        "http://10.0.0.12:8000",
    )


def test_the_redis_container_of_a_sentinel_stack_is_its_observed_primary() -> None:
    nodes = {"redis-0": "pgha-dev-redis-0", "redis-1": "pgha-dev-redis-1"}
    values = {**VALUES, out.CONTAINERS: {**VALUES[out.CONTAINERS], **nodes}}
    o = outputs_from("dev", {**values, out.REDIS_PRIMARY: "redis-1"}, with_secrets=False)
    assert o.container_of("redis") == "pgha-dev-redis-1"
    single = {**VALUES, out.CONTAINERS: {**VALUES[out.CONTAINERS], "redis": "pgha-dev-redis"}}
    assert outputs_from("dev", single, with_secrets=False).container_of("redis") == "pgha-dev-redis"


def test_outputs_without_secrets_hold_no_password() -> None:
    o = outputs_from("dev", VALUES, with_secrets=False)
    assert o.secrets is None
    with pytest.raises(StackError):
        o.require_secrets()


def test_outputs_of_an_undeployed_stack_name_what_is_missing() -> None:
    with pytest.raises(StackError, match=out.CONTAINERS):
        outputs_from("dev", {**VALUES, out.CONTAINERS: {}}, with_secrets=False)


def test_outputs_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(StackError, match=out.REPLICAS):
        outputs_from("dev", {**VALUES, out.REPLICAS: [1, 2]}, with_secrets=False)


def test_reconcile_finds_lost_duplicated_indeterminate_and_unknown_rows() -> None:
    attempted = ["t-w0-0", "t-w0-1", "t-w0-2", "t-w1-0", "t-w1-1"]
    acked = {"t-w0-0": 10, "t-w0-1": 11, "t-w1-0": 13}
    rows = [(10, "t-w0-0"), (99, "t-w0-1"), (12, "t-w0-2"), (14, "t-w1-0"), (15, "t-w1-0"),
            (16, "t-x")]  # fmt: skip
    check = reconcile(attempted, acked, rows)
    # t-w0-1 is there under another id and t-w1-0 not under 13: both lost.
    assert (check.lost, check.lost_names) == (2, ["t-w0-1", "t-w1-0"])
    assert check.duplicated == 1
    # t-w0-2 failed for the client but committed; t-w1-1 failed and did not.
    assert check.indeterminate_committed == 1
    assert (check.acked, check.attempted) == (3, 5)
    assert check.unknown_rows == 1
    assert list(check.as_dict()) == [
        "acked",
        "attempted",
        "lost",
        "lost_names",
        "duplicated",
        "indeterminate_committed",
        "unknown_rows",
    ]


def test_a_ledger_with_every_write_present_loses_nothing() -> None:
    ledger = Ledger()
    for i in range(3):
        ledger.attempt(f"t-{i}")
        ledger.ack(f"t-{i}", i)
    attempted, acked = ledger.snapshot()
    assert reconcile(attempted, acked, [(i, f"t-{i}") for i in range(3)]).lost == 0
    assert ledger.acked_ids() == [0, 1, 2]
    assert len(ledger.ack_times) == 3


def test_wait_until_returns_once_the_check_holds() -> None:
    calls = iter([False, False, True])
    assert wait_until(lambda: next(calls), 5, "third call", interval=0.01) < 5


def test_wait_until_times_out_naming_the_last_reason() -> None:
    def never() -> bool:
        raise NotYet("pg-1 not streaming")

    with pytest.raises(WaitTimeout, match="waiting for replicas.*pg-1 not streaming"):
        wait_until(never, 0.05, "replicas", interval=0.01)


def test_pulumi_env_matches_env_sh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "")
    monkeypatch.setenv("PULUMI_SKIP_UPDATE_CHECK", "false")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    e = env.pulumi_env()
    assert e["PULUMI_BACKEND_URL"] == f"file://{env.ROOT}/.pulumi-state"
    # Empty counts as unset, as with ${VAR:-default}; a set value wins.
    assert e["PULUMI_CONFIG_PASSPHRASE"] == "pgha-dev-stack-only"
    assert e["PULUMI_SKIP_UPDATE_CHECK"] == "false"
    assert e["PATH"].startswith(f"{env.ROOT}/.tools/bin:{env.ROOT}/.venv/bin:")
    assert "PYTHONPATH" not in e


def test_throwaway_config_gives_a_port_block_and_secret_passwords() -> None:
    config = throwaway_config(21000, ["pg-0", "pg-1"])
    assert config["pgha:apiPort"].value == "21000"
    assert config["pgha:statsPort"].value == "21004"
    assert config["pgha:nodes"].value == '["pg-0", "pg-1"]'
    assert all(config[f"pgha:{k}"].secret for k in SECRET_KEYS)
    assert len({config[f"pgha:{k}"].value for k in SECRET_KEYS}) == len(SECRET_KEYS)


def test_free_port_block_is_bindable() -> None:
    base = free_port_block(5)
    assert base % 10 == 0
    for port in range(base, base + 5):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    assert free_port() > 0
