"""Dependency outages: Redis, the replica, or the primary down, and recovery without restart."""

from __future__ import annotations

import time
from typing import Any

import httpx
import redis

from .conftest import Faults, Stack, make_product, metric
from .servers import ApiProcess, wait_until

WRITE_BODY = {"name": "during outage", "price": "3.00", "stock": 3}


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error
    assert response.json()["detail"]


def test_redis_down_reads_bypass_cache_and_writes_succeed(
    client: httpx.Client, faults: Faults, product: dict[str, Any]
) -> None:
    pid = product["id"]
    client.get(f"/products/{pid}")
    bypass_before = metric(client, "pgha_cache_requests_total", result="bypass")
    errors_before = metric(client, "pgha_backend_errors_total", dependency="redis")

    faults.stop_redis()
    read = client.get(f"/products/{pid}")
    assert read.status_code == 200
    assert read.headers["x-cache"] == "BYPASS"
    assert read.headers["x-read-source"] in ("replica", "primary")
    assert client.get(f"/products/{pid}").headers["x-cache"] == "BYPASS"

    updated = client.put(f"/products/{pid}", json=WRITE_BODY)
    assert updated.status_code == 200
    assert client.post("/products", json=WRITE_BODY).status_code == 201
    assert client.get(f"/products/{pid}").json()["version"] == 2

    ready = client.get("/ready")
    assert ready.status_code == 200  # degraded, still serving
    assert ready.json()["checks"]["redis"]["ok"] is False
    assert "redis" in ready.json()["down"]
    assert metric(client, "pgha_cache_requests_total", result="bypass") >= bypass_before + 3
    assert metric(client, "pgha_backend_errors_total", dependency="redis") > errors_before
    assert metric(client, "pgha_cache_invalidation_failures_total") >= 1

    faults.start_redis()

    def cache_serves_again() -> bool:
        return client.get(f"/products/{pid}").headers["x-cache"] == "HIT"

    wait_until(cache_serves_again, 15, 0.1, "cache hits after redis restart")
    assert client.get(f"/products/{pid}").json()["version"] == 2


def test_replica_down_is_503_by_default_and_served_by_primary_with_fallback(
    client: httpx.Client,
    fallback_client: httpx.Client,
    faults: Faults,
    stack: Stack,
    rds: redis.Redis,
) -> None:
    product = make_product(client, name="replica outage")
    pid = product["id"]
    stack.cluster.wait_caught_up()

    faults.stop_replica()
    rds.delete(f"product:{pid}")
    assert_error(client.get(f"/products/{pid}"), 503, "replica_unavailable")
    assert_error(client.get("/products"), 503, "replica_unavailable")
    assert client.put(f"/products/{pid}", json=WRITE_BODY).status_code == 200

    fallback = fallback_client.get(f"/products/{pid}")
    assert fallback.status_code == 200
    assert fallback.headers["x-read-source"] == "primary"
    assert fallback.json()["version"] == 2
    listed = fallback_client.get("/products", params={"after": pid - 1, "limit": 1})
    assert listed.status_code == 200
    assert listed.headers["x-read-source"] == "primary"
    assert listed.json()["items"][0]["id"] == pid

    not_ready = client.get("/ready")
    assert not_ready.status_code == 503
    assert not_ready.json()["error"] == "not_ready"
    assert not_ready.json()["down"] == ["read"]
    assert not_ready.json()["checks"]["write"]["ok"] is True
    fallback_ready = fallback_client.get("/ready")
    assert fallback_ready.status_code == 200
    assert fallback_ready.json()["checks"]["read"]["fallback"] == "primary"

    faults.start_replica()
    stack.cluster.wait_caught_up()
    rds.delete(f"product:{pid}")

    def replica_serves_again() -> bool:
        response = client.get(f"/products/{pid}")
        return response.status_code == 200 and response.headers["x-read-source"] == "replica"

    wait_until(replica_serves_again, 20, 0.1, "reads from the restarted replica")


