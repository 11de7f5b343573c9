"""Liveness, readiness and Prometheus endpoints."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ...cache.store import REDIS_ERRORS
from ...db.database import Probe, timed_probe
from ...deps import ContextDep
from ...models import json_bytes

router = APIRouter(tags=["operations"])

_PROBE_TIMEOUT = 1.0


@router.get("/health", summary="Liveness: answers without touching any dependency")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def _db_state(probe: Probe, role_ok: bool, role_error: str) -> dict[str, Any]:
    state: dict[str, Any] = {"ok": probe.ok and role_ok, "latency_ms": round(probe.latency_ms, 2)}
    if probe.in_recovery is not None:
        state["server"] = "replica" if probe.in_recovery else "primary"
    if not probe.ok:
        state["error"] = probe.error
    elif not role_ok:
        state["error"] = role_error
    return state


@router.get(
    "/ready",
    summary="Readiness: probes the write path, the read path and Redis",
    responses={503: {"description": "Writes or reads cannot be served; see `down`."}},
)
async def ready(ctx: ContextDep) -> Response:
    db, cache = ctx.db, ctx.cache

    async def redis_probe() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            await cache.ping()
        except REDIS_ERRORS as exc:
            return {
                "ok": False,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "error": type(exc).__name__,
            }
        return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    write_probe, read_probe, redis_state = await asyncio.gather(
        timed_probe(lambda: db.probe(db.write, _PROBE_TIMEOUT)),
        timed_probe(lambda: db.probe(db.read, _PROBE_TIMEOUT)),
        redis_probe(),
    )
    schema_ok = db.schema_ready.is_set()
    write_is_primary = write_probe.in_recovery is False
    write = _db_state(
        write_probe,
        write_is_primary and schema_ok,
        "schema not initialised yet" if write_is_primary else "write endpoint is a standby",
    )
    read = _db_state(read_probe, True, "")
    redis_state["breaker_open"] = cache.breaker.is_open()
    redis_state["pending_invalidations"] = cache.pending
    # Hits are served only under the lease (app/cache/fencelog.py): false right after start,
    # and while the fence log cannot be drained.
    redis_state["lease"] = cache.lease.valid_since() is not None

    reads_servable = read["ok"] or (ctx.catalog.fallback_to_primary and write_probe.ok)
    if not read["ok"] and reads_servable:
        read["fallback"] = "primary"
    down = [name for name, ok in (("write", write["ok"]), ("read", reads_servable)) if not ok]
    if not redis_state["ok"]:
        down.append("redis")  # degraded only: reads bypass the cache

    ready_now = write["ok"] and reads_servable
    body: dict[str, Any] = {
        "status": "ready" if ready_now else "unavailable",
        "checks": {"write": write, "read": read, "redis": redis_state},
        "down": down,
    }
    if not ready_now:
        body = {"error": "not_ready", "detail": f"unavailable: {', '.join(down)}", **body}
    return Response(
        json_bytes(body), status_code=200 if ready_now else 503, media_type="application/json"
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: ContextDep) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
