"""Cache hits of ``GET /products/{id}`` answered before FastAPI's routing and middleware.

A hit is one MGET and a few comparisons, yet FastAPI's per-request machinery (middleware
stack, routing, dependency resolution, response objects) costs several times that. So the app
looks at ``GET /products/<canonical id>`` first: it runs the same ``ProductCache.lookup`` as
the route (same fences, recent-writes map, breaker and timeouts) and, on a hit, sends the
stored bytes with exactly the headers the route would send, recording the same metrics. Any
other outcome (miss, bypass, an id spelled any other way, no app state yet) goes through
FastAPI as usual, carrying the lookup along in the scope so the route does not ask Redis
again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import Receive, Scope, Send

from .fence import Lookup
from .models import INT8_MAX

log = logging.getLogger("pgha.fastpath")

PREFIX = "/products/"
# The route template, as the metrics middleware labels it; checked against the router at
# startup (assert_route_exists) so a renamed route cannot silently split the series.
PRODUCT_ROUTE = "/products/{product_id}"
# Scope key carrying (product_id, Lookup) from the fast path to the route.
LOOKUP_SCOPE_KEY = "pgha.lookup"
_MAX_DIGITS = len(str(INT8_MAX))
_START_TYPE = "http.response.start"
_BODY_TYPE = "http.response.body"
_STATIC_HEADERS = ((b"x-cache", b"HIT"), (b"x-read-source", b"cache"))
_CONTENT_TYPE = (b"content-type", b"application/json")


def parse_product_id(path: str) -> int | None:
    """The id in ``/products/<id>`` if spelled canonically (ASCII digits, no leading zero).

    Other spellings ("007", "+7", "7/") are left to FastAPI, so its validation, 422s and
    redirects stay the only behaviour for them.
    """
    raw = path[len(PREFIX) :]
    if not raw or len(raw) > _MAX_DIGITS or raw[0] == "0" or not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if value <= INT8_MAX else None


def hit_headers(version: int, body: bytes) -> list[tuple[bytes, bytes]]:
    """The raw headers the route's ``Response`` produces for a hit, in the same order."""
    return [
        *_STATIC_HEADERS,
        (b"etag", b'"%d"' % version),
        (b"content-length", b"%d" % len(body)),
        _CONTENT_TYPE,
    ]


def lookup_from_scope(scope: Scope, product_id: int) -> Lookup | None:
    carried = scope.get(LOOKUP_SCOPE_KEY)
    if carried is not None and carried[0] == product_id:
        lookup: Lookup = carried[1]
        return lookup
    return None


def assert_route_exists(router: APIRouter) -> None:
    for route in router.routes:
        if getattr(route, "path", None) == PRODUCT_ROUTE and "GET" in getattr(route, "methods", ()):
            return
    raise RuntimeError(f"fast path expects a GET {PRODUCT_ROUTE} route")


class PghaApi(FastAPI):
    """FastAPI with the cache-hit fast path in front; everything else is unchanged."""

    _hit_children: tuple[Any, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(PREFIX)
            # A mounted app's paths are relative to root_path: leave those to the router.
            and not scope.get("root_path")
        ):
            product_id = parse_product_id(scope["path"])
            if product_id is not None and await self._serve_hit(product_id, scope, send):
                return
        await super().__call__(scope, receive, send)

    async def _serve_hit(self, product_id: int, scope: Scope, send: Send) -> bool:
        ctx = getattr(self.state, "ctx", None)
        if ctx is None:  # lifespan not run (yet): the route will say what is wrong
            return False
        started = time.perf_counter()
        try:
            lookup = await ctx.cache.lookup(product_id)
        except Exception:
            # Not expected (lookup handles Redis failures itself); the normal path repeats
            # the lookup and turns whatever happens into the usual JSON error.
            log.exception("cache fast path failed; falling back to the route")
            return False
        if lookup.status != "hit":
            scope[LOOKUP_SCOPE_KEY] = (product_id, lookup)
            return False
        body, version = lookup.body, lookup.version
        assert body is not None and version is not None
        metrics = ctx.metrics
        metrics.read_source_children["cache"].inc()
        children = self._hit_children
        if children is None:
            children = self._hit_children = metrics.route_children("GET", PRODUCT_ROUTE, 200)
        try:
            await send({"type": _START_TYPE, "status": 200, "headers": hit_headers(version, body)})
            await send({"type": _BODY_TYPE, "body": body})
        finally:
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
        return True
