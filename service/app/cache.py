"""Redis product cache guarded by per-product version fences, with a circuit breaker.

The key layout and the fences are in app/fence.py, the scripts in app/cache_lua.py; this
module does the I/O: lookups, fills, fence raises, the breaker and the replay of fences that
could not be raised while Redis was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .cache_lua import FENCE_LUA, FILL_EPOCH_LUA, FILL_LUA
from .config import Settings
from .fence import Fence, Lookup, RecentWrites, cache_key, fence_key, lookup_command, merge
from .fencelog import CacheLease
from .metrics import Metrics
from .recovery import CircuitBreaker
from .redispipe import RedisPipe
from .sentinel import (
    EpochClock,
    make_sentinel,
    master_client,
    master_run_id,
    primary_epoch,
    resolver,
    split_body,
)

log = logging.getLogger("pgha.cache")


class NotDurable(RedisError):
    """Sentinel mode: the primary took a fence, its replica did not acknowledge it."""


REDIS_ERRORS = (RedisError, OSError, TimeoutError)
# How long a fence waits for the Redis replica's acknowledgement (sentinel mode) before the
# Sentinels are asked whether the node that took it is still the primary.
WAIT_SECONDS = 0.25
# How long a confirmation that a node is the Sentinels' primary stands in for the replica's
# acknowledgement, judged when a fence's reply arrives. A node can only be replaced after
# the Sentinels have found it unreachable for down-after-milliseconds (3 s here), and a
# fence acknowledged by a primary that is then replaced is covered by the epoch's grace
# and barrier (a new epoch starts at the promotion, its barrier is read 2 s or more later).
CONFIRMED_PRIMARY_SECONDS = 0.5
# Fence scripts replayed at once after an outage: enough to keep the pool's connections busy.
REPLAY_BATCH = 64


def make_client(settings: Settings) -> Redis:
    if settings.sentinel_mode:
        # The same connection settings, on a pool that asks the Sentinels where the primary
        # is. It is not a blocking pool (redis-py has none for Sentinel): only fences, fills
        # and pings use it, the hit path has its own connection.
        return master_client(
            make_sentinel(settings),
            settings,
            username=settings.redis_user,
            password=settings.redis_password,
            **connection_options(settings),
        )
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        # Bounded: a burst of requests on a cold or just-recovered pool would otherwise open
        # one connection each at the same moment and blow the tens-of-ms budget connecting.
        max_connections=settings.redis_max_connections,
        timeout=None,
        **connection_options(settings),
    )
    return Redis.from_pool(pool)


def connection_options(settings: Settings) -> dict[str, Any]:
    """How every cache connection behaves, single or sentinel mode."""
    return {
        # Every call is wrapped in asyncio.timeout(PGHA_REDIS_TIMEOUT_SECONDS), which also
        # covers waiting for a pooled connection and connecting; redis-py drops a connection
        # whose command was cancelled, so no reply can be misread later. A second per-read
        # timeout inside redis-py would only add overhead to the hit path.
        "socket_timeout": None,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        # No client-side retries: the breaker decides when Redis is worth trying again.
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "client_name": "pgha-api",
        # No CLIENT SETINFO: less handshake work per new connection.
        "driver_info": None,
    }


class LoopLag:
    """How late this process's event loop runs callbacks right now (a decaying maximum).

    A Redis reply waits in the same queue as every other ready callback; under CPU load that
    wait alone can exceed a tens-of-ms budget while Redis itself answers in microseconds.
    """

    def __init__(self, interval: float = 0.02, decay: float = 0.9) -> None:
        self._interval = interval
        self._decay = decay
        self.seconds = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self._interval)
            lag = max(0.0, loop.time() - started - self._interval)
            self.seconds = max(lag, self.seconds * self._decay)


class ProductCache:
    def __init__(self, client: Redis, settings: Settings, metrics: Metrics) -> None:
        self.client = client
        self.metrics = metrics
        self._ttl = settings.cache_ttl_seconds
        self._fence_ttl = settings.fence_ttl_seconds
        self._base_timeout = settings.redis_timeout_seconds
        self._fence_timeout = settings.fence_timeout_seconds or 0.0
        self.loop_lag = LoopLag()
        self._confirm_window = 2 * settings.redis_timeout_seconds
        self._timeouts_since: float | None = None
        self._pending_max = settings.recent_writes_max
        self._fence_script = client.register_script(FENCE_LUA)
        self._sentinel = settings.sentinel_mode
        self._guard = self._sentinel and settings.cache_failover_guard
        self.epochs = EpochClock(
            settings.cache_epoch_grace_seconds if self._guard else 0.0,
            with_barrier=self._guard and settings.cache_epoch_grace_seconds > 0,
        )
        self._fill_lua = FILL_EPOCH_LUA if self._sentinel else FILL_LUA
        self._fill_script = client.register_script(self._fill_lua)
        self.breaker = CircuitBreaker(settings.redis_breaker_seconds)
        # Renewed by the fence log's drain loop (app/fencelog.py); until its first round,
        # reads bypass the cache.
        self.lease = CacheLease(settings.cache_lease_seconds)
        # Sentinel mode: a fence counts once the replica has it too (WAIT), so a promotion
        # or an old primary that comes back cannot lose one that was acknowledged.
        self._wait_replicas = 1 if self._sentinel else 0
        self._sentinels = make_sentinel(settings) if self._sentinel else None
        # (run id, when the Sentinels were asked) of the last node they confirmed as primary.
        self._confirmed: tuple[str, float] | None = None
        self._service = settings.redis_sentinel_service
        self.recent = RecentWrites(settings.fence_ttl_seconds, settings.recent_writes_max)
        # Invalidations whose fence script failed: replayed before Redis is trusted again.
        self._pending: OrderedDict[int, Fence] = OrderedDict()
        self._pending_overflowed = False
        self._warm_connections = settings.redis_max_connections
        # Hit-path MGETs share one pipelined connection (redis-py's per-command pool
        # checkout and reply parsing cost more than the rest of a hit); scripts, pings and
        # scans stay on redis-py. None when the URL needs something only redis-py speaks.
        self._pipe = (
            RedisPipe(
                "",
                0,
                username=settings.redis_user,
                password=settings.redis_password,
                client_name="pgha-api",
                connect_timeout=settings.redis_timeout_seconds,
                resolve=resolver(make_sentinel(settings), settings.redis_sentinel_service),
                epoch_of=primary_epoch,
            )
            if self._sentinel
            else RedisPipe.from_url(
                settings.redis_url.get_secret_value(),
                client_name="pgha-api",
                connect_timeout=settings.redis_timeout_seconds,
            )
        )
        # Fills and fences ride the same pipe (EVALSHA): through redis-py each one cost a
        # pool checkout and its reply layers, more CPU than the rest of a miss's Redis work.
        # Not in sentinel mode, where a write's fence must find the primary through redis-py's
        # Sentinel-aware pool and a fill's script checks the epoch itself.
        self._script_pipe = None if self._sentinel else self._pipe
        metrics.breaker_open.set_function(lambda: 0.0 if self.breaker.closed else 1.0)
        metrics.pending_invalidations.set_function(lambda: float(len(self._pending)))

    @property
    def _timeout(self) -> float:
        # The budget is for Redis, not for our own queueing: add the measured event-loop lag
        # (capped), so an overloaded API keeps its cache instead of tripping the breaker and
        # shifting its whole read load onto PostgreSQL at the worst moment.
        return self._base_timeout + min(self.loop_lag.seconds, 3 * self._base_timeout)

    # ---------------------------------------------------------------- breaker

    def _read_failed(self, what: str, exc: BaseException) -> None:
        # A timeout may be our own stall (GC pause, CPU starvation): then every in-flight
        # call times out in the same instant while Redis is fine. Only timeouts that keep
        # coming, with no success in between, for longer than the confirmation window trip
        # the breaker; refused or reset connections trip it at once.
        if isinstance(exc, TimeoutError | RedisTimeoutError) and self.breaker.closed:
            now = time.monotonic()
            if self._timeouts_since is None:
                self._timeouts_since = now
            if now - self._timeouts_since < self._confirm_window:
                self.metrics.redis_errors.inc()
                return
        self._fail(what, exc)

    def _fail(self, what: str, exc: BaseException) -> None:
        self._timeouts_since = None
        if self.breaker.closed:
            log.warning(
                "redis %s failed (%s); bypassing cache for a while", what, type(exc).__name__
            )
        self.breaker.trip()
        if self._pipe is not None:
            # Requests skip Redis from now on; a connection that may be wedged must not be
            # what they find when the breaker closes again (warm() reconnects it first).
            self._pipe.reset()
        self.metrics.redis_errors.inc()

    async def recover(self) -> bool:
        """Try to close an open breaker: probe, replay queued invalidations, warm the pool.

        Runs only from the recovery loop (or a test), never on a request: one prober means a
        recovering Redis is not hit by every waiting request at once, and requests never
        pay for the replay.
        """
        if self.breaker.closed:
            return True
        if not self.breaker.cooled_down():
            return False
        try:
            async with asyncio.timeout(max(self._timeout, 0.25)):
                await self.client.ping()
            await self._replay()
            if self._pending_overflowed:
                await self._drop_all_bodies()
                self._pending_overflowed = False
        except REDIS_ERRORS as exc:
            # The breaker stays open but is not re-armed: the next round probes on time.
            self.metrics.redis_errors.inc()
            log.debug("redis still unavailable: %s", type(exc).__name__)
            return False
        await self.warm()
        if self._pending:
            # A write queued while warming: replay it next round rather than close with a
            # non-empty queue (no await from this check to close(), so none can slip in).
            return False
        self.breaker.close()
        log.warning("redis reachable again; queued invalidations replayed, cache in use")
        return True

    async def _replay(self) -> None:
        # In concurrent batches: one at a time, thousands of fences queued during an outage
        # would hold the cache unused for seconds after Redis is back. Per-product fences
        # are independent, and each product has one queued (merged) fence.
        while self._pending:
            batch = list(itertools.islice(self._pending.items(), REPLAY_BATCH))
            async with asyncio.timeout(max(self._timeout, 0.25) * 4):
                await asyncio.gather(*(self._run_fence_untimed(pid, f) for pid, f in batch))
            for product_id, fence in batch:
                # A write may have merged a newer fence in meanwhile: that one stays queued.
                if self._pending.get(product_id) == fence:
                    del self._pending[product_id]

    async def warm(self) -> None:
        """Open the pool's connections ahead of traffic, so bursts do not connect at once."""
        with contextlib.suppress(*REDIS_ERRORS):
            async with asyncio.timeout(1.0):
                pings: list[Awaitable[object]] = [
                    self.client.ping() for _ in range(self._warm_connections)
                ]
                # A restarted Redis has lost its script cache: without this the first fence
                # or fill would pay NOSCRIPT and SCRIPT LOAD inside its tens-of-ms budget.
                pings += [
                    self.client.script_load(FENCE_LUA),
                    self.client.script_load(self._fill_lua),
                ]
                if self._pipe is not None and not self._pipe.connected:
                    pings.append(self._pipe.connect())
                await asyncio.gather(*pings)
        self._observe_epoch(None if self._pipe is None else self._pipe.epoch)

    def _observe_epoch(self, epoch: bytes | None) -> None:
        # From the connection that answered: a new primary opens the grace period (the clock
        # starts at connect time when the recovery loop or warm-up made the connection).
        if epoch is not None and self.epochs.observe(epoch):
            log.warning("redis primary epoch is now %s", epoch.decode())

    async def _heal(self) -> None:
        """After a Redis restart that no request noticed (the breaker stayed closed), reopen
        the hit path's connection, then the pool and the scripts, before traffic pays."""
        if self._pipe is None or self._pipe.connected:
            return
        # The pipe alone first: while Redis stays down this costs one connect per round.
        try:
            async with asyncio.timeout(max(self._timeout, 0.25)):
                await self._pipe.connect()
        except REDIS_ERRORS:
            return
        log.info("redis connection dropped while in use; reconnected and re-warmed")
        await self.warm()

    async def aclose(self) -> None:
        if self._pipe is not None:
            await self._pipe.aclose()

    async def recovery_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if self.breaker.closed:
                    await self._heal()
                else:
                    await self.recover()
            except Exception:
                # Keep the loop alive: without it the breaker would never close again.
                log.exception("redis recovery attempt failed unexpectedly")

    async def _drop_all_bodies(self) -> None:
        # Too many invalidations were lost to track them one by one: drop every cached body
        # (fences stay) so nothing written during the outage can be served stale.
        log.warning("invalidation queue overflowed during a redis outage; purging cache")
        step_timeout = max(self._timeout, 1.0)
        cursor: int = 0
        while True:
            async with asyncio.timeout(step_timeout):
                page = await self.client.scan(cursor, match="product:*", count=1000)
            cursor, keys = cast(tuple[int, list[bytes]], page)
            bodies = [key for key in keys if not key.endswith(b":fence")]
            if bodies:
                async with asyncio.timeout(step_timeout):
                    await self.client.unlink(*bodies)
            if cursor == 0:
                return

    # ------------------------------------------------------------------ reads

    def _bypass(self, local: Fence | None) -> Lookup:
        self.metrics.cache_bypass.inc()
        # Sentinel mode: the outage is a failover, whose fences may be lost; the primary is
        # the one read that cannot be behind a write another instance acknowledged. Single
        # mode: the replica, once it has replayed the primary's WAL position read now (a
        # write another instance acknowledged, with its fence in a Redis this one cannot
        # see, is before that position).
        return Lookup(
            "bypass",
            fence=local,
            primary=self._guard,
            barrier=self.epochs.barrier,
            fresh=not self._guard,
        )

    async def lookup(self, product_id: int) -> Lookup:
        local = self.recent.get(product_id)
        # The lease must hold when the lookup is sent (every logged fence was placed before
        # it) and when its reply is used (app/fencelog.py).
        lease = self.lease.valid_since()
        if lease is None or not self.breaker.closed:
            return self._bypass(local)
        epoch: bytes | None = None
        try:
            if self._pipe is not None:
                values, epoch = await self._pipe.execute_at_epoch(
                    lookup_command(product_id), self._timeout
                )
            else:
                async with asyncio.timeout(self._timeout):
                    values = await self.client.mget(cache_key(product_id), fence_key(product_id))
            # Neither client decodes: values are bytes (or None for absent keys).
            cached, raw_fence = cast(list[bytes | None], values)
        except REDIS_ERRORS as exc:
            self._read_failed("lookup", exc)
            return self._bypass(local)
        self._timeouts_since = None
        if not self.lease.holds(lease):
            return self._bypass(local)
        if epoch is not None:
            self._observe_epoch(epoch)
            if self._guard and self.epochs.in_grace():
                return self._bypass(local)
        fence = merge(Fence.decode(raw_fence), local)
        if cached is not None:
            if self._sentinel:
                try:
                    version, body_epoch, body = split_body(cached)
                except ValueError:
                    version, body_epoch, body = -1, b"", b""
                # Only a body stored by this very primary since its promotion: one copied
                # from an earlier primary may predate a fence that primary acknowledged.
                servable = version >= 0 and (not self._guard or body_epoch == epoch)
            else:
                sep = cached.find(b"|")
                version, body, servable = int(cached[:sep]), cached[sep + 1 :], True
            if servable and (fence is None or fence.admits_cached(version)):
                self.metrics.cache_hit.inc()
                return Lookup("hit", body=body, version=version)
        self.metrics.cache_miss.inc()
        if not self._guard:
            return Lookup("miss", fence=fence)
        return Lookup("miss", fence=fence, epoch=epoch, barrier=self.epochs.barrier)

    async def fill(
        self, product_id: int, version: int, body: bytes, epoch: bytes | None = None
    ) -> bool:
        """Cache a row read after a miss; `epoch`: the lookup's (sentinel mode, see Lookup)."""
        if not self.breaker.closed:
            return False
        keys = [cache_key(product_id), fence_key(product_id)]
        try:
            if self._script_pipe is not None:
                stored = await self._script_pipe.eval_script(
                    self._fill_script.sha,
                    self._fill_lua,
                    keys,
                    [version, b"%d|%s" % (version, body), self._ttl],
                    self._timeout,
                )
                return bool(stored)
            async with asyncio.timeout(self._timeout):
                # Sentinel mode: the script adds the version and the node's epoch itself.
                value = body if self._sentinel else b"%d|%s" % (version, body)
                args: list[bytes | int] = [version, value, self._ttl]
                if self._sentinel:
                    args.append(epoch or b"")
                stored = await self._fill_script(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            self._read_failed("fill", exc)
            return False
        return bool(stored)

    # ----------------------------------------------------------------- writes

    async def _run_fence(self, product_id: int, fence: Fence) -> None:
        # A fence that misses its budget is queued and the PUT still returns: other instances
        # may then serve the old body until the replay. A longer budget for writes (sentinel
        # mode) makes that rare on a loaded host; a refused connection still fails at once.
        timeout = max(self._timeout, self._fence_timeout)
        if self._script_pipe is not None:
            await self._script_pipe.eval_script(
                self._fence_script.sha,
                FENCE_LUA,
                [cache_key(product_id), fence_key(product_id)],
                [fence.encode(), self._fence_ttl],
                timeout,
            )
            return
        async with asyncio.timeout(timeout):
            await self._run_fences({product_id: fence}, timeout)

    async def _run_fence_untimed(self, product_id: int, fence: Fence) -> None:
        await self._fence_script(
            keys=[cache_key(product_id), fence_key(product_id)],
            args=[fence.encode(), self._fence_ttl],
        )

    async def _run_fences(self, fences: dict[int, Fence], timeout: float) -> None:
        """Fence scripts in one pipeline; in sentinel mode followed by WAIT for the replica,
        raising NotDurable if it did not acknowledge them within `timeout`."""
        async with self.client.pipeline(transaction=False) as pipe:
            for product_id, fence in fences.items():
                await self._fence_script(
                    keys=[cache_key(product_id), fence_key(product_id)],
                    args=[fence.encode(), self._fence_ttl],
                    client=pipe,
                )
            # While the replica is known to be away (a fresh confirmation that this very
            # node is the Sentinels' primary), waiting for it would only add WAIT's timeout.
            waiting = self._wait_replicas and not self._recently_confirmed()
            if waiting:
                wait_ms = max(1, int(min(timeout, WAIT_SECONDS) * 1000))
                pipe.execute_command("WAIT", self._wait_replicas, wait_ms)
            if self._wait_replicas:
                # Which node ran them, in case the replica does not answer in time.
                pipe.execute_command("INFO", "server")
            replies = await pipe.execute()
        if self._wait_replicas and (not waiting or int(replies[-2]) < self._wait_replicas):
            await self._accept_without_replica(replies[-1])

    def _recently_confirmed(self) -> bool:
        return (
            self._confirmed is not None
            and time.monotonic() - self._confirmed[1] < CONFIRMED_PRIMARY_SECONDS
        )

    async def _accept_without_replica(self, info: Any) -> None:
        """A fence the replica did not acknowledge counts only on the node the Sentinels
        call the primary: its replica is down or slow, and when it comes back it resyncs
        from this node, fence included. A primary that was replaced while paused and has
        just resumed also has no replica, and is not that node: NotDurable."""
        assert self._sentinels is not None
        run_id = info.get("run_id") if isinstance(info, dict) else None
        # Checked now, after the reply: see CONFIRMED_PRIMARY_SECONDS.
        confirmed = self._confirmed
        if run_id and confirmed and confirmed[0] == run_id and self._recently_confirmed():
            self.metrics.fences_without_replica.inc()
            return
        asked = time.monotonic()
        if not run_id or run_id != await master_run_id(self._sentinels, self._service):
            raise NotDurable("the fence reached a Redis node the Sentinels do not call primary")
        self._confirmed = (run_id, asked)
        self.metrics.fences_without_replica.inc()

    async def place_fences(self, fences: dict[int, Fence]) -> bool:
        """Place fences from the fence log (app/fencelog.py); False if Redis did not take
        them all (durably, in sentinel mode). Never trips the breaker: requests decide that."""
        if not self.breaker.closed:
            return False
        timeout = max(self._timeout, self._fence_timeout) * 4
        try:
            async with asyncio.timeout(timeout):
                await self._run_fences(fences, timeout / 2)
        except REDIS_ERRORS as exc:
            self.metrics.redis_errors.inc()
            log.info("placing %d logged fences failed: %s", len(fences), type(exc).__name__)
            return False
        return True

    async def record_write(self, product_id: int, fence: Fence) -> bool:
        """Publish a committed write's fence; on failure queue it. True if Redis took it."""
        # Local first: this process must honour the fence even if Redis never hears of it.
        self.recent.put(product_id, fence)
        if self.breaker.closed:
            try:
                await self._run_fence(product_id, fence)
                return True
            except NotDurable as exc:
                # The primary answers: no reason to bypass it. The caller logs the fence.
                log.info("fence for product %s not durable in redis: %s", product_id, exc)
                return False
            except REDIS_ERRORS as exc:
                self._fail("invalidation", exc)
        self.metrics.invalidation_failures.inc()
        self._pending[product_id] = merge(self._pending.get(product_id), fence) or fence
        self._pending.move_to_end(product_id)
        if len(self._pending) > self._pending_max:
            self._pending.popitem(last=False)
            self._pending_overflowed = True
        log.warning("invalidation of product %s queued until redis recovers", product_id)
        return False

    async def ping(self) -> None:
        async with asyncio.timeout(max(self._timeout, 0.25)):
            await self.client.ping()

    @property
    def pending(self) -> int:
        return len(self._pending)
