"""`ClusterRole`: makes the node named by `pgha:primary` the single writable primary.

Why a resource: the lab failed over by hand (stop the primary, `pg_ctl promote`,
edit HAProxy, restart it). Here `pulumi config set pgha:primary pg-1 && pulumi up`
does the same as one reviewed change. The PostgreSQL containers never change on
failover; this resource changes roles inside them through the Docker API, with
`pgha-ctl` in the image doing the work next to the data:

1. Every other node that is still a writable primary is fenced: told to follow
   the target, then stopped with a fast shutdown, which streams its last WAL to
   the replicas before it exits (a planned switchover loses no acknowledged write).
2. The target replays all WAL it received, is promoted, and checkpoints.
3. Running replicas re-point `primary_conninfo`; stopped nodes get the new
   desired role written into their volume and rejoin (pg_rewind or re-clone)
   whenever they start again. Nodes fenced in step 1 are started again now.
4. The primary keeps one replication slot per member (the membership is written into
   every node's volume first) and synchronous replication is set on it when
   `pgha:synchronous` is true; so adding or removing a node is an update of this
   resource, never a replacement of the other nodes.

HAProxy lists every node behind role checks, so it follows on its own. Between
fencing a live primary and promoting the target this waits until HAProxy must
have marked the fenced node DOWN, so two servers are never UP for writes.

Why a dynamic resource: pulumi_docker declares containers but cannot run
commands in them in order; this orchestration is not a Docker object.

Why the module is not named after `ClusterRole`: Pulumi pickles a dynamic provider into
every stack's state by reference to its module (`infra.failover._ClusterRoleProvider`),
and deletes with the pickled one, so renaming this module would make `pulumi destroy` of
any stack created before the rename fail.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from infra import dockerexec
from infra.haproxy_cfg import MARK_DOWN_BOUND_S

# The node volume's mount point (PGHA_DATA_ROOT in images/postgres); the desired-role
# file this provider writes lives there, beside pgdata.
DATA_ROOT = "/var/lib/postgresql/data"
READY_TIMEOUT = 120
REJOIN_TIMEOUT = 120


@dataclass
class ClusterRoleArgs:
    primary: str
    # node name -> container name
    containers: Mapping[str, pulumi.Input[str]]
    # node name -> container id: a replaced container re-runs the reconcile
    container_ids: Mapping[str, pulumi.Input[str]]
    synchronous: bool


class FailoverError(RuntimeError):
    pass


def _is_not_found(exc: BaseException) -> bool:
    import docker.errors

    return isinstance(exc, docker.errors.NotFound)


def _exec(api: Any, container: str, *cmd: str) -> str:
    code, out = dockerexec.run(api, container, cmd)
    if code != 0:
        raise FailoverError(f"{' '.join(cmd)} in {container} failed ({code}): {out}")
    return out


def _running(api: Any, container: str) -> bool:
    try:
        return bool(api.inspect_container(container)["State"]["Running"])
    except Exception as exc:
        if _is_not_found(exc):
            return False
        raise


def _role(api: Any, container: str) -> str:
    if not _running(api, container):
        return "down"
    try:
        return _exec(api, container, "pgha-ctl", "role")
    except FailoverError:
        return "down"


def _wait_role(api: Any, container: str, wanted: set[str], timeout: int) -> str:
    deadline = time.monotonic() + timeout
    role = _role(api, container)
    while role not in wanted and time.monotonic() < deadline:
        time.sleep(0.5)
        role = _role(api, container)
    return role


def _write_desired(api: Any, container: str, desired: str) -> None:
    """Writes the desired-role file even into a stopped container's volume."""
    _put_file(api, container, "pgha.desired", desired)


def _put_file(api: Any, container: str, name: str, text: str) -> None:
    """Writes one line into the node's volume, running or stopped."""
    data = f"{text}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, time.time()
        tar.addfile(info, io.BytesIO(data))
    api.put_archive(container, DATA_ROOT, buf.getvalue())


def reconcile(props: dict[str, Any]) -> dict[str, Any]:
    api = dockerexec.client().api
    target: str = props["primary"]
    containers: dict[str, str] = props["containers"]
    others = [n for n in containers if n != target]
    pulumi.log.info(f"making {target} the primary")

    if not _running(api, containers[target]):
        raise FailoverError(f"cannot make {target} the primary: its container is not running")
    role = _wait_role(api, containers[target], {"primary", "replica"}, READY_TIMEOUT)
    if role == "down":
        raise FailoverError(f"{target} did not come up within {READY_TIMEOUT}s")

    # The membership lives on each node's volume (pgha.members), not in its env: a node
    # added or removed changes no other node's container.
    for node in containers:
        _put_file(api, containers[node], "pgha.members", " ".join(containers))

    fenced = []
    fenced_at = 0.0
    for node in others:
        if _role(api, containers[node]) == "primary":
            # Record the new role before stopping, so a restart can never
            # bring this node back as a second writable primary. From here on
            # its role endpoint fails /primary.
            _exec(api, containers[node], "pgha-ctl", "follow", target)
            fenced_at = time.monotonic()
            api.stop(containers[node], timeout=60)
            fenced.append(node)
    if fenced:
        time.sleep(max(0.0, fenced_at + MARK_DOWN_BOUND_S - time.monotonic()))
    if role == "replica":
        _exec(api, containers[target], "pgha-ctl", "promote")

    for node in others:
        if node not in fenced and _running(api, containers[node]):
            _exec(api, containers[node], "pgha-ctl", "follow", target)
        else:
            _write_desired(api, containers[node], f"replica {target}")
    for node in fenced:
        api.start(containers[node])

    # Slots for a new node, none for a removed one (its own is dropped by Membership
    # once its container is gone; this catches any other stale one).
    _exec(api, containers[target], "pgha-ctl", "slots")
    if props.get("synchronous"):
        _exec(api, containers[target], "pgha-ctl", "sync", *others)
    else:
        _exec(api, containers[target], "pgha-ctl", "sync", "off")

    roles = {target: _role(api, containers[target])}
    for node in others:
        if node in fenced:
            roles[node] = _wait_role(api, containers[node], {"replica"}, REJOIN_TIMEOUT)
        else:
            roles[node] = _role(api, containers[node])
    return {**props, "roles": roles}


class _ClusterRoleProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="cluster-role", outs=reconcile(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("primary", "containers", "container_ids", "synchronous")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=reconcile(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class ClusterRole(Resource, module="pgha", name="ClusterRole"):
    primary: pulumi.Output[str]
    roles: pulumi.Output[dict[str, str]]

    def __init__(
        self, resource_name: str, args: ClusterRoleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            _ClusterRoleProvider(),
            resource_name,
            {
                "primary": args.primary,
                "containers": args.containers,
                "container_ids": args.container_ids,
                "synchronous": args.synchronous,
                "roles": None,
            },
            opts,
        )
