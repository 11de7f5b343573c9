"""``GET /products/{id}`` answered before FastAPI's routing and middleware: hits and misses.

A hit is one MGET and a few comparisons, yet FastAPI's per-request machinery (middleware
stack, routing, dependency resolution, response objects) costs several times that; on a miss
it was still about a third of the API's own CPU. So the app looks at ``GET /products/<canonical
id>`` first and runs the route's own operation (core.read: the same ``Catalog.get``, fences,
recent-writes map, breaker, timeouts, replica read and fill, the same response), answers
errors and records metrics as core does for both paths. An id spelled any other way, a
lookup that raised, or no app state yet goes through FastAPI as usual.

``PghaApi`` also hands plain ``POST /products`` and ``PUT /products/<id>`` to writepath.py.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from ..deps import AppContext
from ..models import INT8_MAX
from . import core
from .writepath import WritePath

log = logging.getLogger("pgha.fastpath")

PREFIX = "/products/"
_MAX_DIGITS = len(str(INT8_MAX))


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


class PghaApi(FastAPI):
    """FastAPI with the product read and write fast paths in front; the rest is unchanged."""

    _answers: core.FastAnswers | None = None
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
            elif method == "POST" and path == core.CREATE_ROUTE:
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

    def _fast(self) -> tuple[AppContext, core.FastAnswers] | None:
        ctx: AppContext | None = getattr(self.state, "ctx", None)
        if ctx is None:  # lifespan not run (yet): the route will say what is wrong
            return None
        answers = self._answers
        if answers is None:
            answers = self._answers = core.FastAnswers(ctx.metrics)
        return ctx, answers

    async def _serve_write(
        self, product_id: int | None, scope: Scope, receive: Receive, send: Send
    ) -> tuple[bool, Receive]:
        fast = self._fast()
        if fast is None:
            return False, receive
        ctx, answers = fast
        writes = self._writes
        if writes is None:
            writes = self._writes = WritePath(answers)
        return await writes.serve(ctx, product_id, scope, receive, send)

    async def _serve_read(
        self, product_id: int, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        fast = self._fast()
        if fast is None:
            return False
        ctx, answers = fast
        started = time.perf_counter()
        try:
            lookup = await ctx.cache.lookup(product_id)
        except Exception:
            # Not expected (lookup handles Redis failures itself); the normal path repeats
            # the lookup and turns whatever happens into the usual JSON error.
            log.exception("cache fast path failed; falling back to the route")
            return False
        response: Response
        if lookup.status == "hit":
            # Nothing left that can fail before the send: no error mapping to run.
            response = core.read_response(ctx.catalog.hit(lookup))
        else:
            response = await core.outcome(core.read(ctx.catalog, product_id, lookup), scope)
        await answers.respond(response, core.PRODUCT_ROUTE, started, scope, receive, send)
        return True
