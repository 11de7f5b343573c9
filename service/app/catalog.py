"""Read and write paths for products: cache, fences, replica, and primary fallbacks."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from .api.errors import (
    IdempotencyConflict,
    NotFound,
    PrimaryUnavailable,
    ReplicaUnavailable,
    VersionMismatch,
)
from .cache.fence import Fence, Lookup
from .cache.fencelog import FenceLog
from .cache.store import ProductCache
from .config import Settings
from .db.database import (
    Database,
    DatabaseUnavailable,
    IdempotencyKeyReused,
    Source,
    VersionConflict,
)
from .metrics import Metrics
from .models import ProductIn, ProductRow

log = logging.getLogger("pgha.catalog")

ReadSource = Literal["cache", "replica", "primary"]


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which costs a
# cache hit (one of these per request) more than half a microsecond.
@dataclass(slots=True)
class ReadResult:
    body: bytes
    version: int
    cache: Literal["HIT", "MISS", "BYPASS"]
    source: ReadSource


class Catalog:
    def __init__(
        self, settings: Settings, db: Database, cache: ProductCache, metrics: Metrics
    ) -> None:
        self.db = db
        self.cache = cache
        self.metrics = metrics
        self.fallback_to_primary = settings.read_fallback == "primary"
        self.fence_log = FenceLog(db, cache.lease, metrics)

    # ------------------------------------------------------------------ reads

    async def _read_replica(
        self, product_id: int, barrier: str | None = None, *, fresh: bool = False
    ) -> tuple[ProductRow | None, Source]:
        """The replica's row; with `barrier`, only if that replica has replayed the WAL up
        to it (the last cache failover's barrier, or with `fresh` the primary's position
        read for this request), else the primary's."""
        try:
            if barrier is None:
                return await self.db.read_product(self.db.read, product_id)
            row, source, replayed = await self.db.read_product_after(
                self.db.read, product_id, barrier
            )
            if replayed:
                return row, source
            # This replica has not replayed every write acknowledged before the barrier,
            # whose fences may be lost or out of reach: only the primary can answer for sure.
            if fresh:
                self.metrics.fresh_redirects.inc()
                return await self._read_primary(
                    product_id, "replica is behind and the primary is down"
                )
            self.metrics.barrier_redirects.inc()
            return await self._read_primary(
                product_id, "replica is behind the last cache failover and the primary is down"
            )
        except DatabaseUnavailable as exc:
            self.metrics.backend_errors.labels("replica").inc()
            if not self.fallback_to_primary:
                raise ReplicaUnavailable(f"read path unavailable: {exc.reason}") from exc
            log.info("read pool unavailable (%s); falling back to the primary", exc.reason)
        return await self._read_primary(product_id, "read path and primary both unavailable")

    async def _read_primary(self, product_id: int, why: str) -> tuple[ProductRow | None, Source]:
        try:
            return await self.db.read_product(self.db.write, product_id)
        except DatabaseUnavailable as exc:
            self.metrics.backend_errors.labels("primary").inc()
            raise PrimaryUnavailable(f"{why}: {exc.reason}") from exc

    async def _read_first(
        self, product_id: int, lookup: Lookup
    ) -> tuple[ProductRow | None, Source]:
        if lookup.primary:
            # Fences may be missing (a cache failover): the primary cannot be behind any
            # acknowledged write. If it is down, the replica is still checked against the
            # fences that are known, as in any bypass.
            try:
                return await self.db.read_product(self.db.write, product_id)
            except DatabaseUnavailable as exc:
                self.metrics.backend_errors.labels("primary").inc()
                log.info("primary read during a cache failover failed (%s)", exc.reason)
        elif lookup.fresh:
            return await self._read_fresh(product_id, lookup.barrier)
        return await self._read_replica(product_id, lookup.barrier)

    async def _read_fresh(
        self, product_id: int, barrier: str | None
    ) -> tuple[ProductRow | None, Source]:
        """A bypassed read: the replica's row once it has replayed the primary's WAL position
        read now, since any write acknowledged before this request is at or before it."""
        try:
            lsn = await self.db.current_lsn()
        except DatabaseUnavailable:
            # No write can be acknowledged without the primary: the replica is as fresh as
            # anything that can be read, checked against the fences this process knows.
            return await self._read_replica(product_id, barrier)
        return await self._read_replica(product_id, lsn, fresh=True)

    def hit(self, lookup: Lookup) -> ReadResult:
        """A cache hit's result: no I/O left to do, so the read fast path calls it directly."""
        assert lookup.body is not None and lookup.version is not None
        self.metrics.read_source_children["cache"].inc()
        return ReadResult(lookup.body, lookup.version, "HIT", "cache")

    async def get(self, product_id: int, lookup: Lookup | None = None) -> ReadResult:
        """Read one product; ``lookup`` is a cache lookup already made for this request."""
        if lookup is None:
            lookup = await self.cache.lookup(product_id)
        if lookup.status == "hit":
            return self.hit(lookup)

        # Already merged: Redis's fence (every instance) and this process's recent writes.
        fence = lookup.fence
        row, source = await self._read_first(product_id, lookup)
        if (
            source == "replica"
            and fence is not None
            and not fence.admits_row(None if row is None else row.version)
        ):
            # The replica has not replayed a write this client may already have seen.
            self.metrics.fence_redirects.inc()
            row, source = await self._read_primary(
                product_id, "replica is behind a recent write and the primary is unavailable"
            )
        self.metrics.read_source_children[source].inc()
        cache_status: Literal["MISS", "BYPASS"] = "MISS" if lookup.status == "miss" else "BYPASS"
        if row is None:
            raise NotFound(headers={"X-Cache": cache_status, "X-Read-Source": source})
        body = row.to_json()
        if lookup.status == "miss":
            await self.cache.fill(product_id, row.version, body, lookup.epoch)
        return ReadResult(body, row.version, cache_status, source)

    async def epoch_barrier_loop(self, interval: float) -> None:
        """Sentinel mode: once a new cache epoch's grace is over, read the primary's LSN that
        replica rows must have replayed from then on (sentinel.EpochClock)."""
        clock = self.cache.epochs
        while True:
            await asyncio.sleep(interval)
            epoch = clock.barrier_due()
            if epoch is None:
                continue
            try:
                lsn = await self.db.current_lsn()
            except Exception as exc:
                # Retried next round; the grace period ends without a barrier if this lasts.
                log.warning("reading the primary's LSN for the cache epoch failed: %r", exc)
                continue
            if clock.set_barrier(epoch, lsn):
                log.info("replica reads now need the WAL replayed up to %s", lsn)

    async def page(self, after: int, limit: int) -> tuple[list[ProductRow], Source]:
        try:
            return await self.db.read_page(self.db.read, after, limit)
        except DatabaseUnavailable as exc:
            self.metrics.backend_errors.labels("replica").inc()
            if not self.fallback_to_primary:
                raise ReplicaUnavailable(f"read path unavailable: {exc.reason}") from exc
        try:
            return await self.db.read_page(self.db.write, after, limit)
        except DatabaseUnavailable as exc:
            self.metrics.backend_errors.labels("primary").inc()
            raise PrimaryUnavailable(
                f"read path and primary both unavailable: {exc.reason}"
            ) from exc

    # ----------------------------------------------------------------- writes

    async def _publish(self, product_id: int, fence: Fence) -> None:
        """Put a committed write's fence where every reader honours it before answering:
        Redis, or else the fence log (app/cache/fencelog.py)."""
        if not await self.cache.record_write(product_id, fence):
            await self.fence_log.make_durable(product_id, fence)

    def _primary_down(self, exc: DatabaseUnavailable) -> PrimaryUnavailable:
        self.metrics.backend_errors.labels("primary").inc()
        return PrimaryUnavailable(f"write path unavailable: {exc.reason}")

    async def create(self, data: ProductIn, key: str | None = None) -> tuple[ProductRow, bool]:
        """Create a product; returns it and whether ``key`` had already created it."""
        try:
            row, replayed = await self.db.insert(data, key)
        except DatabaseUnavailable as exc:
            raise self._primary_down(exc) from exc
        except IdempotencyKeyReused as exc:
            raise IdempotencyConflict(
                "this Idempotency-Key already created a product from a different body"
            ) from exc
        # Also on a repeat: the instance that ran the first attempt may have died between
        # COMMIT and its fence, and this answer promises read-your-own-create just the same.
        # The fence only moves forward, so raising it again is harmless.
        await self._publish(row.id, Fence.for_write(row.version))
        return row, replayed

    async def replace(
        self, product_id: int, data: ProductIn, expected_version: int | None
    ) -> ProductRow:
        try:
            row = await self.db.update(product_id, data, expected_version)
        except DatabaseUnavailable as exc:
            raise self._primary_down(exc) from exc
        except VersionConflict as exc:
            raise VersionMismatch("If-Match does not match the current version") from exc
        if row is None:
            raise NotFound
        await self._publish(product_id, Fence.for_write(row.version))
        return row

    async def delete(self, product_id: int) -> None:
        try:
            last_version = await self.db.delete(product_id)
        except DatabaseUnavailable as exc:
            raise self._primary_down(exc) from exc
        if last_version is None:
            raise NotFound
        await self._publish(product_id, Fence.for_delete(last_version))
