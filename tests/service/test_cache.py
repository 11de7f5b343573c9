"""The fence scripts and breaker of the cache module, driven in-process against real Redis."""

from __future__ import annotations

import asyncio
import itertools
import time

import redis

from app.cache.fence import Fence
from app.cache.store import ProductCache

from .conftest import Stack, run_with_cache
from .servers import free_port

_ids = itertools.count(7_000_000_000)


def test_fence_only_moves_forward(stack: Stack, rds: redis.Redis) -> None:
    pid = next(_ids)

    async def body(cache: ProductCache) -> None:
        assert await cache.record_write(pid, Fence.for_write(5))
        assert await cache.record_write(pid, Fence.for_write(3))

    run_with_cache(stack.redis.url, body)
    assert rds.get(f"product:{pid}:fence") == b"5"
    assert 0 < rds.ttl(f"product:{pid}:fence") <= 300


def test_fill_below_the_fence_is_refused(stack: Stack, rds: redis.Redis) -> None:
    pid = next(_ids)

    async def body(cache: ProductCache) -> None:
        await cache.record_write(pid, Fence.for_write(5))
        assert not await cache.fill(pid, 4, b'{"v":4}')
        assert rds.exists(f"product:{pid}") == 0
        assert await cache.fill(pid, 5, b'{"v":5}')
        hit = await cache.lookup(pid)
        assert (hit.status, hit.version, hit.body) == ("hit", 5, b'{"v":5}')

    run_with_cache(stack.redis.url, body)
    assert rds.get(f"product:{pid}") == b'5|{"v":5}'


def test_fill_never_downgrades_a_newer_entry(stack: Stack, rds: redis.Redis) -> None:
    pid = next(_ids)

    async def body(cache: ProductCache) -> None:
        assert await cache.fill(pid, 7, b"seven")
        assert not await cache.fill(pid, 6, b"six")

    run_with_cache(stack.redis.url, body)
    assert rds.get(f"product:{pid}") == b"7|seven"


def test_slow_reader_cannot_reinstall_a_row_older_than_a_finished_write(
    stack: Stack, rds: redis.Redis
) -> None:
    pid = next(_ids)

    async def body(cache: ProductCache) -> None:
        await cache.record_write(pid, Fence.for_write(1))
        before = await cache.lookup(pid)  # a reader misses and fetches v1 from the replica...
        assert before.status == "miss"
        await cache.record_write(pid, Fence.for_write(2))  # ...a PUT commits v2 meanwhile...
        assert not await cache.fill(pid, 1, b"old")  # ...and the late fill is refused.
        assert (await cache.lookup(pid)).status == "miss"

    run_with_cache(stack.redis.url, body)
    assert rds.exists(f"product:{pid}") == 0


def test_delete_tombstone_blocks_every_fill_and_hit(stack: Stack, rds: redis.Redis) -> None:
    pid = next(_ids)

    async def body(cache: ProductCache) -> None:
        assert await cache.fill(pid, 3, b"three")
        await cache.record_write(pid, Fence.for_delete(3))
        assert not await cache.fill(pid, 3, b"three")
        assert not await cache.fill(pid, 99, b"ninety-nine")
        lookup = await cache.lookup(pid)
        assert lookup.status == "miss"
        assert lookup.fence == Fence(4, deleted=True)
        assert lookup.fence.admits_row(None)
        assert not lookup.fence.admits_row(3)
        # A late fence of an earlier update must not lift the tombstone.
        await cache.record_write(pid, Fence.for_write(3))

    run_with_cache(stack.redis.url, body)
    assert rds.get(f"product:{pid}:fence") == b"-4"
    assert rds.exists(f"product:{pid}") == 0


def test_local_fence_rejects_a_cached_entry_redis_was_not_told_about(
    stack: Stack,
) -> None:
    pid = next(_ids)

    async def body(cache: ProductCache) -> None:
        await cache.fill(pid, 1, b"one")
        assert (await cache.lookup(pid)).status == "hit"
        cache.recent.put(pid, Fence.for_write(2))
        lookup = await cache.lookup(pid)
        assert lookup.status == "miss"
        assert lookup.fence == Fence(2)

    run_with_cache(stack.redis.url, body)


