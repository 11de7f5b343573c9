"""`Membership`: one per PostgreSQL node; when the node leaves `pgha:nodes`, cleans up after it.

Why a resource of its own: the node's container depends on it, so on removal Pulumi
deletes the container first and this resource after, once the node is really gone.
Then, in manual mode, it drops the node's replication slot on the primary (a slot left
behind would hold WAL back up to max_slot_wal_keep_size); in patroni mode it waits until
the member's key has left etcd and Patroni's leader has dropped its slot. Creating one
does nothing: a new node's slot is made by its clone (pg_basebackup -C) or by Patroni.

`peers` are the container names of every node at the last up, so a removal finds the
primary even if the cluster's first node went away before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from infra import dockerexec

# How long a removal waits for the slot to be released (a walsender outliving its replica
# by a moment) or, in patroni mode, for the member key's ttl and Patroni's next cycle.
CLEANUP_TIMEOUT = 60


@dataclass
class MembershipArgs:
    node: str
    container: str
    mode: str  # "manual" or "patroni"
    # Container names of every node of the cluster (this one included).
    peers: Sequence[str]
    # Patroni mode across hosts: container name -> its engine's URL.
    engines: Mapping[str, str] = field(default_factory=dict)


def slot_name(node: str) -> str:
    """pgha's and Patroni's slot name for a node: dashes become underscores."""
    return node.replace("-", "_")


def _api(props: Mapping[str, Any]) -> Any:
    engines: Mapping[str, str] = props.get("engines") or {}
    if engines:
        by_url = {url: dockerexec.client(url).api for url in set(engines.values())}
        return {c: by_url[url] for c, url in engines.items()}
    return dockerexec.client().api


def _sql(api: Any, container: str, query: str) -> str | None:
    try:
        code, out = dockerexec.run(
            api,
            container,
            ["psql", "-h", "/var/run/postgresql", "-XAtq", "-d", "postgres", "-c", query],
        )
    except Exception:  # noqa: BLE001 (a stopped or removed peer: ask the next one)
        return None
    return out if code == 0 else None


def _primary(api: Any, peers: Sequence[str]) -> str | None:
    for container in peers:
        if _sql(api, container, "select pg_is_in_recovery()") == "f":
            return container
    return None


def _patroni_member_left(api: Any, peers: Sequence[str], node: str) -> bool:
    from infra.leader import members

    listed = members(api, {c: c for c in peers})
    return bool(listed) and all(m.get("name") != node for m in listed)


def cleanup(props: Mapping[str, Any]) -> None:
    node = str(props["node"])
    slot = slot_name(node)
    peers = [p for p in props["peers"] if p != props.get("container")]
    api = _api(props)
    deadline = time.monotonic() + CLEANUP_TIMEOUT
    patroni = props.get("mode") == "patroni"
    while time.monotonic() < deadline:
        if patroni and not _patroni_member_left(api, peers, node):
            time.sleep(1)
            continue
        primary = _primary(api, peers)
        if primary is None:
            break
        if patroni:
            left = _sql(
                api,
                primary,
                f"select count(*) from pg_replication_slots where slot_name = '{slot}'",
            )
        else:
            # Only an inactive slot can be dropped; a walsender may outlive its replica briefly.
            left = _sql(
                api,
                primary,
                "select count(*) from ("
                f"select pg_drop_replication_slot(slot_name) from pg_replication_slots"
                f" where slot_name = '{slot}' and not active) d;"
                f" select count(*) from pg_replication_slots where slot_name = '{slot}'",
            )
        if left is not None and left.splitlines()[-1] == "0":
            pulumi.log.info(f"{node} left the cluster; its slot {slot} is gone")
            return
        time.sleep(1)
    pulumi.log.warn(
        f"{node} was removed, but its slot {slot} or member key could not be confirmed gone"
        f" within {CLEANUP_TIMEOUT}s"
    )


class _MembershipProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"member-{props['node']}", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Only the peers and engines change; recording them needs no action.
        changed = json.dumps(olds, sort_keys=True) != json.dumps(news, sort_keys=True)
        return DiffResult(
            changes=changed, replaces=["node"] if olds.get("node") != news.get("node") else []
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        cleanup(props)


class Membership(Resource, module="pgha", name="Membership"):
    def __init__(
        self, resource_name: str, args: MembershipArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            "node": args.node,
            "container": args.container,
            "mode": args.mode,
            "peers": list(args.peers),
        }
        if args.engines:
            props["engines"] = dict(args.engines)
        super().__init__(_MembershipProvider(), resource_name, props, opts)
