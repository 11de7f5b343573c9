"""The lab's resilience scenarios on the deployed stack: Redis, a replica, the primary down.

Faults are real: containers are stopped and started through the Docker API.
Each test restores what it broke and waits until the stack is whole again.
"""

from __future__ import annotations

import time

from pgha_testkit.deployment import Deployment
from pgha_testkit.poll import wait_until


def test_redis_down_reads_bypass_the_cache_and_writes_succeed(deployment: Deployment) -> None:
    redis = deployment.container("redis")
    with deployment.client() as http:
        pid = deployment.write(http, "before redis stops")
        redis.stop()
        try:
            got = http.get(f"/products/{pid}")
            assert got.status_code == 200
            assert got.headers["X-Cache"] == "BYPASS"
            assert got.headers["X-Read-Source"] in ("replica", "primary")
            assert (
                http.put(
                    f"/products/{pid}", json={"name": "while redis is down", "price": 2, "stock": 2}
                ).status_code
                == 200
            )
            assert http.get(f"/products/{pid}").json()["name"] == "while redis is down"
        finally:
            redis.start()
        wait_until(lambda: http.get(f"/products/{pid}").headers["X-Cache"] == "HIT", 30, "caching")
        assert http.get(f"/products/{pid}").json()["name"] == "while redis is down"


def replicated_uncached(deployment: Deployment, name: str) -> int:
    """A product on every replica that the API has never read, so no cache hides a fault."""
    with deployment.client() as http:
        pid = deployment.write(http, name)
    query = f"select count(*) from pgha.products where id = {pid}"
    for node in deployment.replicas:
        wait_until(lambda n=node: deployment.sql(n, query) == "1", 10, f"row on {node}")
    return pid


def test_replica_down_reads_fail_clearly_in_strict_mode(deployment: Deployment) -> None:
    pid = replicated_uncached(deployment, "strict read")
    with deployment.stopped(deployment.replicas), deployment.client() as http:
        wait_until(lambda: http.get("/products?limit=1").status_code == 503, 10, "list 503")
        listed = http.get("/products?limit=1")
        assert listed.json()["error"] == "replica_unavailable"
        got = http.get(f"/products/{pid}")
        assert got.status_code == 503
        assert got.json()["error"] == "replica_unavailable"
        created = http.post("/products", json={"name": "w", "price": 1, "stock": 1})
        assert created.status_code == 201
    deployment.wait_streaming()


def test_replica_down_reads_fall_back_to_the_primary_when_configured(
    deployment: Deployment,
) -> None:
    deployment.up(readFallback="primary")
    try:
        with deployment.client() as http:
            wait_until(lambda: http.get("/ready").status_code == 200, 30, "API ready")
        pid = replicated_uncached(deployment, "fallback read")
        with deployment.stopped(deployment.replicas), deployment.client() as http:
            wait_until(
                lambda: http.get("/products?limit=1").headers.get("X-Read-Source") == "primary",
                10,
                "list reads from the primary",
            )
            got = http.get(f"/products/{pid}")
        assert got.status_code == 200
        assert got.headers["X-Read-Source"] == "primary"
    finally:
        deployment.up(readFallback="none")
    deployment.wait_streaming()


def test_primary_down_writes_fail_fast_and_reads_still_work(deployment: Deployment) -> None:
    primary = deployment.container(deployment.primary)
    with deployment.client(timeout=10) as http:
        pid = deployment.write(http, "read while the primary is down")
        wait_until(lambda: http.get(f"/products/{pid}").status_code == 200, 10, "replicated")
        primary.stop()
        try:
            started = time.monotonic()
            res = http.post("/products", json={"name": "no primary", "price": 1, "stock": 1})
            elapsed = time.monotonic() - started
            assert res.status_code == 503
            assert res.json()["error"] == "primary_unavailable"
            assert elapsed < 2.0  # the API's contract: writes fail fast
            assert http.get(f"/products/{pid}").status_code == 200
        finally:
            primary.start()
        wait_until(
            lambda: (
                http.post("/products", json={"name": "back", "price": 1, "stock": 1}).status_code
                == 201
            ),
            60,
            "writes after the primary restarts",
        )
    deployment.wait_streaming()