def test_primary_down_writes_fail_fast_and_reads_continue(
    client: httpx.Client, faults: Faults, stack: Stack, rds: redis.Redis
) -> None:
    product = make_product(client, name="primary outage")
    victim = make_product(client, name="not deleted")
    pid = product["id"]
    stack.cluster.wait_caught_up()

    faults.stop_primary()
    attempts = [
        lambda: client.post("/products", json=WRITE_BODY),
        lambda: client.put(f"/products/{pid}", json=WRITE_BODY),
        lambda: client.delete(f"/products/{victim['id']}"),
        lambda: client.put(f"/products/{pid}", json=WRITE_BODY, headers={"If-Match": "1"}),
    ]
    for attempt in attempts:
        started = time.monotonic()
        response = attempt()
        elapsed = time.monotonic() - started
        assert_error(response, 503, "primary_unavailable")
        assert elapsed < 2.0, f"write took {elapsed:.2f}s to fail"

    rds.delete(f"product:{pid}")
    read = client.get(f"/products/{pid}")
    assert read.status_code == 200
    assert read.headers["x-read-source"] == "replica"
    assert read.json()["version"] == 1
    assert client.get("/products", params={"after": pid - 1}).status_code == 200

    not_ready = client.get("/ready")
    assert not_ready.status_code == 503
    assert not_ready.json()["down"] == ["write"]

    faults.start_primary()

    def writes_work_again() -> bool:
        return client.put(f"/products/{pid}", json=WRITE_BODY).status_code == 200

    wait_until(writes_work_again, 20, 0.2, "writes after the primary restarted")
    assert client.get(f"/products/{pid}").json()["name"] == WRITE_BODY["name"]
    assert client.get(f"/products/{victim['id']}").status_code == 200


def test_write_endpoint_pointing_at_a_standby_is_primary_unavailable(
    stack: Stack, client: httpx.Client
) -> None:
    existing = make_product(client, name="readable")
    stack.cluster.wait_caught_up()
    env = stack.api_env(PGHA_WRITE_DSN=stack.cluster.replica.dsn())
    with (
        ApiProcess("standby-writes", stack.base, env).running() as proc,
        httpx.Client(base_url=proc.url, timeout=10) as c,
    ):
        assert c.get("/health").status_code == 200
        assert_error(c.post("/products", json=WRITE_BODY), 503, "primary_unavailable")
        assert "read-only" in c.post("/products", json=WRITE_BODY).json()["detail"]
        ready = c.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["write"]["server"] == "replica"
        assert c.get(f"/products/{existing['id']}").status_code == 200


def test_api_starts_with_primary_down_and_creates_schema_later(
    stack: Stack, faults: Faults
) -> None:
    primary = stack.cluster.primary
    primary.sql("DROP DATABASE IF EXISTS pgha_late")
    primary.sql("CREATE DATABASE pgha_late OWNER pgha")
    # Read DSN on the primary too: the API must label those reads "primary", truthfully.
    env = stack.api_env(
        PGHA_WRITE_DSN=primary.dsn("pgha_late"), PGHA_READ_DSN=primary.dsn("pgha_late")
    )
    faults.stop_primary()
    with (
        ApiProcess("late-schema", stack.base, env).running() as proc,
        httpx.Client(base_url=proc.url, timeout=10) as c,
    ):
        assert c.get("/health").status_code == 200
        ready = c.get("/ready")
        assert ready.status_code == 503
        assert set(ready.json()["down"]) >= {"write", "read"}
        assert_error(c.post("/products", json=WRITE_BODY), 503, "primary_unavailable")

        faults.start_primary()
        wait_until(lambda: c.get("/ready").status_code == 200, 20, 0.2, "late api ready")
        created = c.post("/products", json=WRITE_BODY)
        assert created.status_code == 201
        read = c.get(f"/products/{created.json()['id']}")
        assert read.status_code == 200
        assert read.headers["x-read-source"] == "primary"
