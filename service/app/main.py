"""Application factory: wires settings, pools, cache and routes; I/O starts in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import disable_created_metrics
from pydantic import ValidationError

from .cache import ProductCache, make_client
from .catalog import Catalog
from .config import Settings
from .db import Database
from .deps import AppContext
from .errors import install_error_handlers
from .fastpath import PghaApi, assert_route_exists
from .limits import BodyLimitMiddleware
from .metrics import Metrics, MetricsMiddleware
from .routes import health, products
from .writepath import assert_write_routes_exist

log = logging.getLogger("pgha")

# How long startup waits for the schema before serving anyway (and retrying in background).
_SCHEMA_STARTUP_WAIT = 2.0


def _configure_logging(level: str) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pgha").setLevel(level.upper())
    # The pool logs every reconnection attempt at WARNING; one line per outage is enough.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


def create_app(settings: Settings | None = None) -> FastAPI:
    if settings is None:
        try:
            settings = Settings()  # type: ignore[call-arg]  # filled from the environment
        except ValidationError as exc:
            # Name the variables but never echo values: some of them are credentials.
            names = sorted({f"PGHA_{str(err['loc'][0]).upper()}" for err in exc.errors()})
            raise SystemExit(f"missing or invalid settings: {', '.join(names)}") from None
    _configure_logging(settings.log_level)
    # *_created series double the exposition size and nobody graphs them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        redis = make_client(settings)
        cache = ProductCache(redis, settings, metrics)
        catalog = Catalog(settings, db, cache, metrics)
        app.state.ctx = AppContext(settings, metrics, db, cache, catalog)
        metrics.watch_pools(db.pool_stats)
        await db.open()
        schema = asyncio.create_task(db.bootstrap_schema(), name="schema-bootstrap")
        recovery = asyncio.create_task(
            cache.recovery_loop(min(0.25, max(settings.redis_breaker_seconds, 0.05))),
            name="redis-recovery",
        )
        warm = asyncio.create_task(cache.warm(), name="redis-warm-up")
        lag = asyncio.create_task(cache.loop_lag.run(), name="loop-lag")
        barrier = asyncio.create_task(catalog.epoch_barrier_loop(0.1), name="epoch-barrier")
        drain = asyncio.create_task(
            catalog.fence_log.drain_loop(cache.place_fences, settings.cache_lease_seconds / 5),
            name="fence-log-drain",
        )
        probers = [
            asyncio.create_task(p.run(), name=f"{p.guard.name}-pool-prober") for p in db.probers
        ]
        await asyncio.wait({schema}, timeout=_SCHEMA_STARTUP_WAIT)
        if not schema.done():
            log.warning(
                "primary not reachable at startup; schema creation continues in the "
                "background and /ready reports the write path down until it succeeds"
            )
        try:
            yield
        finally:
            background = (schema, recovery, warm, lag, barrier, drain, *probers)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await db.close()
            await cache.aclose()
            await redis.aclose()

    # PghaApi answers GET /products/{id} (app/fastpath.py) and plain POST /products and
    # PUT /products/{id} (app/writepath.py) before FastAPI's own stack; anything else, and
    # anything unusual about those, takes the normal path.
    app = PghaApi(
        title="pgha products API",
        version="1.0.0",
        summary="Products on a PostgreSQL primary/replica pair behind HAProxy, cached in Redis.",
        lifespan=lifespan,
        # Prometheus covers metrics; with no OpenTelemetry provider configured FastAPI's
        # native telemetry only costs per-request checks on the cache-hit path.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    app.include_router(products.router)
    app.include_router(health.router)
    assert_route_exists(products.router)
    assert_write_routes_exist(products.router)
    # Added last = outermost: metrics see the 413s produced by the body limit too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
