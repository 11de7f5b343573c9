"""If-Match parsing: which version a conditional PUT expects."""

from __future__ import annotations

import pytest

from app.api.core import parse_if_match


@pytest.mark.parametrize("value", [None, "*", "  *  "])
def test_an_absent_or_wildcard_if_match_is_unconditional(value: str | None) -> None:
    assert parse_if_match(value) is None


@pytest.mark.parametrize(("value", "version"), [('"7"', 7), ("7", 7), (' "12" ', 12)])
def test_a_quoted_or_bare_version_is_expected(value: str, version: int) -> None:
    assert parse_if_match(value) == version


@pytest.mark.parametrize("value", ['W/"7"', '"abc"', '"-1"', "", '"', "٣", '"7", "8"'])
def test_anything_else_can_never_match(value: str) -> None:
    assert parse_if_match(value) == -1
