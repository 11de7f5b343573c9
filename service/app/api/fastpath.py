"""``GET /products/{id}`` answered before FastAPI's routing and middleware: hits and misses.

A hit is one MGET and a few comparisons, yet FastAPI's per-request machinery (middleware
stack, routing, dependency resolution, response objects) costs several times that; on a miss
it was still about a third of the API's own CPU. So the app looks at ``GET /products/<canonical
id>`` first: it runs the same ``ProductCache.lookup`` and ``Catalog.get`` as the route (same
fences, recent-writes map, breaker, timeouts, replica read and fill), sends the bytes with
exactly the headers the route would send, turns the API's errors into the same JSON bodies as
the app's handlers, and records the same metrics. An id spelled any other way, a lookup that
raised, or no app state yet goes through FastAPI as usual.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import Receive, Scope, Send

from ..cache.fence import Lookup
from ..models import INT8_MAX
from .errors import ApiError, error_response
from .writepath import CREATE_ROUTE, WritePath

log = logging.getLogger("pgha.fastpath")

PREFIX = "/products/"
# The route template, as the metrics middleware labels it; checked against the router at
# startup (assert_route_exists) so a renamed route cannot silently split the series.
PRODUCT_ROUTE = "/products/{product_id}"
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


def read_headers(cache: str, source: str, version: int, body: bytes) -> list[tuple[bytes, bytes]]:
    """The raw headers the route's ``Response`` produces for a miss or a bypass."""
    return [
        (b"x-cache", cache.encode()),
        (b"x-read-source", source.encode()),
        (b"etag", b'"%d"' % version),
        (b"content-length", b"%d" % len(body)),
        _CONTENT_TYPE,
    ]


def assert_route_exists(router: APIRouter) -> None:
    for route in router.routes:
        if getattr(route, "path", None) == PRODUCT_ROUTE and "GET" in getattr(route, "methods", ()):
            return
    raise RuntimeError(f"fast path expects a GET {PRODUCT_ROUTE} route")


class PghaApi(FastAPI):
    """FastAPI with the product read and write fast paths in front; the rest is unchanged."""

    _hit_children: tuple[Any, Any] | None = None
    # Counter and histogram children by status of the reads answered here (few statuses).
    _read_children: dict[int, tuple[Any, Any]] | None = None

    _writes: WritePath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A mounted app's paths are relative to root_path: leave those to the router.
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            if method == "GET" and path.startswith(PREFIX):
                product_id = parse_product_id(path)
                if product_id is not None and await self._serve_read(
                    product_id, scope, receive, send
                ):
                    return
            elif method == "POST" and path == CREATE_ROUTE:
                answered, receive = await self._serve_write(None, scope, receive, send)
                if answered:
                    return
            elif method == "PUT" and path.startswith(PREFIX):
                product_id = parse_product_id(path)
                if product_id is not None:
                    answered, receive = await self._serve_write(product_id, scope, receive, send)
                    if answered:
                        return
        await super().__call__(scope, receive, send)

    async def _serve_write(
        self, product_id: int | None, scope: Scope, receive: Receive, send: Send
    ) -> tuple[bool, Receive]:
        ctx = getattr(self.state, "ctx", None)
        if ctx is None:  # lifespan not run (yet): the route will say what is wrong
            return False, receive
        writes = self._writes
        if writes is None:
            writes = self._writes = WritePath()
        return await writes.serve(ctx, product_id, scope, receive, send)

    async def _serve_read(
        self, product_id: int, scope: Scope, receive: Receive, send: Send
    ) -> bool:
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
            await self._serve_other(product_id, lookup, ctx, started, scope, receive, send)
            return True
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

    async def _serve_other(
        self,
        product_id: int,
        lookup: Lookup,
        ctx: Any,
        started: float,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """A miss or bypass: the route's ``Catalog.get``, and its error handlers' answers."""
        status = 500
        try:
            try:
                result = await ctx.catalog.get(product_id, lookup)
            except ApiError as exc:
                status = exc.status_code
                await error_response(status, exc.code, exc.detail, exc.headers)(
                    scope, receive, send
                )
                return
            except Exception:
                log.exception("unhandled error on GET %s", scope["path"])
                await error_response(500, "internal_error", "unexpected server error")(
                    scope, receive, send
                )
                return
            status = 200
            headers = read_headers(result.cache, result.source, result.version, result.body)
            await send({"type": _START_TYPE, "status": 200, "headers": headers})
            await send({"type": _BODY_TYPE, "body": result.body})
        finally:
            by_status = self._read_children
            if by_status is None:
                by_status = self._read_children = {}
            children = by_status.get(status)
            if children is None:
                children = by_status[status] = ctx.metrics.route_children(
                    "GET", PRODUCT_ROUTE, status
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
