"""The write fast path (app/api/writepath.py): POST and PUT answered as the routes answer them.

Each test sends the same write twice, once as the fast path takes it (``application/json``)
and once as it leaves it to FastAPI (``application/json; charset=utf-8``, which FastAPI also
parses as JSON), and compares status, header names and order, and bodies: the fast path
must be invisible, errors and metrics included.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import redis

FAST = {"Content-Type": "application/json"}
ROUTED = {"Content-Type": "application/json; charset=utf-8"}
BODY = {"name": "fast kettle", "description": "1.7 l", "price": "24.50", "stock": 7}
# Per-product values: everything else in a write's answer must match byte for byte.
_VARYING = {b"date", b"etag", b"location", b"content-length"}


def _send(
    client: httpx.Client, method: str, path: str, body: Any, **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.request(method, path, content=content, headers=headers)


def _shape(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k.lower(), b"*" if k.lower() in _VARYING else v) for k, v in response.headers.raw]


def _stable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("id", "updated_at", "version")}


def _metric(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_create_answers_like_the_route(client: httpx.Client) -> None:
    body = {**BODY, "name": f"fast-{uuid.uuid4()}"}
    fast = _send(client, "POST", "/products", body, **FAST)
    routed = _send(client, "POST", "/products", body, **ROUTED)
    assert fast.status_code == routed.status_code == 201
    assert _shape(fast) == _shape(routed)
    assert _stable(fast.json()) == _stable(routed.json())
    assert fast.headers["location"] == f"/products/{fast.json()['id']}"
    assert fast.headers["etag"] == '"1"'


def test_a_keyed_repeat_answers_alike_through_either_path(client: httpx.Client) -> None:
    body = {**BODY, "name": f"keyed-{uuid.uuid4()}"}
    key = f"fast-{uuid.uuid4()}"
    first = _send(client, "POST", "/products", body, **FAST, **{"Idempotency-Key": key})
    routed = _send(client, "POST", "/products", body, **ROUTED, **{"Idempotency-Key": key})
    fast = _send(client, "POST", "/products", body, **FAST, **{"Idempotency-Key": key})
    assert first.status_code == routed.status_code == fast.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert [(k, v) for k, v in fast.headers.raw if k.lower() != b"date"] == [
        (k, v) for k, v in routed.headers.raw if k.lower() != b"date"
    ]
    assert fast.content == routed.content == first.content
    other = _send(
        client, "POST", "/products", {**body, "stock": 8}, **FAST, **{"Idempotency-Key": key}
    )
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_key_reused"


def test_replace_answers_like_the_route(client: httpx.Client) -> None:
    pid = _send(client, "POST", "/products", BODY, **FAST).json()["id"]
    fast = _send(client, "PUT", f"/products/{pid}", {**BODY, "stock": 1}, **FAST)
    routed = _send(client, "PUT", f"/products/{pid}", {**BODY, "stock": 2}, **ROUTED)
    assert fast.status_code == routed.status_code == 200
    assert _shape(fast) == _shape(routed)
    assert (fast.json()["version"], routed.json()["version"]) == (2, 3)
    assert fast.headers["etag"] == '"2"'


def test_replace_errors_are_the_routes(client: httpx.Client) -> None:
    pid = _send(client, "POST", "/products", BODY, **FAST).json()["id"]
    for headers in (FAST, ROUTED):
        stale = _send(client, "PUT", f"/products/{pid}", BODY, **headers, **{"If-Match": '"9"'})
        assert stale.status_code == 412
        assert stale.json() == {"error": "version_mismatch", "detail": stale.json()["detail"]}
        missing = _send(client, "PUT", "/products/9223372036854775807", BODY, **headers)
        assert missing.status_code == 404
        assert missing.content == b'{"error":"not_found"}'
    good = _send(client, "PUT", f"/products/{pid}", BODY, **FAST, **{"If-Match": '"1"'})
    assert good.status_code == 200


def test_invalid_bodies_get_fastapis_422_through_either_content_type(
    client: httpx.Client,
) -> None:
    pid = _send(client, "POST", "/products", BODY, **FAST).json()["id"]
    bad_bodies: list[Any] = [
        {**BODY, "price": "-1"},
        {**BODY, "extra": 1},
        {"name": "no price"},
        [BODY],
        b"{not json",
        b"",
        b'{"name": "\xff"}',
        # Deeper than the interpreter's recursion limit, far under the 1 MiB body limit.
        b"[" * 200_000,
        b'{"name": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
    ]
    for bad in bad_bodies:
        for method, path in (("POST", "/products"), ("PUT", f"/products/{pid}")):
            fast = _send(client, method, path, bad, **FAST)
            routed = _send(client, method, path, bad, **ROUTED)
            assert fast.status_code == routed.status_code == 422, (bad, fast.text)
            assert fast.content == routed.content
            assert fast.json()["error"] == "validation_error"


def test_a_malformed_key_with_a_valid_body_is_fastapis_422(client: httpx.Client) -> None:
    body = json.dumps(BODY).encode()
    for key in ("", "x" * 101, "caf\u00e9", "tab\there"):
        answers = [
            client.post(
                "/products",
                content=body,
                headers=[(b"Content-Type", ct.encode()), (b"Idempotency-Key", key.encode())],
            )
            for ct in (FAST["Content-Type"], ROUTED["Content-Type"])
        ]
        assert [a.status_code for a in answers] == [422, 422], key
        assert answers[0].content == answers[1].content


def test_a_write_raises_the_fence_before_it_answers(client: httpx.Client, rds: redis.Redis) -> None:
    pid = _send(client, "POST", "/products", BODY, **FAST).json()["id"]
    assert rds.get(f"product:{pid}:fence") == b"1"
    client.get(f"/products/{pid}")
    assert rds.get(f"product:{pid}") is not None
    _send(client, "PUT", f"/products/{pid}", BODY, **FAST)
    assert rds.get(f"product:{pid}:fence") == b"2"
    assert rds.get(f"product:{pid}") is None


def test_fast_writes_are_counted_like_routed_ones(client: httpx.Client) -> None:
    pid = _send(client, "POST", "/products", BODY, **FAST).json()["id"]
    series = {
        "post": 'pgha_http_requests_total{method="POST",route="/products",status="201"}',
        "put": 'pgha_http_requests_total{method="PUT",route="/products/{product_id}",status="200"}',
        "put_count": (
            'pgha_http_request_duration_seconds_count{method="PUT",'
            'route="/products/{product_id}",status="200"}'
        ),
        "put_404": (
            'pgha_http_requests_total{method="PUT",route="/products/{product_id}",status="404"}'
        ),
    }
    before = client.get("/metrics").text
    for headers in (FAST, ROUTED):
        assert _send(client, "POST", "/products", BODY, **headers).status_code == 201
        assert _send(client, "PUT", f"/products/{pid}", BODY, **headers).status_code == 200
        assert _send(client, "PUT", f"/products/{2**62}", BODY, **headers).status_code == 404
    after = client.get("/metrics").text
    for name, line in series.items():
        assert _metric(after, line) - _metric(before, line) == 2, name


def test_an_oversized_declared_body_is_still_the_limits_413(client: httpx.Client) -> None:
    big = json.dumps({**BODY, "description": "x" * (1024 * 1024)}).encode()
    response = client.post("/products", content=big, headers=FAST)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
