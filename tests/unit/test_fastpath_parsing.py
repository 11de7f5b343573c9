"""The fast path's pure parts: which paths it takes, and the one command it sends."""

from __future__ import annotations

import pytest

from app.api.fastpath import parse_product_id
from app.cache.fence import lookup_command
from app.cache.redispipe import encode_command
from app.models import INT8_MAX


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/products/1", 1),
        ("/products/42", 42),
        (f"/products/{INT8_MAX}", INT8_MAX),
        ("/products/", None),
        ("/products/0", None),
        ("/products/007", None),
        ("/products/+7", None),
        ("/products/-7", None),
        ("/products/7/", None),
        ("/products/7 ", None),
        ("/products/\u0663", None),  # ARABIC-INDIC DIGIT THREE: isdigit(), but not ours
        (f"/products/{INT8_MAX + 1}", None),
        ("/products/99999999999999999999", None),
    ],
)
def test_only_canonical_ids_take_the_fast_path(path: str, expected: int | None) -> None:
    assert parse_product_id(path) == expected


def test_lookup_command_is_the_resp_encoding_of_mget() -> None:
    for pid in (1, 9, 10, 123456, INT8_MAX):
        assert lookup_command(pid) == encode_command(
            "MGET", f"product:{pid}", f"product:{pid}:fence"
        )
