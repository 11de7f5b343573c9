"""The products API's HTTP core: what a products request answers, whichever path serves it.

Two paths answer products requests: FastAPI's routes (routes/products.py) and, for the plain
hot cases, the fast paths in front of FastAPI (fastpath.py, writepath.py), which exist
because FastAPI's request cycle cost about 40 % of a request's CPU. Both are adapters over
this module, which owns all that a client or a dashboard sees of an answer: the operations'
responses with their headers (ETag, Location, X-Cache, X-Read-Source) in the order sent, the
If-Match reading, the JSON error for whatever an operation raised, and the per-route request
metrics. So a new header, error code or metric label is written once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import Counter, Histogram
from starlette.types import Receive, Scope, Send

from ..cache.fence import Lookup
from ..catalog import Catalog, ReadResult
from ..metrics import Metrics
from ..models import ProductIn, ProductRow
from .errors import ApiError, error_response, install_http_error_handlers

log = logging.getLogger("pgha.errors")

JSON = "application/json"
# Route templates, as the metrics label them; assert_routes checks them against the router
# at startup, so a renamed route cannot silently split a series between the two paths.
CREATE_ROUTE = "/products"
PRODUCT_ROUTE = "/products/{product_id}"

_CONTENT_TYPE = (b"content-type", JSON.encode())
# A read's first two headers by (X-Cache, X-Read-Source), built once: reads are the hot path.
_READ_SOURCE_HEADERS = {
    (cache, source): ((b"x-cache", cache.encode()), (b"x-read-source", source.encode()))
    for cache in ("HIT", "MISS", "BYPASS")
    for source in ("cache", "replica", "primary")
}

# The read's headers as OpenAPI documents them (the names are the ones read_response sends).
READ_HEADERS_DOC: dict[str, dict[str, Any]] = {
    "X-Cache": {
        "description": "HIT, MISS or BYPASS (Redis unavailable).",
        "schema": {"type": "string"},
    },
    "X-Read-Source": {"description": "cache, replica or primary.", "schema": {"type": "string"}},
    "ETag": {"description": "Quoted version; usable as If-Match.", "schema": {"type": "string"}},
}


def etag(version: int) -> bytes:
    """The ETag of a product version, as every response carries it (and If-Match takes)."""
    return b'"%d"' % version


def location(product_id: int) -> bytes:
    return b"/products/%d" % product_id


def parse_if_match(value: str | None) -> int | None:
    """Return the expected version, ``None`` when unconditional; -1 can never match."""
    if value is None or value.strip() == "*":
        return None
    token = value.strip()
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:
        token = token[1:-1]
    return int(token) if token.isascii() and token.isdigit() else -1


class ProductResponse(Response):
    """A product's JSON with its raw headers built here, once, in the order they are sent.

    ``Response.__init__`` would render the body and rebuild the headers from a dict on every
    request; both are already final here, and the routes return this very object.
    """

    media_type = JSON
    background = None

    def __init__(self, body: bytes, status_code: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.body = body
        self.raw_headers = headers


def _headers(
    first: tuple[tuple[bytes, bytes], ...], version: int, body: bytes
) -> list[tuple[bytes, bytes]]:
    """``first``, then the entity's headers, in the order Starlette's ``Response`` puts them."""
    return [*first, (b"etag", etag(version)), (b"content-length", b"%d" % len(body)), _CONTENT_TYPE]


def read_response(result: ReadResult) -> ProductResponse:
    """A read's answer: where it came from (X-Cache, X-Read-Source), then the entity."""
    first = _READ_SOURCE_HEADERS[result.cache, result.source]
    return ProductResponse(result.body, 200, _headers(first, result.version, result.body))


def product_response(row: ProductRow) -> ProductResponse:
    body = row.to_json()
    return ProductResponse(body, 200, _headers((), row.version, body))


def created_response(row: ProductRow, replayed: bool) -> ProductResponse:
    # A repeat answers exactly like the first attempt (201, same Location), so a client
    # or proxy that retries needs no special case; the header tells the two apart.
    body = row.to_json()
    headers = _headers((), row.version, body)
    headers.append((b"location", location(row.id)))
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    return ProductResponse(body, 201, headers)


# ------------------------------------------------------------- operations


async def read(catalog: Catalog, product_id: int, lookup: Lookup | None = None) -> Response:
    """``GET /products/{id}``; ``lookup`` is a cache lookup already made for this request."""
    return read_response(await catalog.get(product_id, lookup))


async def create(catalog: Catalog, data: ProductIn, key: str | None) -> Response:
    """``POST /products``: the product, at most once per Idempotency-Key."""
    row, replayed = await catalog.create(data, key)
    return created_response(row, replayed)


async def replace(
    catalog: Catalog, product_id: int, data: ProductIn, if_match: str | None
) -> Response:
    """``PUT /products/{id}``, conditional on If-Match when there is one."""
    return product_response(await catalog.replace(product_id, data, parse_if_match(if_match)))


# ------------------------------------------------------------------ errors


def error_answer(exc: Exception, method: str, path: str) -> Response:
    """The JSON error for whatever handling a request raised: the API's own errors say what
    went wrong, anything else is logged and answered as a bare 500."""
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, exc.detail, exc.headers)
    log.exception("unhandled error on %s %s", method, path, exc_info=exc)
    return error_response(500, "internal_error", "unexpected server error")


async def _error_handler(request: Request, exc: Exception) -> Response:
    return error_answer(exc, request.method, request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """FastAPI's handlers: its own exceptions (errors.py), and the same answers as above."""
    install_http_error_handlers(app)
    app.add_exception_handler(ApiError, _error_handler)
    app.add_exception_handler(Exception, _error_handler)


# ----------------------------------------------------------------- metrics


class RouteMetrics:
    """Per-route request counts and latencies, as the metrics middleware and the fast paths
    record them."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        # labels() takes a lock and builds a key on every call; the label sets are few and
        # bounded (route templates), so their children are bound once.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def record(self, method: str, route: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._metrics.route_children(method, route, status)
        children[0].inc()
        children[1].observe(elapsed)


async def outcome(operation: Awaitable[Response], scope: Scope) -> Response:
    """The operation's response, or the JSON error for what it raised (the fast paths' side
    of what the exception handlers do for the routes)."""
    try:
        return await operation
    except Exception as exc:
        return error_answer(exc, scope["method"], scope["path"])


class FastAnswers:
    """How the fast paths send a response and record it, as the routes' middleware would."""

    def __init__(self, metrics: Metrics) -> None:
        self.routes = RouteMetrics(metrics)

    async def respond(
        self,
        response: Response,
        route: str,
        started: float,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Send ``response`` and record it under ``route``."""
        # The two messages Response.__call__ sends (none of these responses has a background
        # task), without its extra coroutine per request.
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": response.raw_headers,
                }
            )
            await send({"type": "http.response.body", "body": response.body})
        finally:
            self.routes.record(scope["method"], route, response.status_code, started)


def assert_routes(router: APIRouter) -> None:
    """The fast paths answer for these routes: they must exist, under these templates."""
    wanted = {(CREATE_ROUTE, "POST"), (PRODUCT_ROUTE, "GET"), (PRODUCT_ROUTE, "PUT")}
    for route in router.routes:
        for method in getattr(route, "methods", ()):
            wanted.discard((getattr(route, "path", ""), method))
    if wanted:
        raise RuntimeError(f"the fast paths expect routes {sorted(wanted)}")
