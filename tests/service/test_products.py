"""CRUD behaviour, caching headers, pagination and operational endpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import redis

from .conftest import Stack, make_product


def test_created_product_can_be_read_back(client: httpx.Client) -> None:
    body = {"name": "Kettle", "description": "1.7 l", "price": 24.5, "stock": 7}
    created = client.post("/products", json=body)
    assert created.status_code == 201
    product = created.json()
    assert created.headers["location"] == f"/products/{product['id']}"
    assert product["name"] == "Kettle"
    assert product["description"] == "1.7 l"
    assert product["price"] == "24.50"
    assert product["stock"] == 7
    assert product["version"] == 1
    assert product["updated_at"]

    read = client.get(f"/products/{product['id']}")
    assert read.status_code == 200
    assert read.json() == product
    assert read.headers["x-read-source"] in ("replica", "primary")


def test_first_read_misses_then_hits_with_ttl(
    client: httpx.Client, rds: redis.Redis, product: dict[str, Any]
) -> None:
    first = client.get(f"/products/{product['id']}")
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["x-read-source"] in ("replica", "primary")
    ttl = rds.ttl(f"product:{product['id']}")
    assert 0 < ttl <= 60

    second = client.get(f"/products/{product['id']}")
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["x-read-source"] == "cache"
    assert second.content == first.content
    assert second.headers["etag"] == '"1"'


def test_put_replaces_fields_bumps_version_and_invalidates(
    client: httpx.Client,
    rds: redis.Redis,
    product: dict[str, Any],
    cached_version: Callable[[int], int | None],
) -> None:
    pid = product["id"]
    client.get(f"/products/{pid}")
    assert cached_version(pid) == 1

    replaced = client.put(f"/products/{pid}", json={"name": "renamed", "price": "1", "stock": 0})
    assert replaced.status_code == 200
    assert replaced.json()["version"] == 2
    assert replaced.json()["description"] is None  # omitted optional field is replaced too
    assert replaced.json()["price"] == "1.00"
    assert rds.exists(f"product:{pid}") == 0
    assert rds.get(f"product:{pid}:fence") == b"2"

    read = client.get(f"/products/{pid}")
    assert read.headers["x-cache"] == "MISS"
    assert read.json() == replaced.json()
    assert cached_version(pid) == 2


def test_if_match_guards_concurrent_updates(client: httpx.Client, product: dict[str, Any]) -> None:
    pid = product["id"]
    body = {"name": "guarded", "price": "2.00", "stock": 1}
    ok = client.put(f"/products/{pid}", json=body, headers={"If-Match": "1"})
    assert ok.status_code == 200
    assert ok.json()["version"] == 2

    stale = client.put(f"/products/{pid}", json=body, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["error"] == "version_mismatch"

    for junk in ("abc", "99999999999999999999", "-1"):
        assert (
            client.put(f"/products/{pid}", json=body, headers={"If-Match": junk}).status_code == 412
        )

    quoted = client.put(f"/products/{pid}", json=body, headers={"If-Match": '"2"'})
    assert quoted.status_code == 200
    assert quoted.json()["version"] == 3
    assert client.put(f"/products/{pid}", json=body, headers={"If-Match": "*"}).status_code == 200


def test_missing_products_are_404_everywhere(client: httpx.Client) -> None:
    missing = 9_000_000_000
    body = {"name": "x", "price": "1", "stock": 1}
    for response in (
        client.get(f"/products/{missing}"),
        client.put(f"/products/{missing}", json=body),
        client.put(f"/products/{missing}", json=body, headers={"If-Match": "1"}),
        client.delete(f"/products/{missing}"),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "not_found"}
    assert client.get("/no/such/route").json() == {"error": "not_found"}


def test_delete_removes_product_and_leaves_a_tombstone(
    client: httpx.Client, rds: redis.Redis, product: dict[str, Any]
) -> None:
    pid = product["id"]
    client.get(f"/products/{pid}")
    deleted = client.delete(f"/products/{pid}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert rds.exists(f"product:{pid}") == 0
    assert int(rds.get(f"product:{pid}:fence") or 0) < 0

    after = client.get(f"/products/{pid}")
    assert after.status_code == 404
    assert after.json()["error"] == "not_found"
    assert rds.exists(f"product:{pid}") == 0
    assert client.delete(f"/products/{pid}").status_code == 404


def test_list_is_keyset_paginated_and_not_cached(client: httpx.Client, stack: Stack) -> None:
    ids = [make_product(client, name=f"page-{i}")["id"] for i in range(5)]
    stack.cluster.wait_caught_up()
    start = ids[0] - 1
    page1 = client.get("/products", params={"limit": 2, "after": start})
    assert page1.status_code == 200
    assert "x-cache" not in page1.headers
    assert page1.headers["x-read-source"] == "replica"
    body1 = page1.json()
    assert [p["id"] for p in body1["items"]] == ids[:2]
    assert body1["next_after"] == ids[1]

    page2 = client.get("/products", params={"limit": 2, "after": body1["next_after"]}).json()
    assert [p["id"] for p in page2["items"]] == ids[2:4]

    beyond = client.get("/products", params={"after": 9_000_000_000}).json()
    assert beyond == {"items": [], "next_after": None}


def test_unicode_and_sql_metacharacters_are_stored_verbatim(
    client: httpx.Client, stack: Stack
) -> None:
    names = [
        "Robert'); DROP TABLE products;--",
        "ünïcødé 漢字 😀 ‮rtl",
        '100% _like_ \\ backslash " quote $1 %s {}',
    ]
    for name in names:
        description = f"desc of {name}\nsecond line\t'tab'"
        product = make_product(client, name=name, description=description)
        assert product["name"] == name
        read = client.get(f"/products/{product['id']}").json()
        assert read["name"] == name
        assert read["description"] == description
        stored = stack.cluster.primary.sql(
            "SELECT name, description FROM products WHERE id = %s", (product["id"],), "pgha"
        )
        assert stored == [(name, description)]
    assert stack.cluster.primary.sql("SELECT count(*) > 0 FROM products", (), "pgha")[0][0]


def test_name_is_trimmed(client: httpx.Client) -> None:
    assert make_product(client, name="  padded name \t")["name"] == "padded name"


def test_health_touches_nothing_and_ready_reports_each_dependency(
    client: httpx.Client,
) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["write"]["ok"] and checks["write"]["server"] == "primary"
    assert checks["read"]["ok"] and checks["read"]["server"] == "replica"
    assert checks["redis"]["ok"]
    for check in checks.values():
        assert check["latency_ms"] >= 0
    assert ready.json()["down"] == []


def test_metrics_expose_traffic_cache_errors_and_pools(
    client: httpx.Client, product: dict[str, Any]
) -> None:
    client.get(f"/products/{product['id']}")
    client.get(f"/products/{product['id']}")
    text = client.get("/metrics").text
    assert (
        'pgha_http_requests_total{method="GET",route="/products/{product_id}",status="200"}' in text
    )
    assert "pgha_http_request_duration_seconds_bucket" in text
    for result in ("hit", "miss", "bypass"):
        assert f'pgha_cache_requests_total{{result="{result}"}}' in text
    for dependency in ("primary", "replica", "redis"):
        assert f'pgha_backend_errors_total{{dependency="{dependency}"}}' in text
    assert 'pgha_db_pool_connections{pool="write",state="size"}' in text
    assert 'pgha_db_pool_connections{pool="read",state="available"}' in text
    assert "pgha_cache_invalidation_failures_total" in text


def test_openapi_documents_routes_and_error_schema(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/products", "/products/{product_id}", "/health", "/ready", "/metrics"} <= set(
        spec["paths"]
    )
    get_op = spec["paths"]["/products/{product_id}"]["get"]
    assert {"200", "404", "503"} <= set(get_op["responses"])
    assert "ErrorBody" in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["ProductIn"]["additionalProperties"] is False
    assert client.get("/docs").status_code == 200
