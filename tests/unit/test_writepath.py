"""Which writes the write fast path takes, and that what it leaves reaches FastAPI intact."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.types import Message

from app.api.core import FastAnswers
from app.api.writepath import WritePath, idempotency_key, parse_body, write_headers
from app.metrics import Metrics
from app.models import ProductIn, ProductRow

BODY = json.dumps({"name": "n", "price": "1.50", "stock": 2}).encode()
PLAIN = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]


@pytest.mark.parametrize(
    ("extra", "taken"),
    [
        ([], True),
        ([(b"idempotency-key", b"k"), (b"x-other", b"1"), (b"x-other", b"2")], True),
        ([(b"idempotency-key", b"a"), (b"idempotency-key", b"b")], False),
        ([(b"if-match", b'"1"'), (b"if-match", b'"2"')], False),
        ([(b"transfer-encoding", b"chunked")], False),
    ],
)
def test_repeated_or_unusual_headers_go_to_fastapi(
    extra: list[tuple[bytes, bytes]], taken: bool
) -> None:
    assert (write_headers(PLAIN + extra, 1024) is not None) is taken


@pytest.mark.parametrize(
    "content_type",
    [b"application/json; charset=utf-8", b"application/merge-patch+json", b"text/plain", None],
)
def test_only_a_plain_json_content_type_is_taken(content_type: bytes | None) -> None:
    headers = [h for h in PLAIN if h[0] != b"content-type"]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    assert write_headers(headers, 1024) is None


@pytest.mark.parametrize("length", [None, b"", b"-1", b"1025", b"1e3"])
def test_a_body_without_a_plain_length_within_the_limit_goes_to_fastapi(
    length: bytes | None,
) -> None:
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", length))
    assert write_headers(headers, 1024) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, (True, None)),
        (b"k-1", (True, "k-1")),
        (b"~" * 100, (True, "~" * 100)),
        (b"", (False, None)),
        (b"x" * 101, (False, None)),
        (b"caf\xe9", (False, None)),
        (b"tab\there", (False, None)),
        (b"del\x7f", (False, None)),
    ],
)
def test_idempotency_keys_follow_the_routes_constraints(
    raw: bytes | None, expected: tuple[bool, str | None]
) -> None:
    assert idempotency_key(raw) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"name": "n"}',
        b'{"name":"n","price":"-1","stock":1}',
        b"\xff",
        b"[" * 200_000,
    ],
    ids=lambda body: repr(body[:24]),
)
def test_bodies_that_do_not_validate_go_to_fastapi(body: bytes) -> None:
    assert parse_body(body) is None


def test_a_valid_body_is_the_models_validation() -> None:
    assert parse_body(b'{"name": " n ", "price": 1.5, "stock": 2}') == ProductIn(
        name="n", price=Decimal("1.50"), stock=2
    )


class _Catalog:
    def __init__(self) -> None:
        self.created: list[tuple[ProductIn, str | None]] = []

    async def create(self, data: ProductIn, key: str | None) -> tuple[ProductRow, bool]:
        self.created.append((data, key))
        now = datetime(2026, 1, 1, tzinfo=UTC)
        return ProductRow(5, data.name, None, data.price, data.stock, 1, now), False


def _serve(body: bytes, chunks: int = 1) -> tuple[bool, list[Message], list[Message], _Catalog]:
    catalog = _Catalog()
    ctx = SimpleNamespace(
        catalog=catalog, metrics=Metrics(), settings=SimpleNamespace(max_body_bytes=1 << 20)
    )
    size = max(1, -(-len(body) // chunks))
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    incoming: list[Message] = [
        {"type": "http.request", "body": part, "more_body": n < len(parts) - 1}
        for n, part in enumerate(parts)
    ]
    queue = list(incoming)
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/products",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
    }

    async def go() -> tuple[bool, list[Message]]:
        answers = FastAnswers(ctx.metrics)
        answered, handed_on = await WritePath(answers).serve(ctx, None, scope, receive, send)
        replayed = [] if answered else [await handed_on() for _ in incoming]
        return answered, replayed

    answered, replayed = asyncio.run(go())
    assert replayed == ([] if answered else incoming)
    return answered, sent, incoming, catalog


def test_a_plain_create_is_answered_with_the_routes_response() -> None:
    answered, sent, _, catalog = _serve(BODY, chunks=3)
    assert answered
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 201
    names = [k for k, _ in sent[0]["headers"]]
    assert names == [b"etag", b"content-length", b"content-type", b"location"]
    assert catalog.created[0][1] is None


def test_an_invalid_body_is_handed_on_whole_and_nothing_is_written() -> None:
    answered, sent, _, catalog = _serve(b'{"name": "n", "price": "x", "stock": 1}', chunks=2)
    assert not answered
    assert sent == []
    assert catalog.created == []


def test_any_body_that_merely_parses_is_not_enough() -> None:
    body: dict[str, Any] = {"name": "n", "price": "1", "stock": 1, "extra": True}
    answered, _, _, catalog = _serve(json.dumps(body).encode())
    assert not answered
    assert catalog.created == []
