"""Fences that Redis did not take, made durable in PostgreSQL, and the cache lease they bound.

A write is acknowledged only once its fence is where every reader will honour it: in Redis
(on the primary and its replica, in sentinel mode), or else in the ``cache_fence_log`` table
on the PostgreSQL primary, the one store every instance reaches whenever a write can commit.
Every instance drains that log into Redis about five times per lease, and serves cache
hits only under a *lease*: the moment it last read the log (and placed what it held) plus
``PGHA_CACHE_LEASE_SECONDS``. A writer whose fence went to the log acknowledges once the
entry has been placed and deleted by some instance, or one lease after it committed,
whichever comes first. Why that is enough (service/README.md, "Cache leases"):

* a lease taken after the entry committed was granted by a drain that saw the entry and
  placed it in Redis first, so its hits find the fence;
* a lease taken before it expires before the writer answers, and the hit path checks the
  lease after Redis replied, so any hit it still serves was read before the acknowledgement.

The in-memory queue in app/cache/store.py stays: it places an instance's own fences as soon as
its Redis comes back. The log is what outlives the instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..api.errors import WriteUnconfirmed
from ..db.database import Database, DatabaseUnavailable
from ..metrics import Metrics
from .fence import Fence, merge

log = logging.getLogger("pgha.fencelog")

# How many log entries one read and one pipeline of fence scripts take: a round reads
# batches until one is short, and only then renews the lease.
DRAIN_BATCH = 1000
# Monotonic clocks on different hosts tick at slightly different rates, and a lease is
# measured on the reader's clock while the writer waits on its own: wait this much longer.
CLOCK_MARGIN = 1.05
CLOCK_SLACK_SECONDS = 0.01


@dataclass
class CacheLease:
    """When this instance last knew every logged fence was in Redis; hits are served only
    while ``started + seconds`` lies ahead, checked before the lookup and after its reply."""

    seconds: float
    started: float = float("-inf")

    def valid_since(self, now: float | None = None) -> float | None:
        """The lease's start if it is valid now, else None (to be rechecked with `holds`)."""
        now = time.monotonic() if now is None else now
        return self.started if now < self.started + self.seconds else None

    def holds(self, started: float, now: float | None = None) -> bool:
        """Whether the lease that began at `started` still holds (after a Redis reply)."""
        now = time.monotonic() if now is None else now
        return now < started + self.seconds

    def renew(self, started: float) -> None:
        # Never backwards: a slow drain round must not shorten a newer round's lease.
        self.started = max(self.started, started)

    def writer_wait(self) -> float:
        """How long after a logged fence commits its writer waits at most to answer."""
        return self.seconds * CLOCK_MARGIN + CLOCK_SLACK_SECONDS


# Places fences in Redis (durably, in sentinel mode); False if Redis did not take them all.
Placer = Callable[[dict[int, Fence]], Awaitable[bool]]


class FenceLog:
    def __init__(self, db: Database, lease: CacheLease, metrics: Metrics) -> None:
        self.db = db
        self.lease = lease
        self.metrics = metrics

    async def make_durable(self, product_id: int, fence: Fence) -> None:
        """Log a fence Redis did not take, then wait until it is placed or a lease has run.

        Raises WriteUnconfirmed if the log cannot be written either (the primary went away
        right after the commit): the write must not be acknowledged.
        """
        try:
            entry = await self.db.log_fence(product_id, fence.encode())
        except DatabaseUnavailable as exc:
            raise WriteUnconfirmed(
                "the write was committed, but its cache invalidation reached neither Redis "
                f"nor the fence log ({exc.reason}); it is not acknowledged"
            ) from exc
        # Measured from the commit's answer, which is after the commit itself: a lease
        # granted before the commit began earlier still, and ends before this deadline.
        deadline = time.monotonic() + self.lease.writer_wait()
        self.metrics.fence_log_writes.inc()
        step = min(0.05, self.lease.seconds / 10)
        while (remaining := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(step, remaining))
            try:
                if not await self.db.fence_logged(entry):
                    self.metrics.fence_log_placed_early.inc()
                    return
            except DatabaseUnavailable:
                # Only a shortcut: the deadline alone is enough for the guarantee.
                continue

    async def drain(self, place: Placer) -> bool:
        """One round: read the log on the primary, place what it holds in Redis, delete
        exactly those entries, until a read finds less than a batch. True if the lease was
        renewed: everything logged before the round began is now in Redis."""
        started = time.monotonic()
        while True:
            # Only the primary has every entry: a replica may not have replayed the newest.
            entries = await self.db.fence_log_batch(DRAIN_BATCH)
            if not entries:
                break
            fences: dict[int, Fence] = {}
            for _, product_id, code in entries:
                logged = Fence.from_code(code)
                fences[product_id] = merge(fences.get(product_id), logged) or logged
            if not await place(fences):
                return False
            # The ids read, not a range: a smaller id may commit after this read (ids are
            # drawn at INSERT, not at COMMIT), and deleting it unplaced would lose its fence.
            await self.db.delete_fence_log([entry_id for entry_id, _, _ in entries])
            self.metrics.fence_log_drained.inc(len(entries))
            if len(entries) < DRAIN_BATCH:
                break
        self.lease.renew(started)
        return True

    async def drain_loop(self, place: Placer, interval: float) -> None:
        while True:
            try:
                renewed = await self.drain(place)
            except DatabaseUnavailable as exc:
                # The lease runs out and reads bypass the cache: with the primary out of
                # reach, this instance cannot know which writes another one acknowledged.
                log.debug("fence log unreadable: %s", exc.reason)
                renewed = False
            except Exception:
                log.exception("fence log drain failed unexpectedly")
                renewed = False
            if not renewed:
                self.metrics.lease_misses.inc()
            await asyncio.sleep(interval)
