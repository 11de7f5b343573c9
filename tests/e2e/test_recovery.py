"""Once a failed dependency is healthy again, the API serves within 2 s, whatever the traffic
(issue 11), on the deployed stack.

Each scenario stops containers through the Docker API with no traffic, starts them, waits
until Docker reports them healthy, waits 2 s more, then sends ONE request per path that
needs them: it must succeed. 2 s outages are blips no request sees; 30 s outages (one for
the databases and Redis together, one for HAProxy, to keep the run short) are seen by one
request first, and outlast any reconnect backoff. Each test restores what it broke.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import httpx
import pytest
from docker.models.containers import Container

from pgha_testkit.deployment import Deployment, record
from pgha_testkit.poll import NotYet, wait_until

RECOVERY_GOAL_S = 2.0
HEALTHY_TIMEOUT_S = 120.0
PRODUCT = {"name": "recovery", "price": "1.00", "stock": 1}


def healthy(container: Container) -> bool:
    container.reload()
    state = container.attrs["State"]
    status = (state.get("Health") or {}).get("Status")
    if state["Status"] != "running" or status != "healthy":
        raise NotYet(f"{container.name}: {state['Status']}/{status}")
    return True


@contextmanager
def stopped(deployment: Deployment, roles: Sequence[str]) -> Iterator[list[Container]]:
    """Stops the containers; on exit starts them and waits until Docker calls them healthy.

    Also on failure, so a broken expectation never leaves the stack down for later tests.
    """
    containers = [deployment.container(role) for role in roles]
    for c in containers:
        c.stop()
    try:
        yield containers
    finally:
        for c in containers:
            c.start()
        started = time.monotonic()
        for c in containers:
            wait_until(lambda c=c: healthy(c), HEALTHY_TIMEOUT_S, f"{c.name} healthy", interval=0.1)
        record(f"recovery.healthy_after_start_s.{'+'.join(roles)}", time.monotonic() - started)


def roles_of(deployment: Deployment, dependency: str) -> list[str]:
    """The containers to stop to take `dependency` away: every replica, since with three
    nodes the others would go on serving reads."""
    if dependency == "replica":
        return list(deployment.replicas)
    if dependency == "primary":
        return [deployment.primary]
    return [dependency]  # redis, haproxy


def cached_product(deployment: Deployment, http: httpx.Client) -> int:
    pid = deployment.write(http, "recovery cached")
    wait_until(lambda: http.get(f"/products/{pid}").headers["X-Cache"] == "HIT", 10, "cached")
    return pid


# Per dependency: the requests that need it, each returning why it failed ("" = served).
Check = Callable[[httpx.Client], str]


def unreachable(check: Check) -> Check:
    # Clients reach the API through HAProxy too: with HAProxy down a request cannot even
    # connect, which is a failure like a 503.
    def guarded(http: httpx.Client) -> str:
        try:
            return check(http)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"

    return guarded


@unreachable
def read_from_replica(http: httpx.Client) -> str:
    # Lists are never cached: this always goes through HAProxy's read port.
    res = http.get("/products", params={"limit": 1})
    if res.status_code == 200 and res.headers["X-Read-Source"] == "replica":
        return ""
    return f"GET /products: {res.status_code} {res.headers.get('X-Read-Source')} {res.text[:200]}"


@unreachable
def write_to_primary(http: httpx.Client) -> str:
    res = http.post("/products", json=PRODUCT)
    return "" if res.status_code == 201 else f"POST /products: {res.status_code} {res.text[:200]}"


def cache_used(pid: int) -> Check:
    @unreachable
    def check(http: httpx.Client) -> str:
        res = http.get(f"/products/{pid}")
        if res.status_code == 200 and res.headers["X-Cache"] in ("HIT", "MISS"):
            return ""
        return f"GET /products/{pid}: {res.status_code} X-Cache {res.headers.get('X-Cache')}"

    return check


def checks_for(dependency: str, deployment: Deployment, http: httpx.Client) -> list[Check]:
    if dependency == "replica":
        return [read_from_replica]
    if dependency == "primary":
        return [write_to_primary]
    if dependency == "redis":
        return [cache_used(cached_product(deployment, http))]
    assert dependency == "haproxy"
    return [read_from_replica, write_to_primary]


def settle(deployment: Deployment) -> None:
    """Back to the state every other test expects: replicas streaming, the API ready."""
    deployment.wait_streaming()
    with deployment.client() as http:
        wait_until(lambda: http.get("/ready").status_code == 200, 60, "API ready")


@pytest.mark.parametrize("dependency", ["replica", "primary", "redis", "haproxy"])
def test_a_2s_blip_nobody_saw_is_forgotten_2s_after_the_container_is_healthy(
    deployment: Deployment, dependency: str
) -> None:
    with deployment.client() as http:
        checks = checks_for(dependency, deployment, http)
        assert [check(http) for check in checks] == [""] * len(checks)
        with stopped(deployment, roles_of(deployment, dependency)):
            time.sleep(2)
        time.sleep(RECOVERY_GOAL_S)
        assert [check(http) for check in checks] == [""] * len(checks)
    settle(deployment)


@pytest.mark.slow
def test_the_databases_and_redis_are_used_2s_after_a_30s_outage(deployment: Deployment) -> None:
    with deployment.client() as http:
        checks = [read_from_replica, write_to_primary, cache_used(cached_product(deployment, http))]
        roles = [deployment.primary, *deployment.replicas, "redis"]
        with stopped(deployment, roles):
            # One request sees the outage of each path, then nothing for 30 s.
            assert all(check(http) for check in checks)
            time.sleep(30)
        time.sleep(RECOVERY_GOAL_S)
        assert [check(http) for check in checks] == ["", "", ""]
    settle(deployment)


@pytest.mark.slow
def test_both_pools_are_used_2s_after_a_30s_haproxy_outage(deployment: Deployment) -> None:
    with deployment.client() as http:
        checks = [read_from_replica, write_to_primary]
        with stopped(deployment, ["haproxy"]):
            assert all(check(http) for check in checks)
            time.sleep(30)
        time.sleep(RECOVERY_GOAL_S)
        assert [check(http) for check in checks] == ["", ""]
    settle(deployment)


def test_after_a_quiet_replica_blip_reads_survive_a_primary_stop(deployment: Deployment) -> None:
    """The lab sequence of issue 11: a replica blip, ~8 s with no traffic, then the primary
    stops; a product written just before is served, from the replica."""
    with stopped(deployment, list(deployment.replicas)):
        time.sleep(2)
    time.sleep(8)
    with deployment.client() as http:
        pid = deployment.write(http, "written before the primary stops")
        query = f"select count(*) from pgha.products where id = {pid}"
        for node in deployment.replicas:
            wait_until(lambda n=node: deployment.sql(n, query) == "1", 10, f"row on {node}")
        with stopped(deployment, [deployment.primary]):
            got = http.get(f"/products/{pid}")
            assert got.status_code == 200, got.text
            assert got.headers["X-Read-Source"] == "replica"
            assert got.json()["id"] == pid
    settle(deployment)
