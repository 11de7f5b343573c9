"""pgha bench anchor: a bare uvicorn + Starlette JSON endpoint.

The framework floor for the hit path: the runner ships this file's source into a container
of the API's own image and serves it with the API's uvicorn flags and worker count, so
`hit_vs_bare` compares the API with the same interpreter and HTTP stack minus Redis,
middleware and FastAPI. It must import nothing but Starlette: that is all it measures.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def product(request: Request) -> JSONResponse:
    # Product-shaped, about the size of a cached product body.
    return JSONResponse(
        {
            "id": request.path_params["product_id"],
            "name": "bench-bare",
            "description": None,
            "price": "9.99",
            "stock": 3,
            "version": 1,
            "updated_at": "2026-01-01T00:00:00Z",
        }
    )


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/products/{product_id:int}", product), Route("/health", health)])
