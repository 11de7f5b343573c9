"""ASGI middleware: the request body limit and the per-route request metrics."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import Metrics
from .core import RouteMetrics
from .errors import PayloadTooLarge, error_response


class BodyLimitMiddleware:
    """Refuses a body over the limit (413) before FastAPI buffers or parses it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    # Refuse before reading anything: the declared size is enough to know.
                    response = error_response(
                        413, "payload_too_large", f"request body exceeds {self.max_bytes} bytes"
                    )
                    await response(scope, receive, send)
                    return
                break

        # Chunked bodies have no declared size, so count as they stream in.
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


class MetricsMiddleware:
    """Pure ASGI middleware: cheaper on the hit path than BaseHTTPMiddleware."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.routes = RouteMetrics(metrics)

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
            # Label by route template, not raw path, to keep cardinality bounded.
            route: Any = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.routes.record(scope["method"], path, status, started)
