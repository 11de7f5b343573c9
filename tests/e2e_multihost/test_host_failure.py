"""A host failure: the Docker host that holds the leader dies, and the cluster goes on.

The whole Docker-in-Docker container of the leader's host is killed (not stopped: a
`docker stop` would let its dockerd stop Patroni cleanly, which hands the lock over in
about a second and is a planned shutdown, not a failure), so its PostgreSQL node and
its etcd member vanish together. Under two writers through the API, in synchronous
mode, a node on another host must take over, writes must resume, no write the API
acknowledged may be lost, and when the host comes back its node must rejoin as a
replica. The RTO (kill -> first acknowledged write sent after it) goes to
bench/results/e2e-measurements.jsonl as `multihost_host_failure_rto_seconds`.
"""

from __future__ import annotations

import os
import time

import pytest

from pgha_testkit import hosts, patroni
from pgha_testkit.deployment import Deployment, log, record
from pgha_testkit.ledger import Ledger, check
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import NotYet, wait_until

# Host failures per run: 1 keeps CI lean; PGHA_MULTIHOST_KILLS=3 gives the README's median.
KILLS = int(os.environ.get("PGHA_MULTIHOST_KILLS", "1"))


def lead_off(deployment: Deployment, host: str) -> str:
    """Moves the leader off `host` (the API's host must survive the failure); the leader."""
    leader = patroni.wait_whole(deployment)
    if deployment.host_of(leader) != host:
        return leader
    target = next(n for n in patroni.pg_nodes(deployment) if deployment.host_of(n) != host)
    status, body = patroni.request(
        deployment, target, "POST", "/switchover", {"leader": leader, "candidate": target}
    )
    assert status == 200, body
    patroni.wait_leader(deployment, 60, not_=leader)
    return patroni.wait_whole(deployment)


def first_write_sent_after(load: Load, started: float) -> float:
    """Seconds from `started` to the end of the first acknowledged write sent after it."""
    done = [e.end for e in load.of_kind("write") if e.ok and e.start > started]
    if not done:
        raise NotYet("no write acknowledged since the kill")
    return min(done) - started


@pytest.mark.parametrize("round_", range(KILLS))
def test_a_dead_leader_host_hands_over_to_another_host_and_rejoins_as_a_replica(
    deployment: Deployment, bed: list[hosts.TestHost], round_: int
) -> None:
    api_host = deployment.host_of("haproxy")
    old = lead_off(deployment, api_host)
    patroni.wait_sync_standby(deployment)
    victim = next(h for h in bed if h.name == deployment.host_of(old))
    tag = f"hostfail-{round_}-{time.time_ns()}"
    ledger = Ledger()
    with Load(deployment.api, tag, LoadSpec(writers=2, readers=0), ledger=ledger) as load:
        wait_until(lambda: len(ledger.acked_ids()) >= 20, 30, "writes before the failure")
        started = time.monotonic()
        hosts.kill(victim)
        log(f"killed {victim.name}, which held the leader {old}")
        new = patroni.wait_leader(deployment, 60, not_=old)
        wait_until(lambda: first_write_sent_after(load, started) > 0, 60, "writes resumed")
        rto = first_write_sent_after(load, started)
        acked = len(ledger.acked_ids())
        wait_until(lambda: len(ledger.acked_ids()) >= acked + 20, 30, "writes on the new leader")
    record("multihost_host_failure_rto_seconds", round(rto, 2))
    assert deployment.host_of(new) != victim.name
    result = check(ledger, deployment.container_name(new), tag, client=deployment.client_for(new))
    record("multihost_host_failure_lost_writes", result.lost)
    assert result.lost == 0, result.lost_names

    hosts.start(victim)
    leader = patroni.wait_whole(deployment, timeout=180)
    assert leader != old
    assert patroni.writable(deployment, old) is False
