"""The cache fence: which of two fences wins, and what a fence lets through."""

from __future__ import annotations

import pytest

from app.cache.fence import Fence, merge


def test_merge_keeps_the_other_fence_when_one_side_is_missing() -> None:
    f = Fence(3)
    assert merge(None, f) == f
    assert merge(f, None) == f
    assert merge(None, None) is None


def test_merge_keeps_the_higher_version_whichever_side_it_is_on() -> None:
    assert merge(Fence(2), Fence(5)) == Fence(5)
    assert merge(Fence(5, True), Fence(2)) == Fence(5, True)


def test_a_delete_wins_over_a_write_of_the_same_version() -> None:
    assert merge(Fence(4), Fence(4, True)) == Fence(4, True)
    assert merge(Fence(4, True), Fence(4)) == Fence(4, True)


@pytest.mark.parametrize("fence", [Fence(7), Fence(7, True), Fence(0)])
def test_a_fence_survives_its_redis_encoding(fence: Fence) -> None:
    assert Fence.decode(str(fence.encode()).encode()) == fence
    assert Fence.decode(None) is None


def test_a_cached_body_older_than_the_fence_is_refused() -> None:
    assert not Fence(5).admits_cached(4)
    assert Fence(5).admits_cached(5)
    assert not Fence(5, True).admits_cached(9)


def test_a_replica_row_must_be_as_fresh_as_the_fence_or_absent_after_a_delete() -> None:
    assert not Fence(5).admits_row(None)
    assert not Fence(5).admits_row(4)
    assert Fence(5).admits_row(6)
    assert Fence(5, True).admits_row(None)
    assert not Fence(5, True).admits_row(5)
