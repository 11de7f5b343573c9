"""Restore is a new stack (pgha:restoreFrom, pgha:restoreTarget): its first node bootstraps from
another stack's pgBackRest repository instead of running initdb.

Recovery is a config change, like failover: a new stack names the stack to restore and the
moment, and `pulumi up` builds a cluster recovered to it. The source repository's volume
(`pgha-<source>-backup-data`) is mounted read-only into the node that restores, so the
source stack may be running or destroyed with its repository kept, and the restored stack
can never write into it: it archives into its own repository container from its first
promotion on. The other nodes clone from the restored primary as in any new stack.

Preview refuses what cannot work before anything is built: a source repository volume that
does not exist, a target before the end of its oldest backup or after its newest archived
WAL segment (here, from the repository's status, live or as its container left it), and a
target that is not RFC 3339, in the future, or the stack itself (infra/config.py).
"""

from __future__ import annotations

import io
import json
import tarfile
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


def check_source(restore: RestoreConfig, own_volume: str, image: str) -> None:
    """Raises at preview when the source repository's volume does not exist on this engine,
    or when the target lies outside what it holds.

    Only before this stack's first node exists (`own_volume`): once restored, the stack no
    longer needs its source, which may be removed. `image` is any local image with a shell
    (the base image): the kept volume of a destroyed source is read through a container
    created from it, never started.
    """
    client = dockerexec.client()
    try:
        names = {v.name for v in client.volumes.list()}
        if own_volume in names:
            return
        if restore.source_volume not in names:
            raise ValueError(
                f"pgha:restoreFrom {restore.source}: no repository volume {restore.source_volume} "
                "on this Docker engine (was the stack created with pgha:backup, and destroyed "
                "with pgha:backupRetain false?)"
            )
        status = _source_status(client, restore, image)
    finally:
        client.close()
    if status is not None:
        check_window(restore, status)


def _source_status(client: Any, restore: RestoreConfig, image: str) -> dict[str, Any] | None:
    """`pgha-backup status` of the source repository: live from its container while the
    source runs, else the copy its container left in the volume when it stopped (None for
    a repository written before pgha kept one)."""
    from docker import errors as docker_errors  # lazily, as infra/dockerexec.py does

    container = f"{pulumi.get_project()}-{restore.source}-backup"
    if client.containers.list(filters={"name": f"^/{container}$"}):
        code, text = dockerexec.run(client.api, container, ["pgha-backup", "status"])
        return dict(json.loads(text.splitlines()[-1])) if code == 0 and text else None
    reader = client.containers.create(
        image,
        ["true"],
        volumes={restore.source_volume: {"bind": backup_cfg.SOURCE_PATH, "mode": "ro"}},
        network_disabled=True,
    )
    try:
        stream, _ = reader.get_archive(f"{backup_cfg.SOURCE_PATH}/{backup_cfg.STATUS_FILE}")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member else None
            return dict(json.loads(handle.read())) if handle else None
    except docker_errors.NotFound:
        return None
    finally:
        reader.remove(force=True)


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def check_window(restore: RestoreConfig, status: dict[str, Any]) -> None:
    """Raises when the source's repository cannot reach the target: no backup at all, a
    target before the end of its oldest backup, or after its newest archived WAL segment
    (recovery would end before the target; PostgreSQL then refuses to promote)."""
    oldest = status.get("recovery_from")
    if oldest is None:
        raise ValueError(f"pgha:restoreFrom {restore.source}: its repository holds no backup yet")
    if restore.moment is None:
        return
    if restore.moment.timestamp() < oldest:
        raise ValueError(
            f"pgha:restoreTarget is before the oldest backup of {restore.source}, which "
            f"ended at {_utc(oldest)}: pick a later target (make backups STACK={restore.source})"
        )
    newest = status.get("wal_archived_at")
    if newest is not None and restore.moment.timestamp() > newest:
        raise ValueError(
            f"pgha:restoreTarget is after the newest archived WAL of {restore.source}, "
            f'archived at {_utc(newest)}: pick an earlier target or "latest" (a running '
            f"source archives its current segment within {backup_cfg.ARCHIVE_TIMEOUT_S} s)"
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
