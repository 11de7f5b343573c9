"""infra/restore.py check_window: which restore targets a source repository's status refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from infra.config import RestoreConfig
from infra.restore import check_window

# The oldest backup ended at 1000 s, the newest segment was archived at 5000 s.
STATUS: dict[str, Any] = {"recovery_from": 1000, "wal_archived_at": 5000}


def restore(at: float | None) -> RestoreConfig:
    moment = None if at is None else datetime.fromtimestamp(at, UTC)
    return RestoreConfig(
        source="dev", target="latest" if at is None else "t", passphrase="p", moment=moment
    )


@pytest.mark.parametrize("at", [1000, 3000, 5000, None])
def test_a_target_inside_the_window_or_latest_is_accepted(at: float | None) -> None:
    check_window(restore(at), STATUS)


def test_a_target_before_the_oldest_backup_is_refused_with_its_end() -> None:
    with pytest.raises(ValueError, match=r"before the oldest backup of dev, which ended at 1970"):
        check_window(restore(999), STATUS)


def test_a_target_after_the_newest_archived_wal_is_refused_with_its_time() -> None:
    with pytest.raises(ValueError, match=r"after the newest archived WAL of dev, archived at 1970"):
        check_window(restore(5001), STATUS)


def test_a_repository_without_a_backup_is_refused_even_for_latest() -> None:
    with pytest.raises(ValueError, match="holds no backup yet"):
        check_window(restore(None), {"recovery_from": None, "wal_archived_at": None})


def test_a_status_without_the_archive_time_bounds_only_from_below() -> None:
    check_window(restore(10**9), {"recovery_from": 1000})
