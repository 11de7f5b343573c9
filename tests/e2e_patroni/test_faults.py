"""Faults that must not move the leader: a replica down, one or two etcd members down.

Faults are real (containers stopped through the Docker API); each test restores what it
broke and waits until the cluster is whole again.
"""

from __future__ import annotations

import json
import time

from infra import outputs as out
from pgha_testkit import patroni
from pgha_testkit.deployment import Deployment
from pgha_testkit.ledger import ids_present
from pgha_testkit.poll import wait_until

# Longer than the ttl (6 s): a lock that could not be renewed would have lapsed by then.
HOLD_S = 15


def writes_during(deployment: Deployment, seconds: float, tag: str) -> list[int]:
    """POSTs through the API for `seconds`; each must succeed (503s retried for 5 s)."""
    ids = []
    deadline = time.monotonic() + seconds
    with deployment.client(timeout=5) as http:
        while time.monotonic() < deadline:
            ids.append(deployment.write(http, f"{tag} {len(ids)}", within=5))
            time.sleep(0.2)
    return ids


def test_a_stopped_replica_leaves_reads_to_the_other_replicas_or_read_fallback(
    deployment: Deployment,
) -> None:
    leader = patroni.wait_whole(deployment)
    replicas = [n for n in patroni.pg_nodes(deployment) if n != leader]
    with deployment.client() as http:
        pid = deployment.write(http, "read while a replica is down")
    for node in replicas:
        wait_until(
            lambda n=node: ids_present(deployment.container_name(n), [pid]) == {pid},
            10,
            f"row on {node}",
        )
    stopped = deployment.container(replicas[0])
    stopped.stop()
    try:
        with deployment.client() as http:
            # Never read before, so the answer comes from PostgreSQL, not the cache.
            wait_until(
                lambda: deployment.backend_status("replica_nodes").get(replicas[0]) == "DOWN",
                10,
                "HAProxy marks the stopped replica DOWN",
            )
            got = http.get(f"/products/{pid}")
            if len(replicas) > 1:
                assert got.status_code == 200
                assert got.headers["X-Read-Source"] == "replica"
            elif deployment.outputs[out.READ_FALLBACK] == "primary":
                assert got.status_code == 200
                assert got.headers["X-Read-Source"] == "primary"
            else:
                assert got.status_code == 503
                assert got.json()["error"] == "replica_unavailable"
            assert deployment.write(http, "write while a replica is down") > pid
        assert patroni.leader(deployment) == leader
    finally:
        stopped.start()
    assert patroni.wait_whole(deployment) == leader


def test_one_etcd_member_down_changes_nothing(deployment: Deployment) -> None:
    leader = patroni.wait_whole(deployment)
    member = deployment.container(patroni.etcd_members(deployment)[0])
    member.stop()
    try:
        ids = writes_during(deployment, HOLD_S, "one etcd member down")
        assert patroni.leader(deployment) == leader
        assert {m["name"] for m in patroni.members(deployment)} == set(patroni.pg_nodes(deployment))
    finally:
        member.start()
    assert ids_present(deployment.container_name(leader), ids) == set(ids)
    assert patroni.wait_whole(deployment) == leader


def test_two_etcd_members_down_writes_go_on_under_failsafe_mode(deployment: Deployment) -> None:
    leader = patroni.wait_whole(deployment)
    down = [deployment.container(m) for m in patroni.etcd_members(deployment)[:2]]
    for member in down:
        member.stop()
    try:
        # No etcd majority: the lock cannot be renewed, yet every PostgreSQL node confirms
        # the leader over the REST API, so it stays writable (without failsafe it demotes).
        ids = writes_during(deployment, HOLD_S, "two etcd members down")
        assert patroni.writable(deployment, leader) is True
        status, body = patroni.request(deployment, leader, "GET", "/patroni")
        assert status == 200 and json.loads(body).get("failsafe_mode_is_active") is True
    finally:
        for member in down:
            member.start()
    assert ids_present(deployment.container_name(leader), ids) == set(ids)
    assert patroni.wait_whole(deployment) == leader
