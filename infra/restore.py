"""Restore is a new stack (pgha:restoreFrom, pgha:restoreTarget): its first node bootstraps from
another stack's pgBackRest repository instead of running initdb.

Recovery is a config change, like failover: a new stack names the stack to restore and the
moment, and `pulumi up` builds a cluster recovered to it. The source repository's volume
(`pgha-<source>-backup-data`) is mounted read-only into the node that restores, so the
source stack may be running or destroyed with its repository kept, and the restored stack
can never write into it: it archives into its own repository container from its first
promotion on. The other nodes clone from the restored primary as in any new stack.

Preview refuses what cannot work before anything is built: a source repository volume that
does not exist (here), and a target that is not RFC 3339, in the future, or the stack
itself (infra/config.py). A target before the source's oldest backup fails the restore
with pgBackRest's own message, and `up` reports the node unhealthy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pulumi
import pulumi_docker as docker
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from infra import backup_cfg, dockerexec
from infra.config import RestoreConfig

# Where the restoring node records where recovery ended (images/postgres/pgha-lib.sh).
RESTORED_FILE = "/var/lib/postgresql/data/pgha.restored"
# A restore of a large database plus the replay of its WAL: beyond a plain start. A restore
# that cannot reach its target keeps failing until then (the node's log says why).
RESTORE_WAIT_S = 900


@dataclass(frozen=True)
class RestoreNode:
    """What the node that restores gets beside a normal node's env and volume."""

    node: str
    target: str
    env: dict[str, pulumi.Input[str]]
    source: docker.ContainerVolumeArgs


def restore_node(node: str, restore: RestoreConfig) -> RestoreNode:
    return RestoreNode(
        node=node,
        target=restore.target,
        env={
            "PGHA_RESTORE_TARGET": restore.target,
            "PGHA_RESTORE_CFG": backup_cfg.restore_config(),
            "PGHA_RESTORE_PASSPHRASE": restore.passphrase,
        },
        source=docker.ContainerVolumeArgs(
            volume_name=restore.source_volume,
            container_path=backup_cfg.SOURCE_PATH,
            read_only=True,
        ),
    )


def check_source(restore: RestoreConfig, own_volume: str) -> None:
    """Raises at preview when the source repository's volume does not exist on this engine.

    Only before this stack's first node exists (`own_volume`): once restored, the stack no
    longer needs its source, which may be removed.
    """
    client = dockerexec.client()
    try:
        names = {v.name for v in client.volumes.list()}
    finally:
        client.close()
    if own_volume in names:
        return
    if restore.source_volume not in names:
        raise ValueError(
            f"pgha:restoreFrom {restore.source}: no repository volume {restore.source_volume} "
            "on this Docker engine (was the stack created with pgha:backup, and destroyed "
            "with pgha:backupRetain false?)"
        )
    _check_window(restore)


def _check_window(restore: RestoreConfig) -> None:
    """Raises when the target lies before the end of the source's oldest backup, which the
    source stack's repository container reports while it runs (a destroyed source's
    repository is checked by the restore itself)."""
    if restore.moment is None:
        return
    container = f"{pulumi.get_project()}-{restore.source}-backup"
    client = dockerexec.client()
    try:
        running = [c for c in client.containers.list(filters={"name": f"^/{container}$"})]
        if not running:
            return
        code, text = dockerexec.run(client.api, container, ["pgha-backup", "status"])
    finally:
        client.close()
    if code != 0:
        return
    status = json.loads(text.splitlines()[-1])
    oldest = status.get("recovery_from")
    if oldest is None:
        raise ValueError(f"pgha:restoreFrom {restore.source}: its repository holds no backup yet")
    if restore.moment.timestamp() < oldest:
        ended = datetime.fromtimestamp(oldest, UTC).isoformat(timespec="seconds")
        raise ValueError(
            f"pgha:restoreTarget is before the oldest backup of {restore.source}, which "
            f"ended at {ended}: pick a later target (make backups STACK={restore.source})"
        )


class _RestoreResultProvider(ResourceProvider):
    """Reads, once, where recovery ended from the restored node."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        code, text = dockerexec.run(
            dockerexec.client().api, props["container"], ["cat", RESTORED_FILE]
        )
        ended = json.loads(text) if code == 0 and text else {}
        return CreateResult(
            id_=f"restore-{props['container']}",
            outs={**props, "timeline": ended.get("timeline"), "lsn": ended.get("lsn", "")},
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # A new container (the restore is over, or ran again) re-reads; nothing else does.
        changed = olds.get("container_id") != news.get("container_id")
        return DiffResult(changes=changed, replaces=["container_id"] if changed else [])


class RestoreResult(Resource, module="pgha", name="RestoreResult"):
    """Where recovery ended: `timeline` and `lsn` (read from the restored node)."""

    timeline: pulumi.Output[int]
    lsn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        container: pulumi.Input[str],
        container_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            _RestoreResultProvider(),
            name,
            {"container": container, "container_id": container_id, "timeline": None, "lsn": None},
            opts,
        )
