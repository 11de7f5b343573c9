"""PostgreSQL access: the write and read pools, the schema bootstrap, and the product
reads and writes (their SQL: app/db/sql.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..config import Settings
from ..models import INT4_MAX, ProductIn, ProductRow
from . import sql
from .recovery import GuardedPool, PoolProber, backoff_delay

log = logging.getLogger("pgha.db")

T = TypeVar("T")
Source = Literal["primary", "replica"]

# Errors that mean "this server or the path to it is not usable right now".
_UNAVAILABLE = (PoolTimeout, psycopg.OperationalError)


class DatabaseUnavailable(Exception):
    """A pool could not serve the request; ``reason`` is safe to show to clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VersionConflict(Exception):
    pass


class IdempotencyKeyReused(Exception):
    """The key already created a product from a different body."""


def _row(values: tuple[Any, ...]) -> ProductRow | None:
    if values[0] is None:
        return None
    pid, name, description, price, stock, version, updated_at = values
    return ProductRow(pid, name, description, Decimal(price), stock, version, updated_at)


def _describe(exc: BaseException) -> str:
    # Never echo driver messages: they name hosts and ports of the internal topology.
    if isinstance(exc, PoolTimeout):
        return "no connection available in time"
    if isinstance(exc, pgerrors.ReadOnlySqlTransaction):
        return "the write endpoint reached a read-only (standby) server"
    if isinstance(exc, pgerrors.UndefinedTable):
        return "schema not initialised yet"
    if isinstance(exc, psycopg.OperationalError):
        return f"connection failed ({type(exc).__name__})"
    return f"database error ({type(exc).__name__})"


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        common: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": settings.connect_timeout_param,
            "application_name": "pgha-api",
            # Detect a peer that vanished without a FIN (host down, network partition).
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
            "tcp_user_timeout": 2000,
        }
        # A write's transaction is idle between statements for an event-loop turn only. An
        # instance frozen (docker pause) inside one would hold its idempotency key until it
        # thaws, and HAProxy's retry of that POST elsewhere would wait on it, not answer.
        write_kwargs = {**common, "options": "-c idle_in_transaction_session_timeout=1000"}

        def make(name: str, dsn: str, kwargs: dict[str, Any]) -> GuardedPool:
            pool: AsyncConnectionPool = AsyncConnectionPool(
                dsn,
                kwargs=kwargs,
                min_size=settings.pool_min,
                max_size=settings.pool_max,
                open=False,
                name=name,
                timeout=settings.pool_timeout_seconds,
                # No `check=`: GuardedPool checks on checkout itself, because the pool's own
                # check loop backs off between dead connections (see app/db/recovery.py).
                reconnect_timeout=settings.pool_reconnect_timeout_seconds,
            )
            guard = GuardedPool(name, pool, settings)
            self.probers.append(PoolProber(guard, dsn, common))
            return guard

        self.probers: list[PoolProber] = []
        self.write = make("write", settings.write_dsn.get_secret_value(), write_kwargs)
        self.read = make("read", settings.read_dsn.get_secret_value(), common)
        self.schema_ready = asyncio.Event()

    async def open(self) -> None:
        # wait=False: the API must start (and report not-ready) even with a database down.
        await self.write.pool.open(wait=False)
        await self.read.pool.open(wait=False)

    async def close(self) -> None:
        await asyncio.gather(self.write.pool.close(timeout=2), self.read.pool.close(timeout=2))

    def pool_stats(self) -> dict[str, dict[str, int]]:
        return {g.name: g.pool.get_stats() for g in (self.write, self.read)}

    # ----------------------------------------------------------------- schema

    async def ensure_schema(self) -> None:
        async with self.write.connection(timeout=self.settings.pool_timeout_seconds) as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (sql.SCHEMA_LOCK_KEY,))
                await conn.execute(sql.SCHEMA_SQL)
                await conn.execute(sql.FENCE_LOG_SQL)
                cur = await conn.execute(sql.IDEMPOTENCY_STATE)
                has_columns, has_index = await cur.fetchone() or (True, True)
                if not has_columns:
                    await conn.execute(sql.IDEMPOTENCY_COLUMNS)
                if not has_index:
                    await conn.execute(sql.IDEMPOTENCY_INDEX)
        self.schema_ready.set()

    async def bootstrap_schema(self) -> None:
        """Create the schema, retrying forever: the primary may come up after the API."""
        failures = 0
        while True:
            try:
                await self.ensure_schema()
                log.info("schema ready")
                return
            except psycopg.Error as exc:
                # Unavailability and misconfiguration (e.g. missing privileges) alike: keep
                # retrying and keep saying why, rather than dying silently in the background.
                failures += 1
                # Capped at 1 s: writes answer "schema not initialised" until this succeeds.
                delay = backoff_delay(failures, 0.25, 1.0)
                log.warning(
                    "schema bootstrap deferred: %s; retrying in %.1fs", _describe(exc), delay
                )
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ reads

    async def _read(self, guard: GuardedPool, query: str, params: tuple[Any, ...]) -> list[Any]:
        # Reads are idempotent, so one retry on a fresh connection hides a connection that
        # broke since it was checked (e.g. right after a failover).
        for attempt in (1, 2):
            try:
                async with guard.connection() as conn:
                    cur = await conn.execute(query, params, prepare=True)
                    rows: list[Any] = await cur.fetchall()
                guard.mark_ok()
                return rows
            except PoolTimeout as exc:
                # Already waited for a connection; a second wait would only double the delay.
                # (Caught first: PoolTimeout is itself an OperationalError.)
                guard.mark_failed()
                raise DatabaseUnavailable(_describe(exc)) from exc
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    guard.mark_failed()
                    raise DatabaseUnavailable(_describe(exc)) from exc
                log.info(
                    "read on %s pool failed (%s), retrying once", guard.name, type(exc).__name__
                )
            except pgerrors.UndefinedTable as exc:
                raise DatabaseUnavailable(_describe(exc)) from exc
        raise AssertionError("unreachable")

    async def read_product(
        self, guard: GuardedPool, product_id: int
    ) -> tuple[ProductRow | None, Source]:
        rows = await self._read(guard, sql.READ_ONE, (product_id,))
        in_recovery, *values = rows[0]
        return _row(tuple(values)), "replica" if in_recovery else "primary"

    async def read_product_after(
        self, guard: GuardedPool, product_id: int, lsn: str
    ) -> tuple[ProductRow | None, Source, bool]:
        """``read_product``, and whether the server had replayed the WAL up to ``lsn``."""
        rows = await self._read(guard, sql.READ_ONE_AFTER, (lsn, product_id))
        in_recovery, replayed, *values = rows[0]
        return _row(tuple(values)), "replica" if in_recovery else "primary", bool(replayed)

    async def current_lsn(self) -> str:
        """The primary's WAL position now: every transaction it has acknowledged is before it."""
        rows = await self._read(self.write, "SELECT pg_current_wal_lsn()::text", ())
        return str(rows[0][0])

    # ------------------------------------------------------------- fence log

    async def fence_logged(self, entry: int) -> bool:
        """Whether a fence log entry is still waiting to be placed in Redis."""
        rows = await self._read(self.write, sql.FENCE_LOGGED, (entry,))
        return bool(rows[0][0])

    async def fence_log_batch(self, limit: int) -> list[tuple[int, int, int]]:
        """The oldest `limit` entries of the fence log, read on the primary."""
        rows = await self._read(self.write, sql.FENCE_LOG_BATCH, (limit,))
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    async def log_fence(self, product_id: int, code: int) -> int:
        """Log a fence durably on the primary; returns the entry's id."""

        async def op(conn: Any) -> int:
            cur = await conn.execute(sql.LOG_FENCE, (product_id, code))
            row = await cur.fetchone()
            return int(row[0])

        return await self._write(op)

    async def delete_fence_log(self, entries: list[int]) -> None:
        async def op(conn: Any) -> None:
            await conn.execute(sql.FENCE_LOG_DELETE, (entries,))

        await self._write(op)

    async def read_page(
        self, guard: GuardedPool, after: int, limit: int
    ) -> tuple[list[ProductRow], Source]:
        rows = await self._read(guard, sql.READ_PAGE, (after, limit))
        source: Source = "replica" if rows[0][0] else "primary"
        products = [r for r in (_row(tuple(values[1:])) for values in rows) if r is not None]
        return products, source

    async def probe(self, guard: GuardedPool, timeout: float) -> bool:
        """Return ``pg_is_in_recovery()`` of the server behind ``guard``; raises if down.

        Asks the pool as a request would. While the pool is degraded its prober's verdict
        stands instead, so /ready neither waits on a dead pool nor disagrees with requests.
        """
        if guard.degraded:
            raise DatabaseUnavailable("unreachable; the pool is reconnecting")
        try:
            async with guard.connection(timeout=min(timeout, guard.wait_timeout())) as conn:
                cur = await conn.execute("SELECT pg_is_in_recovery()")
                row = await cur.fetchone()
        except _UNAVAILABLE:
            # The prober decides, with a direct connection, whether the server is down.
            guard.suspect()
            raise
        assert row is not None
        guard.mark_ok()
        return bool(row[0])

    # ----------------------------------------------------------------- writes

    async def _write(self, op: Callable[[Any], Awaitable[T]]) -> T:
        for attempt in (1, 2):
            try:
                # No BEGIN/COMMIT: every write is one statement in autocommit (the follow-up
                # SELECTs only explain why it matched no row), and the two extra round trips
                # through HAProxy cost more than the statement itself.
                async with self.write.connection() as conn:
                    result = await op(conn)
                self.write.mark_ok()
                return result
            except pgerrors.UndefinedTable as exc:
                raise DatabaseUnavailable(_describe(exc)) from exc
            except pgerrors.ReadOnlySqlTransaction as exc:
                # After a switchover every pooled session may still be pinned to the demoted
                # node: replace them all, then retry once. Safe: a read-only server rejected
                # the first write statement, so nothing was committed.
                await self.write.pool.drain()
                if attempt == 2:
                    # Not mark_failed(): the server answers, it is only the wrong role, and
                    # /ready must be able to say so instead of "unreachable".
                    raise DatabaseUnavailable(_describe(exc)) from exc
                log.warning("write reached a read-only server; reconnecting and retrying once")
            except _UNAVAILABLE as exc:
                # No retry: a connection lost around COMMIT leaves the outcome unknown.
                self.write.mark_failed()
                raise DatabaseUnavailable(_describe(exc)) from exc
        raise AssertionError("unreachable")

    async def insert(self, data: ProductIn, key: str | None = None) -> tuple[ProductRow, bool]:
        """Create a product; with ``key``, at most once per key.

        Returns the row and whether it already existed (a repeat of the same request).
        Raises ``IdempotencyKeyReused`` if the key created a product from another body.
        """
        fingerprint = None if key is None else data.fingerprint()
        params = (data.name, data.description, data.price, data.stock, key, fingerprint)

        async def op(conn: Any) -> tuple[ProductRow, bool]:
            # Twice at most: the product a key created may be deleted between the INSERT
            # that found the key taken and the SELECT; the key is then free again.
            for _ in (1, 2):
                cur = await conn.execute(sql.INSERT, params)
                if (values := await cur.fetchone()) is not None:
                    row = _row(values)
                    assert row is not None
                    return row, False
                # A concurrent INSERT with the same key has committed (ON CONFLICT waited
                # for it), and this statement's new snapshot sees its row.
                cur = await conn.execute(sql.BY_IDEMPOTENCY_KEY, (key,))
                if (found := await cur.fetchone()) is not None:
                    if found[-1] != fingerprint:
                        raise IdempotencyKeyReused
                    row = _row(tuple(found[:-1]))
                    assert row is not None
                    return row, True
            raise AssertionError("the idempotency key was taken and freed twice in a row")

        return await self._write(op)

    async def update(
        self, product_id: int, data: ProductIn, expected_version: int | None
    ) -> ProductRow | None:
        """Replace a product; ``None`` if absent, ``VersionConflict`` if If-Match failed."""

        async def op(conn: Any) -> ProductRow | None:
            if expected_version is not None and not 0 <= expected_version <= INT4_MAX:
                cur = await conn.execute(sql.CURRENT_VERSION, (product_id,))
                if await cur.fetchone() is None:
                    return None
                raise VersionConflict
            cur = await conn.execute(
                sql.UPDATE,
                (
                    data.name,
                    data.description,
                    data.price,
                    data.stock,
                    product_id,
                    expected_version,
                    expected_version,
                ),
            )
            if (values := await cur.fetchone()) is not None:
                return _row(values)
            if expected_version is None:
                return None
            cur = await conn.execute(sql.CURRENT_VERSION, (product_id,))
            if await cur.fetchone() is None:
                return None
            raise VersionConflict

        return await self._write(op)

    async def delete(self, product_id: int) -> int | None:
        """Delete a product; return the version it had, or ``None`` if it did not exist."""

        async def op(conn: Any) -> int | None:
            cur = await conn.execute(sql.DELETE, (product_id,))
            row = await cur.fetchone()
            return None if row is None else int(row[0])

        return await self._write(op)


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    latency_ms: float
    in_recovery: bool | None = None
    error: str | None = None


async def timed_probe(call: Callable[[], Awaitable[bool]]) -> Probe:
    started = time.perf_counter()
    try:
        in_recovery = await call()
    except DatabaseUnavailable as exc:
        return Probe(False, (time.perf_counter() - started) * 1000, error=exc.reason)
    except (*_UNAVAILABLE, pgerrors.Error) as exc:
        return Probe(False, (time.perf_counter() - started) * 1000, error=_describe(exc))
    return Probe(True, (time.perf_counter() - started) * 1000, in_recovery=in_recovery)
