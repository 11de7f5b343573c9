"""bench.compare: the noise rule, and the report-shape check."""

from __future__ import annotations

from typing import Any

from bench.compare import Row, compare, markdown, shape_differences


def report(hit: float, ratio: float, extra: bool = False) -> dict[str, Any]:
    figures: dict[str, Any] = {"api_hit": {"rate": hit, "rate_unit": "req/s"}}
    if extra:
        figures["new_phase"] = {"rate": 1.0}
    return {"figures": figures, "ratios": {"hit_vs_bare": {"value": ratio}}}


def test_a_difference_inside_either_sides_spread_is_noise() -> None:
    row = Row("x", [100.0, 120.0], [105.0, 115.0])
    assert row.verdict == "within noise"


def test_a_difference_beyond_both_spreads_names_the_higher_side() -> None:
    assert Row("x", [100.0, 102.0], [150.0, 151.0]).verdict == "B higher"
    assert Row("x", [150.0, 151.0], [100.0, 102.0]).verdict == "A higher"


def test_one_run_per_side_gives_no_verdict() -> None:
    assert Row("x", [1.0], [2.0]).verdict.startswith("no spread")


def test_compare_pairs_rates_and_ratios_present_everywhere() -> None:
    rows = compare([report(100, 0.9), report(110, 0.8)], [report(105, 0.85, extra=True)])
    assert [r.name for r in rows] == ["api_hit (req/s)", "hit_vs_bare"]
    assert rows[0].a == [100.0, 110.0] and rows[0].b == [105.0]


def test_a_report_with_another_shape_is_named() -> None:
    lines = shape_differences([report(1, 1), report(1, 1, extra=True)])
    assert lines == ["report 2 figures: missing [], extra ['new_phase']"]
    assert shape_differences([report(1, 1), report(2, 2)]) == []


def test_markdown_counts_the_quantities_within_noise() -> None:
    text = markdown([Row("x", [1.0, 2.0], [1.5, 1.6])], "old", "new", [])
    assert "Report shape: identical" in text
    assert "1 of 1 quantities within noise." in text


def chaos(recover: float, lost: int = 0) -> dict[str, Any]:
    cell = {
        "target": "redis",
        "fault": "stop",
        "mode": "async",
        "recover_s": {"traffic": recover},
        "integrity": {"lost": lost},
        "write": {"requests": 10, "ok": 10},
        "read": {"requests": 10, "ok": 8},
    }
    return {"run_id": "x", "cells": [cell]}


def test_chaos_reports_compare_recovery_lost_writes_and_answered_shares() -> None:
    rows = compare([chaos(0.4), chaos(0.5)], [chaos(0.45), chaos(0.42)])
    by_name = {r.name: r for r in rows}
    assert by_name["redis:stop (async) recover s"].verdict == "within noise"
    assert by_name["redis:stop (async) lost writes"].a == [0.0, 0.0]
    assert by_name["redis:stop (async) read 2xx share"].b == [0.8, 0.8]
    assert shape_differences([chaos(1), chaos(2)]) == []


def test_paired_differences_compare_runs_that_ran_back_to_back() -> None:
    row = Row("x", [100.0, 300.0], [110.0, 270.0])
    assert [round(d, 3) for d in row.paired] == [0.095, -0.105]
    assert Row("x", [1.0], [1.0, 2.0]).paired == []
