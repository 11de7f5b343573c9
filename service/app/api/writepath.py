"""``POST /products`` and ``PUT /products/{id}`` answered before FastAPI's routing and middleware.

A write's own work is one statement and one fence script, yet FastAPI's request cycle for a
body (seven ASGI layers, routing, dependency and parameter solving, three ``send`` wrappers)
cost about as much CPU again (bench/README.md, the profile of issue 15). So the app takes the
plain case first: a JSON body with a declared length under the limit, at most one of each
header the routes read, a body that parses and validates. It then runs the routes' very
operations (core.create / core.replace: ``Catalog.create`` / ``Catalog.replace``, which
commit and raise the fence before anything is sent, and the same responses), and answers
errors and records metrics as core does for both paths.

Anything else goes to FastAPI, with the body replayed if it was already read: a body that
does not parse or validate, an unusual header or content type, a chunked body. So every 422
still comes from FastAPI and its handlers, never from a copy of them.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Sequence

from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from ..deps import AppContext
from ..models import IDEMPOTENCY_KEY_MAX, ProductIn
from . import core

_JSON = b"application/json"
# Header names the routes (or the body limit) read; any other header is ignored by them.
_CONTENT_TYPE = b"content-type"
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_IDEMPOTENCY_KEY = b"idempotency-key"
_IF_MATCH = b"if-match"
_WATCHED = frozenset(
    {_CONTENT_TYPE, _CONTENT_LENGTH, _TRANSFER_ENCODING, _IDEMPOTENCY_KEY, _IF_MATCH}
)


def write_headers(
    headers: Sequence[tuple[bytes, bytes]], max_bytes: int
) -> dict[bytes, bytes] | None:
    """The headers a write route reads, if the request is one the fast path may take.

    ``None`` (leave it to FastAPI) for a repeated header (which copy the route would see is
    FastAPI's business), a content type other than exactly JSON (FastAPI parses
    ``application/json; charset=...`` and ``+json`` types too, and a missing one), no
    declared length, a chunked body, or one over the limit (the body limit's 413).
    """
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _WATCHED:
            if name in found:
                return None
            found[name] = value
    if found.get(_CONTENT_TYPE) != _JSON or _TRANSFER_ENCODING in found:
        return None
    length = found.get(_CONTENT_LENGTH)
    if length is None or not length.isdigit() or int(length) > max_bytes:
        return None
    return found


def idempotency_key(raw: bytes | None) -> tuple[bool, str | None]:
    """(acceptable, key): the route's header constraints, 1-100 printable ASCII characters."""
    if raw is None:
        return True, None
    if not 1 <= len(raw) <= IDEMPOTENCY_KEY_MAX or any(b < 0x20 or b > 0x7E for b in raw):
        return False, None
    return True, raw.decode("ascii")


def parse_body(body: bytes) -> ProductIn | None:
    """The validated body, or ``None`` to let FastAPI produce its 422.

    ``json.loads`` on the raw bytes is exactly what Starlette's ``Request.json`` does, and the
    model is validated as FastAPI validates a lone body parameter, so whatever passes here
    is what the route would have received.
    """
    try:
        data: object = json.loads(body)
    except (ValueError, RecursionError):
        # JSONDecodeError and UnicodeDecodeError alike; RecursionError for nesting deeper
        # than the interpreter's stack (a few kB of `[` do it, far under the size limit).
        return None
    if not isinstance(data, dict):
        return None
    try:
        return ProductIn.model_validate(data)
    except ValidationError:
        return None


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out the already-read messages first, then the live ones."""
    pending = deque(messages)

    async def replaying() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return replaying


class WritePath:
    """The write fast path of one app; ``serve`` returns False when FastAPI must answer."""

    def __init__(self, answers: core.FastAnswers) -> None:
        self._answers = answers

    async def serve(
        self, ctx: AppContext, product_id: int | None, scope: Scope, receive: Receive, send: Send
    ) -> tuple[bool, Receive]:
        """(answered, receive to hand on): the latter replays whatever body was read."""
        started = time.perf_counter()
        headers = write_headers(scope["headers"], ctx.settings.max_body_bytes)
        if headers is None:
            return False, receive
        key_ok, key = idempotency_key(headers.get(_IDEMPOTENCY_KEY))
        if product_id is None and not key_ok:
            return False, receive
        messages: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                # The client went away mid-body: FastAPI handles that as it always did.
                return False, replay(messages, receive)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        data = parse_body(b"".join(chunks))
        if data is None:
            return False, replay(messages, receive)
        if product_id is None:
            operation = core.create(ctx.catalog, data, key)
            route = core.CREATE_ROUTE
        else:
            raw_if_match = headers.get(_IF_MATCH)
            if_match = None if raw_if_match is None else raw_if_match.decode("latin-1")
            operation = core.replace(ctx.catalog, product_id, data, if_match)
            route = core.PRODUCT_ROUTE
        response = await core.outcome(operation, scope)
        await self._answers.respond(response, route, started, scope, receive, send)
        return True, receive
