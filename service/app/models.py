"""Request/response schemas and the single JSON encoding used for responses and the cache."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

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


# The OpenAPI document states exactly what the validators below accept, so that every body
# valid against the schema is accepted (schemathesis' positive_data_acceptance) and every
# invalid one is rejected. Runtime validation stays with pydantic; these are documentation.
# Whitespace trimmed from names: Unicode White_Space, which is what pydantic-core strips
# (Rust's str::trim). Not \s: Python's also matches U+001C..U+001F, ECMA's U+FEFF.
_WS = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# 1-200 characters once leading/trailing whitespace is trimmed, no NUL anywhere.
NAME_PATTERN = rf"^[{_WS}]*[^{_WS}\x00](?:[^\x00]{{0,198}}[^{_WS}\x00])?[{_WS}]*$"
NO_NUL_PATTERN = r"^[^\x00]*$"
PRICE_MAX = "9999999999.99"  # numeric(12,2)
PRICE_STRING_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "pattern": NAME_PATTERN,
            "description": "1-200 characters after trimming whitespace; no NUL characters.",
        }
    ),
]
Description = Annotated[
    str | None,
    Field(max_length=2000),
    AfterValidator(_no_nul),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": 2000, "pattern": NO_NUL_PATTERN},
                {"type": "null"},
            ],
            "description": "At most 2000 characters; no NUL characters.",
        }
    ),
]
Price = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2, examples=["19.99"]),
    AfterValidator(_two_places),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "number",
                    "minimum": 0,
                    "maximum": float(PRICE_MAX),
                    "multipleOf": float(PRICE_QUANTUM),
                },
                {"type": "string", "pattern": PRICE_STRING_PATTERN},
            ],
            "description": f"0 to {PRICE_MAX} with at most 2 decimal places.",
        }
    ),
]
Stock = Annotated[int, Field(ge=0, le=INT4_MAX, strict=True)]


class ProductIn(BaseModel):
    """Mutable fields of a product; used for both create (POST) and replace (PUT)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = None
    price: Price
    stock: Stock

    def fingerprint(self) -> str:
        """Digest of the validated fields, stored with an idempotency key.

        Taken after validation, so bodies that mean the same product ("1.5" and 1.50, a
        name with surrounding spaces) count as the same request when a key is repeated.
        """
        canonical = orjson.dumps([self.name, self.description, f"{self.price:.2f}", self.stock])
        return hashlib.sha256(canonical).hexdigest()


# Printable ASCII. Leading and trailing spaces never reach the app (HTTP strips them).
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]+$"
IDEMPOTENCY_KEY_MAX = 100


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
