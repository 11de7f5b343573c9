"""Automatic failover on a leader kill, and switchover through `pgha:primary`, no flapping.

Each test waits until the cluster is whole again (one leader, every replica streaming),
so they run in any order; none assumes which node leads. The failover RTO (leader
killed -> first 2xx write through the API) goes to bench/results/e2e-measurements.jsonl.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from infra import outputs as out
from pgha_testkit import patroni
from pgha_testkit.deployment import Deployment, log, record
from pgha_testkit.ledger import Ledger, check, ids_present
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import wait_until


def first_write_after(deployment: Deployment, started: float, timeout: float = 60) -> float:
    """Seconds from `started` to the first POST the API acknowledges (fresh connections)."""
    deadline = time.monotonic() + timeout
    with deployment.client(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                res = http.post("/products", json={"name": "rto probe", "price": 1, "stock": 1})
                if res.status_code == 201:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"no write acknowledged within {timeout}s")


def node_container_ids(deployment: Deployment) -> dict[str, str]:
    # Compared around an `up`: the same ids mean no PostgreSQL node was replaced or moved.
    return {n: str(deployment.container(n).id) for n in patroni.pg_nodes(deployment)}


def recorded_leader(deployment: Deployment) -> str:
    """`leader` in the state of the PreferredLeader resource (not the stack output)."""
    resources = deployment.stack.export_stack().deployment["resources"]
    state = next(r for r in resources if r["type"].endswith(":PreferredLeader"))
    return str(state["outputs"]["leader"])


# Leader kills per run: 1 keeps CI lean; PGHA_PATRONI_KILLS=5 gives a median (README).
KILLS = int(os.environ.get("PGHA_PATRONI_KILLS", "1"))


@pytest.mark.parametrize("round_", range(KILLS))
def test_leader_kill_elects_a_new_leader_and_the_old_one_rejoins_as_a_replica(
    deployment: Deployment, round_: int
) -> None:
    old = patroni.wait_whole(deployment)
    with deployment.client() as http:
        before = [deployment.write(http, f"before leader kill {round_}.{i}") for i in range(20)]
    for node in patroni.pg_nodes(deployment):
        wait_until(
            lambda n=node: ids_present(deployment.container_name(n), before) == set(before),
            10,
            f"rows replicated to {node}",
        )

    started = time.monotonic()
    deployment.container(old).kill()
    rto = first_write_after(deployment, started)
    record("patroni_leader_kill_rto_seconds", round(rto, 2))
    new = patroni.wait_leader(deployment, 30, not_=old)
    assert new != old
    assert ids_present(deployment.container_name(new), before) == set(before)

    deployment.container(old).start()
    assert patroni.wait_whole(deployment) == new
    assert patroni.writable(deployment, old) is False

    # `pulumi refresh` reads the live leader into PreferredLeader's state.
    deployment.stack.refresh(on_output=log)
    assert recorded_leader(deployment) == new
    # No flapping: an up with pgha:primary unchanged records the new leader, moves nothing.
    containers = node_container_ids(deployment)
    deployment.up()
    assert node_container_ids(deployment) == containers
    assert deployment.outputs[out.LEADER] == new
    assert patroni.leader(deployment) == new


def test_a_changed_preferred_primary_switches_over_and_an_unchanged_up_does_nothing(
    deployment: Deployment,
) -> None:
    current = patroni.wait_whole(deployment)
    target = next(n for n in patroni.pg_nodes(deployment) if n != current)
    if deployment.primary == target:
        # Only a *change* of pgha:primary switches over: first prefer the current leader.
        deployment.up(primary=current)
        assert patroni.leader(deployment) == current

    ledger = Ledger()
    tag = f"switchover-{time.monotonic_ns()}"
    with Load(deployment.api, tag, LoadSpec(writers=2, readers=0), ledger=ledger) as load:
        time.sleep(2)
        deployment.up(primary=target)
        acked = len(ledger.acked_ids())
        wait_until(lambda: len(ledger.acked_ids()) > acked + 5, 30, "writes after switchover")
    assert patroni.leader(deployment) == target
    assert deployment.outputs[out.LEADER] == target
    result = check(ledger, deployment.container_name(target), tag, client=deployment.docker)
    failed = [e for e in load.of_kind("write") if not e.ok]
    record("patroni_switchover_acked_writes", result.acked)
    record("patroni_switchover_lost_writes", result.lost)
    record("patroni_switchover_failed_writes", len(failed))
    assert result.lost == 0, result.as_dict()
    patroni.wait_whole(deployment)

    # The same config again: PreferredLeader has nothing to do, and the leader stays.
    containers = node_container_ids(deployment)
    again = deployment.up()
    touched = [line for line in again.stdout.splitlines() if "PreferredLeader" in line]
    assert touched == [], touched
    assert node_container_ids(deployment) == containers
    assert patroni.leader(deployment) == target
