"""Nearest-rank percentiles and ratios every figure and goal is computed with."""

from __future__ import annotations

import pytest

from bench.common import percentile, ratio


@pytest.mark.parametrize(
    ("pct", "expected"),
    [(50, 5.0), (90, 9.0), (99, 10.0), (100, 10.0), (1, 1.0), (0, 1.0)],
)
def test_percentile_is_nearest_rank_of_observed_values(pct: float, expected: float) -> None:
    values = [10.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]
    assert percentile(values, pct) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None


def test_percentile_rounds_the_rank_up() -> None:
    # 3 values: rank of p50 is ceil(1.5) = 2, the middle one (no interpolation).
    assert percentile([1.0, 100.0, 3.0], 50) == 3.0


def test_ratio_divides_and_gives_none_for_missing_or_zero_inputs() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(None, 4.0) is None
    assert ratio(3.0, None) is None
    assert ratio(3.0, 0.0) is None
