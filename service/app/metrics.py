"""Prometheus instruments and the ASGI middleware that records per-route traffic."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PoolStats = Callable[[], dict[str, dict[str, int]]]


class _PoolCollector(Collector):
    # Pool sizes are read at scrape time so they can never drift from the pools' own counters.
    def __init__(self, stats: PoolStats) -> None:
        self._stats = stats

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "pgha_db_pool_connections",
            "Connections per database pool: size, available, waiting clients, min, max.",
            labels=["pool", "state"],
        )
        for pool, stats in self._stats().items():
            for state, key in (
                ("size", "pool_size"),
                ("available", "pool_available"),
                ("waiting", "requests_waiting"),
                ("min", "pool_min"),
                ("max", "pool_max"),
            ):
                family.add_metric([pool, state], float(stats.get(key, 0)))
        yield family


class Metrics:
    """All instruments, on a private registry so several apps can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "pgha_http_requests", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "pgha_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=r,
        )
        self.cache = Counter(
            "pgha_cache_requests", "Product cache lookups by result.", ["result"], registry=r
        )
        self.backend_errors = Counter(
            "pgha_backend_errors",
            "Failures talking to a dependency.",
            ["dependency"],
            registry=r,
        )
        self.invalidation_failures = Counter(
            "pgha_cache_invalidation_failures",
            "Post-write fence/invalidation scripts that failed and were queued for retry.",
            registry=r,
        )
        self.pending_invalidations = Gauge(
            "pgha_cache_pending_invalidations",
            "Invalidations queued in this process, waiting for Redis to come back.",
            registry=r,
        )
        self.fence_redirects = Counter(
            "pgha_fence_primary_reads",
            "Reads sent to the primary because the replica was behind a write fence.",
            registry=r,
        )
        self.barrier_redirects = Counter(
            "pgha_epoch_barrier_primary_reads",
            "Reads sent to the primary because the replica was behind the WAL position read "
            "after the last cache failover (sentinel mode).",
            registry=r,
        )
        self.fences_without_replica = Counter(
            "pgha_cache_fences_without_replica",
            "Sentinel mode: fences counted on the Sentinels' primary without its replica's "
            "acknowledgement (the replica was down or slow).",
            registry=r,
        )
        self.fence_log_writes = Counter(
            "pgha_fence_log_writes",
            "Write fences Redis did not take, logged in PostgreSQL before the write answered.",
            registry=r,
        )
        self.fence_log_placed_early = Counter(
            "pgha_fence_log_placed_early",
            "Logged fences placed by some instance before their writer's lease wait ran out.",
            registry=r,
        )
        self.fence_log_drained = Counter(
            "pgha_fence_log_drained",
            "Fence log entries this instance placed in Redis and deleted.",
            registry=r,
        )
        self.lease_misses = Counter(
            "pgha_cache_lease_misses",
            "Fence log drain rounds that did not renew the cache lease.",
            registry=r,
        )
        self.fresh_redirects = Counter(
            "pgha_bypass_barrier_primary_reads",
            "Bypassed reads sent to the primary because the replica had not replayed the "
            "primary's WAL position read for the request.",
            registry=r,
        )
        self.read_source = Counter(
            "pgha_read_source", "Reads by the source that served them.", ["source"], registry=r
        )
        self.breaker_open = Gauge(
            "pgha_redis_breaker_open", "1 while the Redis circuit breaker is open.", registry=r
        )
        for dependency in ("primary", "replica", "redis"):
            self.backend_errors.labels(dependency)
        # Bound once: labels() takes a lock and builds a key on every call, which the
        # cache-hit path would otherwise pay several times per request.
        self.cache_hit = self.cache.labels("hit")
        self.cache_miss = self.cache.labels("miss")
        self.cache_bypass = self.cache.labels("bypass")
        self.read_source_children = {
            source: self.read_source.labels(source) for source in ("cache", "replica", "primary")
        }
        self.redis_errors = self.backend_errors.labels("redis")

    def route_children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency histogram children of one label set."""
        labels = (method, route, str(status))
        return self.requests.labels(*labels), self.latency.labels(*labels)

    def watch_pools(self, stats: PoolStats) -> None:
        self.registry.register(_PoolCollector(stats))


class MetricsMiddleware:
    """Pure ASGI middleware: cheaper on the hit path than BaseHTTPMiddleware."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # labels() takes a lock and rebuilds a key per call; the label sets are few and
        # bounded (route templates), so keep their children at hand.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            # Label by route template, not raw path, to keep cardinality bounded.
            route: Any = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            labels = (scope["method"], path, str(status))
            children = self._children.get(labels)
            if children is None:
                children = self.metrics.route_children(scope["method"], path, status)
                self._children[labels] = children
            children[0].inc()
            children[1].observe(elapsed)
