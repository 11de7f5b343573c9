"""The lost-write ledger: what the API acknowledged, checked against rows on the primary.

Jepsen-style: every write gets a unique name under a run's prefix; the ledger records
each name before it is sent and the id the API returned with its 201. Afterwards the
primary's rows under that prefix are compared to it: an acknowledged write that is not
there under its id is *lost*; a failed write that is there anyway is *indeterminate* (a
connection broken during COMMIT, the expected outcome, not a loss).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from docker import DockerClient

from pgha_testkit.nodes import sql

# How many lost names a result lists; the count is always complete.
LOST_NAMES_SHOWN = 50


class Ledger:
    """Thread-safe record of attempted names and acknowledged (name -> id) writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempted: list[str] = []
        self.acked: dict[str, int] = {}
        # Monotonic time of each acknowledgement, in order: "first write after X" timings.
        self.ack_times: list[float] = []

    def attempt(self, name: str) -> None:
        with self._lock:
            self.attempted.append(name)

    def ack(self, name: str, pid: int) -> None:
        with self._lock:
            self.acked[name] = pid
            self.ack_times.append(time.monotonic())

    def acked_ids(self) -> list[int]:
        with self._lock:
            return list(self.acked.values())

    def snapshot(self) -> tuple[list[str], dict[str, int]]:
        """Copies of (attempted, acked), consistent even while writers still run."""
        with self._lock:
            return list(self.attempted), dict(self.acked)


@dataclass(frozen=True)
class LedgerCheck:
    acked: int
    attempted: int
    lost: int
    lost_names: list[str]
    duplicated: int
    indeterminate_committed: int
    unknown_rows: int

    def as_dict(self) -> dict[str, object]:
        # Key order is the chaos report's JSON; keep it.
        return {
            "acked": self.acked,
            "attempted": self.attempted,
            "lost": self.lost,
            "lost_names": self.lost_names,
            "duplicated": self.duplicated,
            "indeterminate_committed": self.indeterminate_committed,
            "unknown_rows": self.unknown_rows,
        }


def reconcile(
    attempted: Iterable[str], acked: dict[str, int], rows: Iterable[tuple[int, str]]
) -> LedgerCheck:
    """Compares the ledger with `(id, name)` rows found under the run's prefix."""
    present: dict[str, list[int]] = {}
    for pid, name in rows:
        present.setdefault(name, []).append(pid)
    tried = set(attempted)
    lost = sorted(name for name, pid in acked.items() if pid not in present.get(name, []))
    unacked = tried - set(acked)
    return LedgerCheck(
        acked=len(acked),
        attempted=len(tried),
        lost=len(lost),
        lost_names=lost[:LOST_NAMES_SHOWN],
        duplicated=sum(len(ids) > 1 for ids in present.values()),
        indeterminate_committed=len(unacked & set(present)),
        unknown_rows=len(set(present) - tried),
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def rows_with_prefix(
    primary_container: str, prefix: str, *, client: DockerClient | None = None
) -> list[tuple[int, str]]:
    """`(id, name)` of every product whose name starts with `prefix`, read on the primary."""
    text = sql(
        primary_container,
        f"select id, name from pgha.products where left(name, {len(prefix)}) = {_literal(prefix)}",
        client=client,
    )
    rows = []
    for line in text.splitlines():
        pid, name = line.split("|", 1)
        rows.append((int(pid), name))
    return rows


def check(
    ledger: Ledger, primary_container: str, prefix: str, *, client: DockerClient | None = None
) -> LedgerCheck:
    """The ledger against the primary: every acknowledged write must be there, under its id."""
    rows = rows_with_prefix(primary_container, prefix, client=client)
    attempted, acked = ledger.snapshot()
    return reconcile(attempted, acked, rows)


def ids_present(
    container: str, ids: Iterable[int], *, client: DockerClient | None = None
) -> set[int]:
    """Which of these product ids a node has (a primary, or a replica that caught up)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    found = sql(
        container,
        f"select id from pgha.products where id in ({','.join(map(str, wanted))})",
        client=client,
    )
    return {int(x) for x in found.split()}


def delete_with_prefix(
    primary_container: str, prefix: str, *, client: DockerClient | None = None
) -> int:
    """Deletes a run's products by name prefix on the primary; returns how many."""
    deleted = sql(
        primary_container,
        f"with d as (delete from pgha.products where left(name, {len(prefix)}) = "
        f"{_literal(prefix)} returning 1) select count(*) from d",
        client=client,
    )
    return int(deleted)
