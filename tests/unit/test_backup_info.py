"""images/postgres/backup_info.py: ages, status and recovery window from `pgbackrest info`."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    path = ROOT / "images" / "postgres" / "backup_info.py"
    spec = importlib.util.spec_from_file_location("backup_info", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def backup(label: str, kind: str, start: int, stop: int) -> dict[str, Any]:
    return {"label": label, "type": kind, "timestamp": {"start": start, "stop": stop}}


INFO = [
    {
        "name": "pgha",
        "status": {"code": 0, "message": "ok"},
        "backup": [
            backup("F1", "full", 1000, 1010),
            backup("D1", "diff", 2000, 2005),
        ],
        "archive": [
            {"id": "15-1", "min": "000000010000000000000001", "max": "000000010000000000000009"}
        ],
    }
]


def test_ages_count_from_the_end_of_the_newest_full_and_the_newest_backup() -> None:
    assert load().ages(INFO, now=3005) == (1995, 1000)


def test_a_repository_without_backups_has_no_ages_and_no_window() -> None:
    empty = [{"name": "pgha", "status": {"message": "no valid backups"}, "backup": []}]
    info = load()
    assert info.ages(empty, now=1) == (None, None)
    assert "none (no backup yet)" in info.window(empty, now=1)


def test_status_names_the_last_backup_and_the_archived_range() -> None:
    status = load().status(INFO, now=2105)
    assert status["backups"] == 2
    assert status["last_backup"] == {"label": "D1", "type": "diff", "age_s": 100}
    assert status["recovery_from"] == 1010
    assert (status["wal_min"], status["wal_max"]) == (
        "000000010000000000000001",
        "000000010000000000000009",
    )


def test_the_listing_names_the_last_backup_its_age_and_the_window() -> None:
    text = load().window(INFO, now=2105)
    assert "last backup: D1 (diff), finished 100 s ago" in text
    assert "archived WAL: 000000010000000000000001 .. 000000010000000000000009" in text
    assert "recovery window: 1970-01-01T00:16:50+00:00 .. now" in text


def test_status_gives_the_ages_monitoring_alerts_on() -> None:
    status = load().status(INFO, now=2105, wal_archived_at=2090.7)
    assert status["full_age_s"] == 1095
    assert (status["wal_archived_at"], status["wal_age_s"]) == (2090, 15)
    assert status["at"] == 2105


def test_a_repository_without_archived_wal_has_no_wal_age() -> None:
    empty = [{"name": "pgha", "status": {"message": "no valid backups"}, "backup": []}]
    status = load().status(empty, now=50, wal_archived_at=None)
    assert (status["wal_archived_at"], status["wal_age_s"], status["full_age_s"]) == (
        None,
        None,
        None,
    )


def test_the_listing_says_when_the_newest_segment_was_archived() -> None:
    assert "newest segment archived 5 s ago" in load().window(INFO, now=2105, wal_archived_at=2100)


def test_every_command_takes_the_wal_mtime_that_pgha_backup_passes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # pgha-backup passes "$(newest_wal)" to each command, empty when nothing is archived.
    info = load()
    for argv in (["ages", "2100.5"], ["status", ""], ["window", "2100.5"]):
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(INFO)))
        assert info.main(["backup_info.py", *argv]) == 0, argv
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[0].isdigit()
    assert json.loads(printed[1])["wal_archived_at"] is None
    assert any(line.startswith("newest segment archived") for line in printed)
