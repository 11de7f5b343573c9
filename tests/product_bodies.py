"""Product bodies on both sides of validation, shared by the unit and service tiers.

Not a test module: the unit tier checks them against the documented schema, the service
tier sends them to a running API.
"""

from __future__ import annotations

from typing import Any

VALID: dict[str, Any] = {"name": "valid", "description": "ok", "price": "1.00", "stock": 1}


def with_(**changes: Any) -> dict[str, Any]:
    body = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


INVALID_BODIES = {
    "negative price": with_(price="-0.01"),
    "negative numeric price": with_(price=-5),
    "three decimal places": with_(price="1.005"),
    "price too large": with_(price="10000000000.00"),
    "price not a number": with_(price="cheap"),
    "price NaN": with_(price="NaN"),
    "price boolean": with_(price=True),
    "price null": with_(price=None),
    "empty name": with_(name=""),
    "whitespace name": with_(name="   \t\n "),
    "name too long": with_(name="x" * 201),
    "name wrong type": with_(name=123),
    "name with NUL": with_(name="bad\x00name"),
    "description too long": with_(description="d" * 2001),
    "description wrong type": with_(description=["list"]),
    "negative stock": with_(stock=-1),
    "fractional stock": with_(stock=1.5),
    "stock as string": with_(stock="5"),
    "stock boolean": with_(stock=True),
    "stock beyond int4": with_(stock=2**31),
    "missing name": with_(name=...),
    "missing price": with_(price=...),
    "unknown field": with_(colour="red"),
    "server-owned field": with_(version=7),
}


# Accepted although they look odd: the document must admit them too.
ODD_VALID_BODIES = {
    "padded name over 200 raw": with_(name=" " * 150 + "n" * 200 + "\u3000" * 150),
    "name of U+001C (not whitespace to pydantic)": with_(name="\x1c"),
    "name with inner whitespace": with_(name="a \n\t b"),
    "numeric price max": with_(price=9999999999.99),
    "numeric price two places": with_(price=0.29),
    "string price one place": with_(price="0.5"),
    "description at limit": with_(description="d" * 2000),
    "no description": with_(description=...),
}
