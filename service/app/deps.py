"""Annotated dependencies that hand route handlers the objects built in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from .cache.store import ProductCache
from .catalog import Catalog
from .config import Settings
from .db.database import Database
from .metrics import Metrics


@dataclass(slots=True)
class AppContext:
    settings: Settings
    metrics: Metrics
    db: Database
    cache: ProductCache
    catalog: Catalog


# async on purpose: FastAPI runs plain-def dependencies in a thread pool, which would put a
# thread hop on the cache-hit path.
async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_catalog(request: Request) -> Catalog:
    ctx: AppContext = request.app.state.ctx
    return ctx.catalog


ContextDep = Annotated[AppContext, Depends(get_context)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
