"""Redis connections of the cache: the client (one node, or the primary through the
Sentinels), how every connection behaves, and the event-loop lag that widens its budget."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import Settings
from .sentinel import make_sentinel, master_client


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
