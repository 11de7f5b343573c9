"""Two API hosts: an HAProxy and API instances on host 1 and on host 2, one cluster behind.

The session stack is updated to `multihost.two_proxies` (host 1's HAProxy and API stay;
host 2 gains its own; Redis moves to host 3). Each endpoint must take writes and serve
MISS then HIT reads from the one shared cache; then the API host of the synchronous
standby (the leader on host 3) is killed whole, and the other's endpoint must go on
serving reads and writes under load, with no acknowledged write lost, while a client
given both addresses (the dead one first) reaches the live one on its own. Runs after
the other modules of this directory (file order), since it changes the session's layout.
Gaps without a 2xx answer go to bench/results/e2e-measurements.jsonl.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from infra import outputs as out
from pgha_testkit import hosts, multihost, patroni
from pgha_testkit.deployment import Deployment, miss_then_hit, record
from pgha_testkit.ledger import Ledger, check
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import wait_until


@pytest.fixture(scope="module")
def two(deployment: Deployment, bed: list[hosts.TestHost]) -> Iterator[Deployment]:
    patroni.wait_whole(deployment)
    deployment.up(placement=json.dumps(multihost.two_proxies(bed)))
    yield deployment


def url_of(deployment: Deployment, host: hosts.TestHost) -> str:
    return str(deployment.outputs[out.PROXY_ENDPOINTS][host.name][out.API_URL])


def test_each_api_host_runs_its_own_haproxy_and_instances(
    two: Deployment, bed: list[hosts.TestHost]
) -> None:
    assert two.api_urls == [url_of(two, bed[0]), url_of(two, bed[1])]
    assert two.api_urls[0] == two.api
    second = [r for r in two.outputs[out.CONTAINERS] if r.endswith(f"-{bed[1].name}")]
    second += [r for r in two.outputs[out.CONTAINERS] if f"-{bed[1].name}-" in r]
    assert sorted(second) == sorted(
        [f"haproxy-{bed[1].name}", f"api-{bed[1].name}-1", f"api-{bed[1].name}-2"]
    )
    for role in second:
        assert two.host_of(role) == bed[1].name
        assert two.container(role).status == "running"


def test_both_endpoints_take_writes_and_share_one_cache(two: Deployment) -> None:
    patroni.wait_whole(two)
    first, second = two.api_urls
    for url in (first, second):
        with httpx.Client(base_url=url, timeout=10) as http:
            miss_then_hit(http, two.write(http, f"via {url}"))
    # A product written through one endpoint and cached through the other is a HIT there.
    with httpx.Client(base_url=first, timeout=10) as a, httpx.Client(base_url=second) as b:
        pid = two.write(a, "written through the first")
        assert b.get(f"/products/{pid}").headers["x-cache"] == "MISS"
        assert a.get(f"/products/{pid}").headers["x-cache"] == "HIT"


def longest_gap(load: Load, kind: str, since: float) -> float:
    """Longest time after `since` without a 2xx of `kind` ending, up to the last one."""
    ends = sorted(e.end for e in load.of_kind(kind) if e.ok and e.start > since)
    marks = [since, *ends]
    return max(b - a for a, b in zip(marks, marks[1:], strict=False)) if ends else float("inf")


def lead_from(deployment: Deployment, host: str) -> str:
    """Switches over until a node on `host` leads; the leader. In synchronous mode only the
    synchronous standby may take over, so getting there can take two switchovers."""
    for _ in range(3):
        leader = patroni.wait_whole(deployment)
        if deployment.host_of(leader) == host:
            return leader
        sync = patroni.wait_sync_standby(deployment)
        body = {"leader": leader, "candidate": sync}
        status, text = patroni.request(deployment, sync, "POST", "/switchover", body)
        assert status == 200, (status, text)
        patroni.wait_leader(deployment, 60, not_=leader)
    raise AssertionError(f"no node on {host} took over in three switchovers")


def test_with_one_api_host_dead_the_other_serves_reads_and_writes(
    two: Deployment, bed: list[hosts.TestHost]
) -> None:
    # The leader's own failure is test_host_failure's: the leader goes to host 3, and the
    # victim is the API host of the synchronous standby, the harder case: its loss holds
    # every commit until Patroni names the other replica the standby.
    leader = lead_from(two, bed[2].name)
    sync = patroni.wait_sync_standby(two)
    victim = next(h for h in bed[:2] if h.name == two.host_of(sync))
    survivor = next(h for h in bed[:2] if h is not victim)
    roles = {str(m["name"]): str(m.get("role")) for m in patroni.members(two)}
    on_victim = {n: roles.get(n) for n in patroni.pg_nodes(two) if two.host_of(n) == victim.name}
    urls = [url_of(two, victim), url_of(two, survivor)]
    ledger = Ledger()
    tag = f"proxyhost-{time.time_ns()}"
    with Load(urls[1], tag, LoadSpec(writers=2, readers=2), ledger=ledger) as load:
        wait_until(lambda: len(ledger.acked_ids()) >= 20, 30, "writes before the failure")
        killed = time.monotonic()
        hosts.kill(victim)
        acked = len(ledger.acked_ids())
        wait_until(lambda: len(ledger.acked_ids()) >= acked + 40, 60, "writes after the kill")
        wait_until(
            lambda: sum(e.ok for e in load.of_kind("read") if e.start > killed) >= 40,
            60,
            "reads after the kill",
        )
        # A client given both addresses, the dead one first, as DNS may hand them out.
        created = multihost.request_any(
            urls,
            "POST",
            "/products",
            json={"name": f"{tag}-any", "price": "1.00", "stock": 1},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        reads = [multihost.request_any(urls, "GET", f"/products/{pid}") for _ in range(2)]
    gaps = {kind: round(longest_gap(load, kind, killed), 2) for kind in ("read", "write")}
    failed = {k: sum(not e.ok for e in load.of_kind(k) if e.start > killed) for k in gaps}
    record("multihost_proxy_host_failure_longest_gap_seconds", gaps)
    record("multihost_proxy_host_failure_failed_requests", failed)
    record("multihost_proxy_host_failure_victim_roles", on_victim)
    assert [r.headers["x-cache"] for r in reads] == ["MISS", "HIT"]
    new_leader = patroni.leader(two)
    result = check(ledger, two.container_name(new_leader), tag, client=two.client_for(new_leader))
    assert result.lost == 0, result.lost_names
    assert gaps["read"] < 10 and gaps["write"] < 20, gaps
    assert new_leader == leader

    hosts.start(victim)
    patroni.wait_whole(two, timeout=180)
    with httpx.Client(base_url=urls[0], timeout=10) as http:
        wait_until(lambda: http.get("/ready").status_code == 200, 120, f"{victim.name}'s API again")
        miss_then_hit(http, two.write(http, f"{victim.name} back"))
