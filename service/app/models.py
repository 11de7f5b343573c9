"""Request/response schemas and the single JSON encoding used for responses and the cache."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

PRICE_QUANTUM = Decimal("0.01")
INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL text cannot hold U+0000; rejecting it here keeps it a 422, not a 500.
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _two_places(value: Decimal) -> Decimal:
    # "+ 0" folds -0 into 0 so "-0" round-trips as "0.00" like PostgreSQL does.
    return value.quantize(PRICE_QUANTUM) + 0


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
]
Description = Annotated[str | None, Field(max_length=2000), AfterValidator(_no_nul)]
Price = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2, examples=["19.99"]),
    AfterValidator(_two_places),
]
Stock = Annotated[int, Field(ge=0, le=INT4_MAX, strict=True)]


class ProductIn(BaseModel):
    """Mutable fields of a product; used for both create (POST) and replace (PUT)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = None
    price: Price
    stock: Stock


class Product(BaseModel):
    """Documentation schema of a product as returned by the API."""

    id: int
    name: str
    description: str | None
    price: str = Field(examples=["19.99"], description="Decimal with exactly two places.")
    stock: int
    version: int = Field(description="1 on create, +1 on each update.")
    updated_at: datetime


class ProductPage(BaseModel):
    items: list[Product]
    next_after: int | None = Field(description="Pass as ``after`` to fetch the next page.")


@dataclass(frozen=True, slots=True)
class ProductRow:
    id: int
    name: str
    description: str | None
    price: Decimal
    stock: int
    version: int
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "price": f"{self.price:.2f}",
            "stock": self.stock,
            "version": self.version,
            "updated_at": self.updated_at.astimezone(UTC),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.as_dict())


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value)