def test_dead_redis_trips_the_breaker_and_reads_bypass(stack: Stack) -> None:
    dead = f"redis://default:x@127.0.0.1:{free_port()}/0"

    async def body(cache: ProductCache) -> None:
        first = await cache.lookup(1)
        assert first.status == "bypass"
        assert cache.breaker.is_open()
        errors = cache.metrics.backend_errors.labels("redis")._value.get()
        # While open, Redis is not even tried: no new error is recorded.
        assert (await cache.lookup(1)).status == "bypass"
        assert cache.metrics.backend_errors.labels("redis")._value.get() == errors
        assert not await cache.record_write(1, Fence.for_write(2))
        assert cache.pending == 1
        assert (await cache.lookup(1)).fence == Fence(2)

    run_with_cache(dead, body, redis_breaker_seconds=30)


def test_an_isolated_timeout_bypasses_without_tripping_the_breaker(
    stack: Stack, rds: redis.Redis
) -> None:
    pid = next(_ids)

    async def body(cache: ProductCache) -> None:
        assert await cache.fill(pid, 1, b"one")
        rds.client_pause(150)  # looks like a stall of our own: one call times out, then fine
        assert (await cache.lookup(pid)).status == "bypass"
        assert cache.breaker.closed
        await asyncio.sleep(0.2)
        assert (await cache.lookup(pid)).status == "hit"

    run_with_cache(stack.redis.url, body)


def test_timeouts_that_persist_trip_the_breaker(stack: Stack, rds: redis.Redis) -> None:
    pid = next(_ids)

    async def body(cache: ProductCache) -> None:
        rds.client_pause(1500)
        deadline = time.monotonic() + 1.2
        while cache.breaker.closed and time.monotonic() < deadline:
            assert (await cache.lookup(pid)).status == "bypass"
        assert not cache.breaker.closed
        assert (await cache.lookup(pid)).status == "bypass"

    run_with_cache(stack.redis.url, body, redis_breaker_seconds=30)
    rds.client_unpause()


def test_failed_invalidation_is_replayed_before_redis_is_trusted_again(
    stack: Stack, rds: redis.Redis
) -> None:
    pid = next(_ids)

    async def body(cache: ProductCache) -> None:
        await cache.record_write(pid, Fence.for_write(1))
        assert await cache.fill(pid, 1, b"one")
        # Redis still answers reads but holds writes: the PUT's fence script times out.
        rds.client_pause(400, all=False)
        assert not await cache.record_write(pid, Fence.for_write(2))
        assert cache.pending == 1
        assert rds.get(f"product:{pid}") == b"1|one"  # the stale body really is still there
        assert (await cache.lookup(pid)).status == "bypass"

        # Requests never replay: only recover() (the background loop) closes the breaker.
        await asyncio.sleep(0.5)
        assert (await cache.lookup(pid)).status == "bypass"
        deadline = time.monotonic() + 10
        while not await cache.recover() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert cache.pending == 0
        assert cache.breaker.closed

    run_with_cache(stack.redis.url, body)
    assert rds.get(f"product:{pid}:fence") == b"2"
    assert rds.exists(f"product:{pid}") == 0


def test_overflowing_invalidation_queue_purges_every_cached_body(
    stack: Stack, rds: redis.Redis
) -> None:
    ids = [next(_ids) for _ in range(3)]

    async def body(cache: ProductCache) -> None:
        for pid in ids:
            assert await cache.fill(pid, 1, b"one")
        rds.client_pause(400, all=False)
        for pid in ids:
            await cache.record_write(pid, Fence.for_write(2))
        assert cache.pending == 2  # bounded: the oldest queued invalidation was dropped...
        deadline = time.monotonic() + 10
        while not await cache.recover() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    run_with_cache(stack.redis.url, body, recent_writes_max=2)
    # ...so every cached body went, including the one whose invalidation was lost.
    assert [rds.exists(f"product:{pid}") for pid in ids] == [0, 0, 0]
    assert [rds.get(f"product:{pid}:fence") for pid in ids[1:]] == [b"2", b"2"]
