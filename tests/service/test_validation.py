"""Input validation: every rejection is a JSON error body, never a stack trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.product_bodies import INVALID_BODIES, VALID, with_


@pytest.fixture(scope="module")
def existing(client: httpx.Client) -> Iterator[int]:
    response = client.post("/products", json=VALID)
    assert response.status_code == 201
    yield response.json()["id"]


def assert_validation_error(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert isinstance(body["detail"], list) and body["detail"]
    assert all({"type", "loc", "msg"} <= set(item) for item in body["detail"])
    assert "Traceback" not in response.text


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_invalid_bodies_are_rejected_on_create_and_replace(
    client: httpx.Client, existing: int, body: dict[str, Any]
) -> None:
    assert_validation_error(client.post("/products", json=body))
    assert_validation_error(client.put(f"/products/{existing}", json=body))


def test_rejected_update_leaves_product_unchanged(client: httpx.Client, existing: int) -> None:
    before = client.get(f"/products/{existing}").json()
    client.put(f"/products/{existing}", json=with_(price="-1"))
    assert client.get(f"/products/{existing}").json() == before


def test_boundary_values_are_accepted(client: httpx.Client) -> None:
    body = {
        "name": "n" * 200,
        "description": "d" * 2000,
        "price": "9999999999.99",
        "stock": 2**31 - 1,
    }
    created = client.post("/products", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["price"] == "9999999999.99"
    free = client.post("/products", json=with_(price=0, stock=0, description=None))
    assert free.status_code == 201
    assert free.json()["price"] == "0.00"
    assert free.json()["description"] is None


@pytest.mark.parametrize("raw", [b"{not json", b'{"name": "x",}', b"[1, 2", b"\xff\xfe"])
def test_malformed_json_is_a_json_422(client: httpx.Client, raw: bytes) -> None:
    response = client.post("/products", content=raw, headers={"content-type": "application/json"})
    assert_validation_error(response)


def test_non_object_and_empty_bodies_are_rejected(client: httpx.Client) -> None:
    for raw in (b"[]", b'"text"', b"null", b""):
        response = client.post(
            "/products", content=raw, headers={"content-type": "application/json"}
        )
        assert_validation_error(response)


def test_body_that_is_not_declared_json_is_rejected(client: httpx.Client) -> None:
    raw = b'{"name": "x", "price": "1", "stock": 1}'
    for headers in ({"content-type": "text/plain"}, {}):
        assert_validation_error(client.post("/products", content=raw, headers=headers))


def test_body_over_one_mebibyte_is_413(client: httpx.Client) -> None:
    big = {"name": "big", "price": "1", "stock": 1, "description": "x" * (1024 * 1024)}
    response = client.post("/products", json=big)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_chunked_body_over_one_mebibyte_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "big", "price": "1", "stock": 1, "description": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = client.post(
        "/products", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_bad_path_and_query_parameters(client: httpx.Client) -> None:
    assert_validation_error(client.get("/products/abc"))
    assert_validation_error(client.get("/products/0"))
    assert_validation_error(client.get("/products/99999999999999999999"))
    assert_validation_error(client.get("/products", params={"limit": 0}))
    assert_validation_error(client.get("/products", params={"limit": 101}))
    assert_validation_error(client.get("/products", params={"after": -1}))


def test_wrong_method_is_json(client: httpx.Client) -> None:
    response = client.patch("/products/1", json=VALID)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
