"""The chaos report's recover_s section: every cell above the 2 s goal is listed."""

from __future__ import annotations

from typing import Any

from bench.chaos_report import recovery_section, slow_recoveries


def cell(target: str, fault: str, **recover: float | None) -> dict[str, Any]:
    return {"target": target, "fault": fault, "mode": "async", "recover_s": recover}


CELLS = [
    cell("replica", "stop", traffic=0.3, quiet=0.4),
    cell("primary", "kill", traffic=2.5, quiet=None),
    cell("redis", "pause", traffic=1.0),
    {"target": "-", "fault": "-", "mode": "-", "error": "boom"},
]


def test_cells_slower_than_the_goal_or_never_recovered_are_listed_with_their_phase() -> None:
    assert slow_recoveries(CELLS) == [
        "primary kill (async, traffic): 2.50 s",
        "primary kill (async, quiet): never",
    ]


def test_the_goal_itself_is_not_above_the_goal() -> None:
    assert slow_recoveries([cell("api", "kill", traffic=2.0)]) == []


def test_the_section_has_a_row_per_measured_cell_and_names_the_slow_ones() -> None:
    lines = recovery_section(CELLS)
    assert "| replica | stop | async | 0.30 | 0.40 |" in lines
    assert "| primary | kill | async | 2.50 | never |" in lines
    assert "| redis | pause | async | 1.00 | - |" in lines
    assert lines[-2] == (
        "Above the 2 s goal: primary kill (async, traffic): 2.50 s; "
        "primary kill (async, quiet): never."
    )


def test_runs_without_recover_figures_have_no_section() -> None:
    assert recovery_section([{"target": "api", "fault": "kill", "mode": "async"}]) == []
