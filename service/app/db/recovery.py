"""How the API notices an outage of a dependency and comes back from it.

psycopg_pool (3.3) on its own recovers only as fast as traffic makes it, for two reasons
(read in its source and reproduced against real PostgreSQL, see tests/service/test_recovery.py):

* Nothing looks at idle connections. After an outage that no request saw, every idle
  connection is dead, and the pool's check-on-checkout loop discards them one per try,
  sleeping 0 s, then 1 s, then 2 s between tries (capped by the caller's wait), oldest
  first, while the replacements queue up behind the dead ones. A request that waits 0.25 s
  gets past two dead connections, one that waits 1.5 s past three; with a pool grown by
  earlier traffic the first requests after the server is back all time out.
* A failed connection attempt is retried after 1 s, 2 s, 4 s ... until `reconnect_timeout`.
  While such a series sleeps no request starts another attempt, so a server that is back
  stays unused for the rest of the sleep.

So the checkout here checks connections itself, without sleeping (a dead socket fails its
check at once), the pool's reconnect series is kept short (`pool_reconnect_timeout_seconds`),
and one prober per pool brings the pool back as soon as its server answers, whatever the
traffic.

Redis has one prober too, the cache's recovery loop; what paced it was the circuit breaker,
whose cooldown every failed probe re-armed, so a restarted Redis waited up to a full
cooldown (3 s) more. The breaker below holds only while it flaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import select
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..config import Settings

log = logging.getLogger("pgha.db")

# One direct connection attempt per pool every 250 ms while it is degraded: cheap for a
# server that is down (a refused connect), and well inside the 2 s recovery goal.
PROBE_INTERVAL_S = 0.25
# libpq's connect_timeout cannot go below 2 s; a probe must not sit that long on a
# black-holed address while the server may already be back under a new one.
PROBE_TIMEOUT_S = 1.0


def backoff_delay(failures: int, initial: float, cap: float, factor: float = 2.0) -> float:
    """Delay before the next try after ``failures`` consecutive failures: 0 for the first
    try, then ``initial``, growing by ``factor`` and never above ``cap``."""
    if failures <= 0:
        return 0.0
    # The exponent is clamped only so that a long outage cannot overflow the float.
    return min(cap, initial * factor ** min(failures - 1, 64))


# A connection that finished a request this recently, and whose socket has nothing to read
# (no FIN or RST from a server or HAProxy that dropped it, no termination notice), skips the
# checkout's check: that check is a round trip through HAProxy, and on a busy pool it cost as
# much as the request's own query. Short on purpose: past it, or at light load, every
# checkout is checked as before, so a server frozen since the last answer (docker pause, which
# the socket cannot show) is caught by the check's deadline unless it froze within this window.
FRESH_CONNECTION_S = 0.1


def quiet_socket(conn: Any) -> bool:
    """True if ``conn``'s socket has nothing to read; an idle session only gets input when
    the server is closing it (or the peer is gone), so anything else is suspect."""
    try:
        poller = select.poll()  # not select.select(): no FD_SETSIZE limit
        poller.register(conn.pgconn.socket, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError, psycopg.Error):
        return False


class GuardedPool:
    """A pool, its health as requests and the prober see it, and a checked checkout.

    While degraded (a request failed, and the prober has not seen the server answer since),
    callers wait only briefly for a connection: a server that is down would otherwise make
    every request sit out the full pool wait, piling up clients.
    """

    def __init__(self, name: str, pool: AsyncConnectionPool, settings: Settings) -> None:
        self.name = name
        self.pool = pool
        self._full_wait = settings.pool_timeout_seconds
        self._short_wait = min(settings.pool_degraded_timeout_seconds, self._full_wait)
        self.degraded = False
        # Set when the prober has work: the pool failed, or a dead connection turned up.
        self.trouble = asyncio.Event()
        # Checks abandoned at a caller's deadline; referenced so they are not collected.
        self._late: set[asyncio.Task[None]] = set()
        # Loop time at which each connection last finished a request without error.
        self._ok_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def wait_timeout(self) -> float:
        return self._short_wait if self.degraded else self._full_wait

    def mark_failed(self) -> None:
        if not self.degraded:
            log.warning("%s pool unavailable; failing fast until it recovers", self.name)
        self.degraded = True
        self.trouble.set()

    def mark_ok(self) -> None:
        if self.degraded:
            log.warning("%s pool recovered", self.name)
        self.degraded = False

    def suspect(self) -> None:
        """A dead connection turned up: its idle siblings are probably dead too."""
        self.trouble.set()

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Any]:
        conn = await self._checkout(timeout or self.wait_timeout())
        try:
            async with conn:
                try:
                    yield conn
                except (psycopg.OperationalError, pgerrors.ReadOnlySqlTransaction):
                    # Really close (the pool sees it closed and replaces it): the server is
                    # gone, or HAProxy pinned this session to a node no longer the primary.
                    await conn.close()
                    raise
                self._ok_at[conn] = asyncio.get_running_loop().time()
        finally:
            await self.pool.putconn(conn)

    async def _checkout(self, timeout: float) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")
            conn = await self.pool.getconn(timeout=remaining)
            used = self._ok_at.pop(conn, None)
            if used is not None and loop.time() - used < FRESH_CONNECTION_S and quiet_socket(conn):
                return conn
            check = asyncio.ensure_future(self.pool.check_connection(conn))
            try:
                done, _ = await asyncio.wait({check}, timeout=max(0.0, deadline - loop.time()))
            except BaseException:
                self._settle_later(check, conn)
                raise
            if not done:
                # A frozen server: the check may hang for as long as it stays frozen. The
                # caller keeps its deadline; the connection goes back when the check ends.
                self._settle_later(check, conn)
                raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")
            if check.exception() is None:
                return conn
            # Dead, closed by the server or by HAProxy: a dead socket fails its check at
            # once, so the next connection is tried straight away, with no backoff.
            self.suspect()
            try:
                await conn.close()
            finally:
                await self.pool.putconn(conn)  # seen closed: the pool opens a replacement

    def _settle_later(self, check: asyncio.Future[None], conn: Any) -> None:
        async def settle() -> None:
            try:
                await check
            except Exception:
                await conn.close()
            with contextlib.suppress(Exception):
                await self.pool.putconn(conn)

        task = asyncio.ensure_future(settle())
        self._late.add(task)
        task.add_done_callback(self._late.discard)


class PoolProber:
    """Brings one pool back once its server answers, with or without traffic.

    Sleeps until the pool is in trouble, then connects to the server directly (not through
    the pool, whose own attempts may be asleep in a backoff) every PROBE_INTERVAL_S. When
    the server answers it flushes the pool's dead idle connections with ``pool.check()``,
    which also starts a fresh connection, and ends the degraded state.
    """

    def __init__(
        self,
        guard: GuardedPool,
        conninfo: str,
        kwargs: dict[str, Any],
        interval: float = PROBE_INTERVAL_S,
        timeout: float = PROBE_TIMEOUT_S,
    ) -> None:
        self.guard = guard
        self._conninfo = conninfo
        self._kwargs = {**kwargs, "application_name": "pgha-api-probe"}
        self._interval = interval
        self._timeout = timeout

    async def run(self) -> None:
        while True:
            await self.guard.trouble.wait()
            # Cleared before the attempt: trouble reported meanwhile gets an attempt of its own.
            self.guard.trouble.clear()
            while not await self.attempt():
                await asyncio.sleep(self._interval)

    async def attempt(self) -> bool:
        """One probe; True once the server answered and the pool has been refreshed."""
        try:
            await self._probe_server()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.debug("%s server still unreachable: %s", self.guard.name, type(exc).__name__)
            self.guard.mark_failed()
            return False
        try:
            await self.guard.pool.check()
        except Exception:
            # Keep probing: without the prober a degraded pool would only recover on traffic.
            log.exception("refreshing the %s pool failed unexpectedly", self.guard.name)
            return False
        self.guard.mark_ok()
        return True

    async def _probe_server(self) -> None:
        async with asyncio.timeout(self._timeout):
            conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._kwargs)
        try:
            # A query, not just the handshake: a server still starting up accepts TCP but
            # answers "the database system is starting up".
            await conn.execute("SELECT pg_is_in_recovery()")
        finally:
            await conn.close()


# ------------------------------------------------------------------ Redis breaker

# A trip this soon after the breaker closed means it is flapping (e.g. Redis answers the
# recovery ping but is too slow for requests): each such trip doubles the hold.
FLAP_WINDOW_S = 10.0
FIRST_FLAP_HOLD_S = 0.5


class CircuitBreaker:
    """Closed: use Redis. Open: skip it. Only the recovery loop closes it again.

    After a trip the recovery loop may close it at once: a Redis that was down for a while
    is used again within one probe interval of answering. Only a breaker that keeps
    re-tripping right after closing is held open longer, up to ``max_hold``. A failed probe
    never extends the hold, so probing goes on at the loop's pace.
    """

    def __init__(self, max_hold: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_hold = max_hold
        self._clock = clock
        self._open_until = 0.0
        self._closed_at = -math.inf
        self._flaps = 0
        self.closed = True

    def is_open(self) -> bool:
        return not self.closed

    def cooled_down(self) -> bool:
        return self._clock() >= self._open_until

    def trip(self) -> None:
        if not self.closed:
            return
        now = self._clock()
        self._flaps = self._flaps + 1 if now - self._closed_at < FLAP_WINDOW_S else 0
        self.closed = False
        self._open_until = now + backoff_delay(self._flaps, FIRST_FLAP_HOLD_S, self._max_hold)

    def close(self) -> None:
        self.closed = True
        self._closed_at = self._clock()
