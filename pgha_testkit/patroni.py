"""A patroni-mode deployment seen from the host: members, the leader, "the cluster is whole".

In failoverMode patroni the leader is whoever Patroni elected, not the `primary` output,
so these helpers ask Patroni itself: its REST API inside a node container, through the
same calls `PreferredLeader` (infra/leader.py) makes, so the tests and the program agree
on what "the leader" means. Streaming is checked on the leader, by the member names
Patroni uses as application_name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from infra import outputs as out
from infra.leader import members as rest_members
from infra.leader import observe_leader, rest
from pgha_testkit import nodes
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.ledger import Ledger, LedgerCheck, check
from pgha_testkit.poll import NotYet, wait_until

REPLICA_UP_STATES = ("running", "streaming")


def pg_nodes(deployment: Deployment) -> list[str]:
    """The PostgreSQL node names of the stack (`primary` + `replicas` outputs)."""
    return [deployment.primary, *deployment.replicas]


def etcd_members(deployment: Deployment) -> list[str]:
    return sorted(n for n in deployment.outputs[out.CONTAINERS] if n.startswith("etcd-"))


def _containers(deployment: Deployment) -> dict[str, str]:
    return {n: deployment.container_name(n) for n in pg_nodes(deployment)}


def members(deployment: Deployment) -> list[dict[str, Any]]:
    """Patroni's member list (name, role, state, timeline, lag), from any running node."""
    return rest_members(deployment.exec_api(), _containers(deployment))


def leader(deployment: Deployment) -> str:
    """The running leader, or "" while there is none."""
    return observe_leader(deployment.exec_api(), _containers(deployment))


def request(
    deployment: Deployment, node: str, method: str, path: str, body: Any = None
) -> tuple[int, str]:
    """One authenticated (for non-GET) request to `node`'s REST API, from inside it."""
    return rest(deployment.exec_api(), deployment.container_name(node), method, path, body)


def writable(deployment: Deployment, node: str) -> bool | None:
    """True on a writable primary, False on a standby, None when the node does not answer."""
    try:
        out = deployment.sql(node, "select pg_is_in_recovery()", db="postgres")
    except Exception:  # noqa: BLE001 (stopped, starting, or shut down by Patroni)
        return None
    return out == "f"


def wait_leader(deployment: Deployment, timeout: float, *, not_: str = "") -> str:
    """Waits for a running leader other than `not_`; returns its name."""

    def check() -> bool:
        current = leader(deployment)
        if not current or current == not_:
            raise NotYet(f"leader is {current or 'none'}")
        return True

    wait_until(check, timeout, f"a leader other than {not_ or 'none'}")
    return leader(deployment)


def wait_sync_standby(deployment: Deployment, timeout: float = 30) -> str:
    """Waits until Patroni names a synchronous standby (synchronous mode); returns it."""

    def check() -> bool:
        roles = {m.get("name"): m.get("role") for m in members(deployment)}
        if "sync_standby" not in roles.values():
            raise NotYet(f"roles: {roles}")
        return True

    wait_until(check, timeout, "a synchronous standby")
    return next(str(m["name"]) for m in members(deployment) if m.get("role") == "sync_standby")


def wait_whole(deployment: Deployment, timeout: float = 120, nodes_: Sequence[str] = ()) -> str:
    """One leader and every other node a running replica streaming from it; the leader."""
    expected = list(nodes_) or pg_nodes(deployment)

    def check() -> bool:
        listed = {m["name"]: m for m in members(deployment)}
        current = next((n for n, m in listed.items() if m.get("role") == "leader"), "")
        if not current or listed[current].get("state") != "running":
            raise NotYet(f"no running leader in {listed}")
        replicas = [n for n in expected if n != current]
        # Patroni >= 3.1 reports a replica's state as "streaming" once its WAL receiver runs.
        not_running = [
            n for n in replicas if listed.get(n, {}).get("state") not in REPLICA_UP_STATES
        ]
        if not_running:
            raise NotYet(f"not running: {not_running}")
        streaming = set(deployment.sql(current, nodes.STREAMING_SQL, db="postgres").split())
        behind = [n for n in replicas if n not in streaming]
        if behind:
            raise NotYet(f"not streaming from {current}: {behind}")
        return True

    wait_until(check, timeout, "one leader and every replica streaming from it")
    return leader(deployment)


@contextmanager
def synchronous_mode(deployment: Deployment) -> Iterator[str]:
    """pgha:synchronous on (a live PATCH) for the block; yields the leader with its
    synchronous standby in place. Off again, and the cluster whole, afterwards."""
    deployment.up(synchronous="true")
    try:
        leader = wait_whole(deployment)
        wait_sync_standby(deployment)
        yield leader
    finally:
        deployment.up(synchronous="false")
        wait_whole(deployment)


def settle(
    deployment: Deployment, old: str, ledger: Ledger, tag: str, name: str
) -> tuple[str, bool | None, LedgerCheck]:
    """After a fault of the leader `old`: the leader once the cluster is whole again,
    whether `old` is writable, and the ledger checked on that leader (the counts are
    recorded as `patroni_<name>_acked_writes` / `_lost_writes`)."""
    leader = wait_whole(deployment)
    result = check(
        ledger, deployment.container_name(leader), tag, client=deployment.client_for(leader)
    )
    record(f"patroni_{name}_acked_writes", result.acked)
    record(f"patroni_{name}_lost_writes", result.lost)
    return leader, writable(deployment, old), result
