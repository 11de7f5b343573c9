"""Summaries of `pgbackrest info --output=json` for pgha-backup (the repository container).

Why a module: the schedule, `make backups` and the status the stack reports all read the
same JSON, so the arithmetic (ages, archived range, recovery window) lives once, and
tests/unit/test_backup_info.py covers it. Reads the JSON on stdin:
  ages    "<seconds since the newest full> <seconds since the newest backup>" ("" if none)
  status [WAL_MTIME]  one JSON object: backup count, the last one's label, type and age,
          the newest full's age, the WAL range and when its newest segment was archived
          (WAL_MTIME: that segment's mtime in the repository, seconds since the epoch)
  window [WAL_MTIME]  the archived WAL range and the recovery window, for people
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any


def _stanza(info: list[dict[str, Any]]) -> dict[str, Any]:
    return info[0] if info else {}


def ages(info: list[dict[str, Any]], now: float) -> tuple[int | None, int | None]:
    backups = _stanza(info).get("backup", [])
    full = [b["timestamp"]["stop"] for b in backups if b["type"] == "full"]
    every = [b["timestamp"]["stop"] for b in backups]
    return (
        int(now - max(full)) if full else None,
        int(now - max(every)) if every else None,
    )


def wal_range(info: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    archive = [a for a in _stanza(info).get("archive", []) if a.get("max")]
    if not archive:
        return None, None
    return archive[0]["min"], archive[-1]["max"]


def status(
    info: list[dict[str, Any]], now: float, wal_archived_at: float | None = None
) -> dict[str, Any]:
    """The repository's state for people, monitoring and preview (infra/restore.py).

    Ages are in seconds at `now`; `wal_archived_at` bounds a restore from above (a target
    after the newest archived segment cannot be reached), `recovery_from` from below.
    """
    stanza = _stanza(info)
    backups = stanza.get("backup", [])
    last = backups[-1] if backups else None
    wal_min, wal_max = wal_range(info)
    full_age, _ = ages(info, now)
    archived = int(wal_archived_at) if wal_archived_at and wal_max else None
    return {
        "status": stanza.get("status", {}).get("message", "missing stanza"),
        "at": int(now),
        "backups": len(backups),
        "last_backup": last
        and {
            "label": last["label"],
            "type": last["type"],
            "age_s": int(now - last["timestamp"]["stop"]),
        },
        "full_age_s": full_age,
        # A restore can reach any moment after the oldest backup ended.
        "recovery_from": backups[0]["timestamp"]["stop"] if backups else None,
        "wal_min": wal_min,
        "wal_max": wal_max,
        "wal_archived_at": archived,
        "wal_age_s": None if archived is None else max(0, int(now - archived)),
    }


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def window(info: list[dict[str, Any]], now: float, wal_archived_at: float | None = None) -> str:
    backups = _stanza(info).get("backup", [])
    wal_min, wal_max = wal_range(info)
    lines = [f"archived WAL: {wal_min} .. {wal_max}" if wal_max else "archived WAL: none"]
    if wal_max and wal_archived_at:
        lines.append(f"newest segment archived {max(0, int(now - wal_archived_at))} s ago")
    if backups:
        last = backups[-1]
        lines.append(
            f"last backup: {last['label']} ({last['type']}), "
            f"finished {int(now - last['timestamp']['stop'])} s ago"
        )
        # The newest segment reaches the repository within archive_timeout (60 s).
        lines.append(
            f"recovery window: {_utc(backups[0]['timestamp']['stop'])} .. "
            "now, less at most archive_timeout"
        )
    else:
        lines.append("recovery window: none (no backup yet)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    info = json.load(sys.stdin)
    now = time.time()
    if argv[1:2] == ["ages"]:
        full, any_ = ages(info, now)
        print("" if full is None else full, "" if any_ is None else any_)
    elif argv[1:2] == ["status"]:
        mtime = argv[2] if len(argv) > 2 and argv[2] else None
        print(json.dumps(status(info, now, float(mtime) if mtime else None)))
    elif argv[1:2] == ["window"]:
        mtime = argv[2] if len(argv) > 2 and argv[2] else None
        print(window(info, now, float(mtime) if mtime else None))
    else:
        print("usage: backup_info.py ages|status|window [WAL_MTIME] < info.json", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
