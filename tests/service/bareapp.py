"""The yardstick for the load check: a bare Starlette JSON endpoint with no I/O behind it.

Served by the same uvicorn flags as the API (uvloop, httptools, one worker), so the load
check can report cache-hit throughput as a fraction of what the HTTP stack alone can do.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Same shape and roughly the same size as a cached product body.
PRODUCT = {
    "id": 1,
    "name": "hot",
    "description": None,
    "price": "1.00",
    "stock": 1,
    "version": 1,
    "updated_at": "2024-01-01T00:00:00.000000+00:00",
}


async def product(request: Request) -> JSONResponse:
    return JSONResponse(PRODUCT)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/products/{product_id:int}", product), Route("/health", health)])
