"""The cache lease's arithmetic (app/fencelog.py): pure logic, no I/O."""

from __future__ import annotations

import pytest

from app.fence import Fence
from app.fencelog import CacheLease

pytestmark = pytest.mark.unit


def test_a_new_lease_holds_nothing_until_a_drain_renews_it() -> None:
    lease = CacheLease(1.0)
    assert lease.valid_since(now=0.0) is None
    lease.renew(10.0)
    assert lease.valid_since(now=10.5) == 10.0


def test_a_lease_checked_after_the_reply_fails_once_its_time_has_run_out() -> None:
    lease = CacheLease(1.0)
    lease.renew(10.0)
    started = lease.valid_since(now=10.9)
    assert started == 10.0
    assert lease.holds(started, now=10.99)
    assert not lease.holds(started, now=11.0)


def test_a_slow_drain_round_never_shortens_a_newer_lease() -> None:
    lease = CacheLease(1.0)
    lease.renew(12.0)
    lease.renew(11.0)
    assert lease.started == 12.0


def test_a_writer_waits_longer_than_any_lease_granted_before_its_commit() -> None:
    lease = CacheLease(1.0)
    assert lease.writer_wait() > lease.seconds


def test_the_fence_log_stores_fences_as_redis_does() -> None:
    for fence in (Fence.for_write(7), Fence.for_delete(7)):
        assert Fence.from_code(fence.encode()) == fence
