"""Products endpoints as FastAPI routes: thin adapters over the products core (api/core.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response

from ...deps import AppContext, CatalogDep
from ...models import (
    IDEMPOTENCY_KEY_MAX,
    IDEMPOTENCY_KEY_PATTERN,
    INT8_MAX,
    Product,
    ProductIn,
    ProductPage,
    json_bytes,
)
from .. import core
from ..errors import error_responses

router = APIRouter(prefix="/products", tags=["products"])

ProductId = Annotated[int, Path(ge=1, le=INT8_MAX, description="Server-assigned product id.")]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=(
            "1-100 printable ASCII characters, fresh per logical create. Repeating a request"
            " with the same key returns the product it created (201, `Idempotent-Replayed:"
            " true`) instead of creating another; the same key with a different body is 409."
        ),
    ),
]


@router.post(
    "",
    status_code=201,
    response_model=Product,
    responses=error_responses(409, 413, 422, 503),
    summary="Create a product (at most once per Idempotency-Key)",
)
async def create_product(
    body: ProductIn, request: Request, idempotency_key: IdempotencyKey = None
) -> Response:
    # The catalog straight from app state, as the read route: CatalogDep's dependency
    # resolution is a measurable part of a write's CPU (see bench/README.md).
    ctx: AppContext = request.app.state.ctx
    return await core.create(ctx.catalog, body, idempotency_key)


@router.get(
    "/{product_id}",
    response_model=Product,
    responses={200: {"headers": core.READ_HEADERS_DOC}, **error_responses(404, 422, 503)},
    summary="Read a product (cache, then replica; see X-Cache and X-Read-Source)",
)
async def get_product(product_id: ProductId, request: Request) -> Response:
    # The hottest route takes the catalog from app state instead of CatalogDep: resolving a
    # sub-dependency measured ~50 us per request, about a fifth of a cache hit.
    ctx: AppContext = request.app.state.ctx
    # Canonical ids are answered by the fast path (fastpath.py); this route serves the other
    # spellings ("007") and requests that arrive before the lifespan has run.
    return await core.read(ctx.catalog, product_id)


@router.put(
    "/{product_id}",
    response_model=Product,
    responses=error_responses(404, 412, 413, 422, 503),
    summary="Replace a product's mutable fields",
)
async def replace_product(
    product_id: ProductId,
    body: ProductIn,
    request: Request,
    if_match: Annotated[
        str | None,
        Header(description="Expected current version; 412 if it differs."),
    ] = None,
) -> Response:
    ctx: AppContext = request.app.state.ctx
    return await core.replace(ctx.catalog, product_id, body, if_match)


@router.delete(
    "/{product_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 422, 503),
    summary="Delete a product",
)
async def delete_product(product_id: ProductId, catalog: CatalogDep) -> Response:
    await catalog.delete(product_id)
    return Response(status_code=204)


@router.get(
    "",
    response_model=ProductPage,
    responses=error_responses(422, 503),
    summary="List products by ascending id (keyset pagination, read path, not cached)",
)
async def list_products(
    catalog: CatalogDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[
        int, Query(ge=0, le=INT8_MAX, description="Last id of the previous page.")
    ] = 0,
) -> Response:
    rows, source = await catalog.page(after, limit)
    next_after = rows[-1].id if len(rows) == limit else None
    body = json_bytes({"items": [r.as_dict() for r in rows], "next_after": next_after})
    return Response(body, media_type=core.JSON, headers={"X-Read-Source": source})
