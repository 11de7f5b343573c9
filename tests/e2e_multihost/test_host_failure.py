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

from pgha_testkit import hosts, multihost, patroni
from pgha_testkit.deployment import Deployment, record

# Host failures per run: 1 keeps CI lean; PGHA_MULTIHOST_KILLS=3 gives a median.
KILLS = int(os.environ.get("PGHA_MULTIHOST_KILLS", "1"))


@pytest.mark.parametrize("round_", range(KILLS))
def test_a_dead_leader_host_hands_over_to_another_host_and_rejoins_as_a_replica(
    deployment: Deployment, bed: list[hosts.TestHost], round_: int
) -> None:
    failure = multihost.host_failure(deployment, bed, f"hostfail-{round_}-{time.time_ns()}")
    record("multihost_host_failure_rto_seconds", round(failure.rto_s, 2))
    record("multihost_host_failure_lost_writes", failure.ledger.lost)
    assert deployment.host_of(failure.new_leader) != failure.victim
    assert failure.ledger.lost == 0, failure.ledger.lost_names

    hosts.start(next(h for h in bed if h.name == failure.victim))
    leader = patroni.wait_whole(deployment, timeout=180)
    assert leader != failure.old_leader
    assert patroni.writable(deployment, failure.old_leader) is False
