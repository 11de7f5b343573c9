"""pgha bench anchor for the miss and write paths: bare Starlette on psycopg's async pool.

The runner ships this file's source into a container of the API's own image, with the API
container's environment (so the same DSNs through HAProxy, pool sizes, timeouts and worker
count) and the API's uvicorn flags. It runs the API's own SQL text, the read with
``prepare=True`` and each write as one autocommit statement as the API does, and returns the
row as JSON: no Redis, no fence, no middleware, no FastAPI or pydantic. So
``miss_vs_bare_query``, ``post_vs_bare_insert`` and ``put_vs_bare_update`` measure what the
API adds on top of the database round trips it cannot avoid.

It must import nothing but Starlette and psycopg, and nothing from the API: the image does
not put the API's package on uvicorn's path, and the anchor must not share its code.
tests/unit/bench checks that the SQL and the pool defaults still match the API's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

COLUMNS = "id, name, description, price, stock, version, updated_at"

# The API's statements, character for character (service/app/db/sql.py; a unit test compares).
READ_ONE = f"""
SELECT pg_is_in_recovery(), {", ".join("p." + c for c in COLUMNS.split(", "))}
FROM (SELECT 1) AS one LEFT JOIN products AS p ON p.id = %s
"""

INSERT = f"""
INSERT INTO products (name, description, price, stock) VALUES (%s, %s, %s, %s)
RETURNING {COLUMNS}
"""

UPDATE = f"""
UPDATE products
SET name = %s, description = %s, price = %s, stock = %s,
    version = version + 1, updated_at = now()
WHERE id = %s AND (%s::integer IS NULL OR version = %s::integer)
RETURNING {COLUMNS}
"""

# The API's Settings defaults for what its pools use, when the env does not set them.
POOL_DEFAULTS: dict[str, float] = {
    "PGHA_POOL_MIN": 1,
    "PGHA_POOL_MAX": 10,
    "PGHA_POOL_TIMEOUT_SECONDS": 1.5,
    "PGHA_POOL_RECONNECT_TIMEOUT_SECONDS": 0.5,
    "PGHA_DB_CONNECT_TIMEOUT_SECONDS": 1.5,
}


def setting(env: dict[str, str], key: str) -> float:
    return float(env.get(key, POOL_DEFAULTS[key]))


def pool_kwargs(env: dict[str, str]) -> dict[str, Any]:
    """The API's connection options (autocommit, keepalives, libpq's whole-second timeout)."""
    return {
        "autocommit": True,
        "connect_timeout": max(2, round(setting(env, "PGHA_DB_CONNECT_TIMEOUT_SECONDS"))),
        "application_name": "pgha-bench-anchor",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        "tcp_user_timeout": 2000,
    }


def make_pool(env: dict[str, str], name: str, dsn_key: str) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        env[dsn_key],
        kwargs=pool_kwargs(env),
        min_size=int(setting(env, "PGHA_POOL_MIN")),
        max_size=int(setting(env, "PGHA_POOL_MAX")),
        open=False,
        name=name,
        timeout=setting(env, "PGHA_POOL_TIMEOUT_SECONDS"),
        reconnect_timeout=setting(env, "PGHA_POOL_RECONNECT_TIMEOUT_SECONDS"),
    )


def row_json(values: tuple[Any, ...]) -> dict[str, Any]:
    pid, name, description, price, stock, version, updated_at = values
    return {
        "id": pid,
        "name": name,
        "description": description,
        "price": str(price),
        "stock": stock,
        "version": version,
        "updated_at": updated_at.isoformat(),
    }


def body_params(body: dict[str, Any]) -> tuple[Any, ...]:
    return (body["name"], body.get("description"), Decimal(str(body["price"])), body["stock"])


# Filled at startup (not import), so tests can import the pure helpers without DSNs.
POOLS: dict[str, AsyncConnectionPool] = {}


async def get_product(request: Request) -> JSONResponse:
    async with POOLS["read"].connection() as conn:
        cur = await conn.execute(READ_ONE, (request.path_params["product_id"],), prepare=True)
        rows = await cur.fetchall()
    values = tuple(rows[0][1:])
    if values[0] is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    return JSONResponse(row_json(values))


async def post_product(request: Request) -> JSONResponse:
    params = body_params(await request.json())
    async with POOLS["write"].connection() as conn:
        cur = await conn.execute(INSERT, params)
        values = await cur.fetchone()
    assert values is not None
    return JSONResponse(row_json(values), status_code=201)


async def put_product(request: Request) -> JSONResponse:
    pid = request.path_params["product_id"]
    params = (*body_params(await request.json()), pid, None, None)
    async with POOLS["write"].connection() as conn:
        cur = await conn.execute(UPDATE, params)
        values = await cur.fetchone()
    if values is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    return JSONResponse(row_json(values))


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    env = dict(os.environ)
    POOLS["read"] = make_pool(env, "anchor-read", "PGHA_READ_DSN")
    POOLS["write"] = make_pool(env, "anchor-write", "PGHA_WRITE_DSN")
    for pool in POOLS.values():
        await pool.open(wait=True, timeout=30)
    try:
        yield
    finally:
        for pool in POOLS.values():
            await pool.close(timeout=2)


app = Starlette(
    routes=[
        Route("/products", post_product, methods=["POST"]),
        Route("/products/{product_id:int}", get_product, methods=["GET"]),
        Route("/products/{product_id:int}", put_product, methods=["PUT"]),
        Route("/health", health),
    ],
    lifespan=lifespan,
)
