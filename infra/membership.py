"""`Membership`: one per PostgreSQL node: where a new node clones from, and the cleanup
after a node left `pgha:nodes`.

Why a resource of its own: the node's container depends on it, so on removal Pulumi
deletes the container first and this resource after, once the node is really gone.
Then, in manual mode, it drops the node's replication slot on the primary (a slot left
behind would hold WAL back up to max_slot_wal_keep_size); in patroni mode it waits until
the member's key has left etcd and Patroni's leader has dropped its slot.

On create (manual mode) it records `clone_from`: the node that is primary when this node
joins, or the first node on a new stack. The node's container takes it as its bootstrap
upstream, so a node added after a failover clones from the primary of the day. It never
changes afterwards (no input but the node's identity is compared), so the other nodes'
containers stay as they are when nodes come and go.

The other nodes are found by the stack's labels when needed, never passed in: a list of
them as an input would make every node's resource change with the membership.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from infra import dockerexec
from infra.outputs import STACK_LABEL

# How long a removal waits for the slot to be released (a walsender outliving its replica
# by a moment) or, in patroni mode, for the member key's ttl and Patroni's next cycle.
CLEANUP_TIMEOUT = 60
# What identifies a node's resource; anything else may change without an update.
IDENTITY = ("node", "container", "mode", "stack")


@dataclass
class MembershipArgs:
    node: str
    container: str
    mode: str  # "manual" or "patroni"
    # The stack's label value (`pgha-<stack>`), by which the other nodes are found.
    stack: str
    # The upstream of a node that joins a stack with no primary yet: the first node.
    default_upstream: str
    # Patroni mode across hosts: the Docker engine URL of this node's host.
    engine: str = ""


def slot_name(node: str) -> str:
    """pgha's and Patroni's slot name for a node: dashes become underscores."""
    return node.replace("-", "_")


def _peers(props: dict[str, Any]) -> tuple[Any, list[str]]:
    """A Docker client and the running PostgreSQL node containers of the stack but this one."""
    api = dockerexec.client(str(props.get("engine") or "")).api
    found = api.containers(
        filters={"label": [f"{STACK_LABEL}={props['stack']}", "pgha.role=postgres"]}
    )
    names = sorted(str(c["Names"][0]).lstrip("/") for c in found)
    return api, [n for n in names if n != props["container"]]


def _sql(api: Any, container: str, query: str) -> str | None:
    cmd = ["psql", "-h", "/var/run/postgresql", "-XAtq", "-d", "postgres", "-c", query]
    try:
        code, out = dockerexec.run(api, container, cmd)
    except Exception:  # noqa: BLE001 (a stopped or removed peer: ask the next one)
        return None
    return out if code == 0 else None


def _primary(api: Any, peers: Sequence[str]) -> str | None:
    for container in peers:
        if _sql(api, container, "select pg_is_in_recovery()") == "f":
            return container
    return None


def _patroni_member_listed(api: Any, peers: Sequence[str], node: str) -> bool | None:
    """Whether Patroni still lists `node`; None when no Patroni answers (the whole
    cluster is going, as on destroy: nothing to wait for)."""
    from infra.leader import members

    listed = members(api, {c: c for c in peers})
    if not listed:
        return None
    return any(m.get("name") == node for m in listed)


def clone_from(props: dict[str, Any]) -> str:
    """The node a joining manual-mode node clones from: today's primary, else the default."""
    if props.get("mode") != "manual":
        return str(props["default_upstream"])
    api, peers = _peers(props)
    primary = _primary(api, peers)
    prefix = f"{props['stack']}-"
    if primary and primary.startswith(prefix):
        return primary[len(prefix) :]
    return str(props["default_upstream"])


def cleanup(props: dict[str, Any]) -> None:
    node = str(props["node"])
    slot = slot_name(node)
    api, peers = _peers(props)
    deadline = time.monotonic() + CLEANUP_TIMEOUT
    patroni = props.get("mode") == "patroni"
    while time.monotonic() < deadline:
        if patroni:
            listed = _patroni_member_listed(api, peers, node)
            if listed is None:
                return
            if listed:
                time.sleep(1)
                continue
        primary = _primary(api, peers)
        if primary is None:
            # No node left to hold a slot (destroy removes them all).
            return
        count = f"select count(*) from pg_replication_slots where slot_name = '{slot}'"
        if not patroni:
            # Only an inactive slot can be dropped; a walsender may outlive its replica.
            _sql(
                api,
                primary,
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots"
                f" where slot_name = '{slot}' and not active",
            )
        if _sql(api, primary, count) == "0":
            pulumi.log.info(f"{node} left the cluster; its slot {slot} is gone")
            return
        time.sleep(1)
    pulumi.log.warn(
        f"{node} was removed, but its slot {slot} or member key could not be confirmed gone"
        f" within {CLEANUP_TIMEOUT}s"
    )


class _MembershipProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(
            id_=f"member-{props['node']}", outs={**props, "clone_from": clone_from(props)}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in IDENTITY if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, "clone_from": olds.get("clone_from")})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        cleanup(props)


class Membership(Resource, module="pgha", name="Membership"):
    clone_from: pulumi.Output[str]

    def __init__(
        self, resource_name: str, args: MembershipArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            "node": args.node,
            "container": args.container,
            "mode": args.mode,
            "stack": args.stack,
            "default_upstream": args.default_upstream,
            "clone_from": None,
        }
        if args.engine:
            props["engine"] = args.engine
        super().__init__(_MembershipProvider(), resource_name, props, opts)
