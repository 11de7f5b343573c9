"""Chaos cells on the backup repository container (`pgha-<stack>-backup`, infra/backup.py),
shared by the manual and patroni campaigns.

While the repository is killed, stopped or paused, the primary's `archive_command` fails
(or hangs), and WAL queues in pg_wal as `.ready` files; writes must go on. The fault
forces a WAL switch, so at least one segment is queued even in a short hold. After the
lift, `recover_s` runs from the repository being healthy to the primary's queue being
empty with the forced segment archived: PostgreSQL's archiver retries on its own clock
(up to a minute after repeated failures), and that wait is part of the figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docker import DockerClient

from pgha_testkit.nodes import sql

TARGET = "backup"
# The archiver may wait a minute between retries; recover_s waits longer before "never".
RECOVER_TIMEOUT_S = 150.0
STATE_SQL = (
    "select coalesce(last_archived_wal, ''), failed_count,"
    " (select count(*) from pg_ls_archive_statusdir() where name like '%.ready')"
    " from pg_stat_archiver"
)


def state(primary: str, client: DockerClient) -> dict[str, Any]:
    archived, failed, ready = sql(primary, STATE_SQL, db="postgres", client=client).split("|")
    return {"last_archived_wal": archived, "failed_count": int(failed), "ready": int(ready)}


def queue_segment(primary: str, client: DockerClient) -> str:
    """Closes the current WAL segment (it must now be archived); returns its name."""
    return sql(
        primary, "select pg_walfile_name(pg_switch_wal())", db="postgres", client=client
    ).strip()


def caught_up(primary: str, client: DockerClient, segment: str) -> bool:
    """The queue is empty and `segment` (or a later one) has been archived."""
    now = state(primary, client)
    # Names of one timeline sort in WAL order: 24 hex digits, fixed width.
    return bool(now["ready"] == 0 and now["last_archived_wal"][-16:] >= segment[-16:])


@dataclass
class Archive:
    """The primary's archiving over one backup cell, as the runner drives it."""

    primary: str
    client: DockerClient
    before: dict[str, Any] = field(default_factory=dict)
    segment: str = ""
    ready_at_lift: int | None = None

    def start(self) -> None:
        self.before = state(self.primary, self.client)

    def queue(self) -> None:
        self.segment = queue_segment(self.primary, self.client)

    def lifted(self) -> None:
        self.ready_at_lift = state(self.primary, self.client)["ready"]

    def caught_up(self) -> bool:
        return caught_up(self.primary, self.client, self.segment)

    def figures(self) -> dict[str, Any]:
        after = state(self.primary, self.client)
        return {
            "wal_segment": self.segment,
            "wal_ready_at_lift": self.ready_at_lift,
            "archive_failures": after["failed_count"] - self.before.get("failed_count", 0),
            "last_archived_wal": after["last_archived_wal"],
        }
