"""The products core's responses: the headers both request paths send, in the order sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.api.core import created_response, error_answer, product_response, read_response
from app.api.errors import NotFound
from app.catalog import ReadResult
from app.models import ProductRow

ROW = ProductRow(7, "n", None, Decimal("1.50"), 2, 3, datetime(2026, 1, 1, tzinfo=UTC))


def _headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode(), v.decode()) for k, v in raw]


def test_a_hit_says_where_it_came_from_before_the_entity_headers() -> None:
    body = b'{"id":7}'
    response = read_response(ReadResult(body, 12, "HIT", "cache"))
    assert response.status_code == 200
    assert response.body == body
    assert _headers(response.raw_headers) == [
        ("x-cache", "HIT"),
        ("x-read-source", "cache"),
        ("etag", '"12"'),
        ("content-length", str(len(body))),
        ("content-type", "application/json"),
    ]


def test_a_miss_or_bypass_names_its_cache_status_and_source() -> None:
    body = b'{"id":7}'
    for cache, source in (("MISS", "replica"), ("BYPASS", "primary")):
        response = read_response(ReadResult(body, 3, cache, source))  # type: ignore[arg-type]
        assert _headers(response.raw_headers)[:3] == [
            ("x-cache", cache),
            ("x-read-source", source),
            ("etag", '"3"'),
        ]


def test_a_replaced_product_carries_its_new_etag() -> None:
    response = product_response(ROW)
    assert response.status_code == 200
    assert response.body == ROW.to_json()
    assert [k for k, _ in _headers(response.raw_headers)] == [
        "etag",
        "content-length",
        "content-type",
    ]
    assert response.headers["etag"] == '"3"'


def test_a_create_points_at_the_product_and_marks_a_replay() -> None:
    first = created_response(ROW, replayed=False)
    again = created_response(ROW, replayed=True)
    assert first.status_code == again.status_code == 201
    assert first.headers["location"] == again.headers["location"] == "/products/7"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert [k for k, _ in first.raw_headers] == [
        b"etag",
        b"content-length",
        b"content-type",
        b"location",
    ]


def test_the_apis_own_errors_keep_their_status_code_and_headers() -> None:
    response = error_answer(NotFound(headers={"X-Cache": "MISS"}), "GET", "/products/7")
    assert response.status_code == 404
    assert json.loads(response.body) == {"error": "not_found"}
    assert response.headers["x-cache"] == "MISS"


def test_anything_else_is_a_bare_500(caplog: pytest.LogCaptureFixture) -> None:
    response = error_answer(RuntimeError("secret detail"), "PUT", "/products/7")
    assert response.status_code == 500
    assert json.loads(response.body) == {
        "error": "internal_error",
        "detail": "unexpected server error",
    }
    assert b"secret" not in response.body
    assert "unhandled error on PUT /products/7" in caplog.text
