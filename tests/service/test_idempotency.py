"""POST /products with an Idempotency-Key: one product per key, against real PostgreSQL.

A repeat with the same key answers like the first attempt (201, same id, same Location,
plus `Idempotent-Replayed: true`); the same key with another body is 409; a malformed key
is a 422 JSON error; without a key a POST behaves as it always did.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from pgha_testkit.poll import wait_until

from .conftest import Stack
from .servers import APP_USER

BODY = {"name": "idempotent kettle", "description": "1.7 l", "price": "24.50", "stock": 7}


def fresh_key() -> str:
    return f"test-{uuid.uuid4()}"


def rows_named(stack: Stack, name: str, dbname: str = "pgha") -> list[Any]:
    return stack.cluster.primary.sql(
        "SELECT id, idempotency_key FROM products WHERE name = %s", (name,), dbname=dbname
    )


def post(client: httpx.Client, body: dict[str, Any], key: str | None) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post("/products", json=body, headers=headers)


def test_the_same_key_twice_creates_one_product_and_answers_alike(
    client: httpx.Client, stack: Stack
) -> None:
    body = {**BODY, "name": f"once-{uuid.uuid4()}"}
    key = fresh_key()
    first = post(client, body, key)
    again = post(client, body, key)
    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert rows_named(stack, body["name"]) == [(first.json()["id"], key)]


def test_a_repeat_means_the_same_product_after_validation(client: httpx.Client) -> None:
    # Equal once validated: price as a number, name with surrounding spaces.
    body = {**BODY, "name": f"same-{uuid.uuid4()}"}
    key = fresh_key()
    first = post(client, body, key)
    again = post(client, {**body, "name": f"  {body['name']} ", "price": 24.5}, key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]


def test_concurrent_requests_with_one_key_create_one_product(
    client: httpx.Client, stack: Stack
) -> None:
    body = {**BODY, "name": f"race-{uuid.uuid4()}"}
    key = fresh_key()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(client, body, key), range(8)))
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(rows_named(stack, body["name"])) == 1


def test_a_repeat_returns_the_product_as_it_is_now(client: httpx.Client) -> None:
    body = {**BODY, "name": f"updated-{uuid.uuid4()}"}
    key = fresh_key()
    pid = post(client, body, key).json()["id"]
    assert client.put(f"/products/{pid}", json={**body, "stock": 1}).status_code == 200
    again = post(client, body, key)
    assert again.status_code == 201
    assert (again.json()["id"], again.json()["version"], again.json()["stock"]) == (pid, 2, 1)


def test_the_same_key_with_another_body_is_a_conflict(client: httpx.Client, stack: Stack) -> None:
    body = {**BODY, "name": f"conflict-{uuid.uuid4()}"}
    key = fresh_key()
    assert post(client, body, key).status_code == 201
    other = post(client, {**body, "stock": 8}, key)
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/json"
    assert other.json()["error"] == "idempotency_key_reused"
    assert len(rows_named(stack, body["name"])) == 1


@pytest.mark.parametrize(
    "key",
    ["", "x" * 101, "caf\u00e9", "tab\there"],
    ids=["empty", "too-long", "non-ascii", "tab"],
)
def test_a_malformed_key_is_a_json_422_and_creates_nothing(
    client: httpx.Client, stack: Stack, key: str
) -> None:
    body = {**BODY, "name": f"bad-key-{uuid.uuid4()}"}
    # Encoded by hand: httpx would refuse to encode a non-ASCII str, but a client may send it.
    response = client.post("/products", json=body, headers=[(b"Idempotency-Key", key.encode())])
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert rows_named(stack, body["name"]) == []


def test_the_longest_key_is_accepted(client: httpx.Client) -> None:
    key = "~" + "K" * 98 + "!"
    first = post(client, {**BODY, "name": f"long-{uuid.uuid4()}"}, key)
    assert first.status_code == 201, first.text


def test_without_a_key_every_post_creates_a_product(client: httpx.Client, stack: Stack) -> None:
    body = {**BODY, "name": f"keyless-{uuid.uuid4()}"}
    first, second = post(client, body, None), post(client, body, None)
    assert (first.status_code, second.status_code) == (201, 201)
    assert "idempotent-replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert sorted(rows_named(stack, body["name"])) == sorted(
        [(first.json()["id"], None), (second.json()["id"], None)]
    )


def test_a_replayed_create_is_readable_at_once(client: httpx.Client) -> None:
    # The repeat raises the fence too: what it acknowledges is never read as missing.
    body = {**BODY, "name": f"read-{uuid.uuid4()}"}
    key = fresh_key()
    post(client, body, key)
    again = post(client, body, key)
    read = client.get(again.headers["location"])
    assert read.status_code == 200
    assert read.json()["id"] == again.json()["id"]


def test_a_database_from_before_idempotency_keys_is_upgraded(stack: Stack) -> None:
    db = "pgha_upgrade"
    primary = stack.cluster.primary
    primary.sql(f"CREATE DATABASE {db} OWNER {APP_USER}")
    # The table as released before this column existed, owned by the app role.
    primary.sql(
        f"""
        SET ROLE {APP_USER};
        CREATE TABLE products (
            id bigserial PRIMARY KEY, name text NOT NULL, description text,
            price numeric(12,2) NOT NULL CHECK (price >= 0),
            stock integer NOT NULL CHECK (stock >= 0),
            version integer NOT NULL DEFAULT 1,
            updated_at timestamptz NOT NULL DEFAULT now());
        INSERT INTO products (name, price, stock) VALUES ('from before', 1, 1);
        """,
        dbname=db,
    )
    api = stack.api(
        "upgrade",
        PGHA_WRITE_DSN=primary.dsn(db),
        PGHA_READ_DSN=stack.cluster.replica.dsn(db),
    )
    with httpx.Client(base_url=api.url, timeout=10) as http:
        wait_until(lambda: http.get("/ready").status_code == 200, 30, "upgraded API ready")
        body = {**BODY, "name": "after the upgrade"}
        key = fresh_key()
        first, again = post(http, body, key), post(http, body, key)
        assert (first.status_code, again.status_code) == (201, 201), first.text
        assert again.json()["id"] == first.json()["id"]
    # Checked in SQL, not through the API: the instances share one Redis, whose cached
    # product 1 belongs to the main database.
    assert rows_named(stack, "from before", dbname=db) == [(1, None)]
    assert len(rows_named(stack, "after the upgrade", dbname=db)) == 1
