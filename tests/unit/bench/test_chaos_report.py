"""Chaos outage figures from made-up event timelines, and the markdown table."""

from __future__ import annotations

from typing import Any

from bench.chaos_report import (
    fmt_errors,
    longest_error_streak,
    longest_gap_without_2xx,
    markdown,
    summarize,
)
from pgha_testkit.load import Event


def ev(start: float, end: float, status: str, kind: str = "write") -> Event:
    return Event(kind, start, end, status)


TIMELINE = [
    ev(0.0, 0.1, "201"),
    ev(1.0, 1.2, "201"),
    ev(2.0, 4.0, "timeout"),  # fault at 2.0
    ev(4.0, 4.5, "503"),
    ev(5.0, 5.5, "201"),  # lifted at 4.8
    ev(6.0, 6.1, "201"),
    ev(0.5, 0.6, "200", kind="read"),
]


def test_longest_error_streak_runs_from_first_failing_start_to_last_failing_end() -> None:
    assert longest_error_streak([e for e in TIMELINE if e.kind == "write"]) == 2.5


def test_a_success_ends_the_streak() -> None:
    events = [ev(0, 1, "503"), ev(1, 1.5, "201"), ev(2, 2.25, "503")]
    assert longest_error_streak(events) == 1.0


def test_longest_gap_without_2xx_is_between_successful_completions() -> None:
    assert longest_gap_without_2xx([e for e in TIMELINE if e.kind == "write"]) == 4.3


def test_summarize_counts_errors_and_recovery_for_one_kind() -> None:
    s = summarize(TIMELINE, "write", t_fault=2.0, t_lift=4.8)
    assert s["requests"] == 6
    assert s["ok"] == 4
    assert s["errors"] == {"503": 1, "timeout": 1}
    assert s["errors_before_fault"] == 0
    assert s["errors_after_lift"] == 0
    assert s["first_2xx_after_lift_s"] == 0.7
    assert summarize(TIMELINE, "read", 2.0, 4.8)["requests"] == 1


def test_fmt_errors() -> None:
    assert fmt_errors({}) == "0"
    assert fmt_errors({"503": 2, "timeout": 1}) == "503×2, timeout×1"


def cell(**extra: Any) -> dict[str, Any]:
    side = {
        "errors": {"503": 2},
        "longest_error_streak_s": 1.25,
        "longest_gap_without_2xx_s": 2.0,
        "first_2xx_after_lift_s": None,
    }
    integrity = {"acked": 40, "lost": 1, "duplicated": 0, "indeterminate_committed": 2}
    return {"target": "primary", "fault": "kill", "mode": "async", "write": side,
            "read": side, "integrity": integrity, "whole_after_lift_s": 3.0, **extra}  # fmt: skip


def test_markdown_lists_every_cell_and_the_total_loss() -> None:
    meta = {
        "run_id": "R",
        "stack": "dev",
        "command": "python -m bench.chaos --quick",
        "started": "2026-01-01T00:00:00+00:00",
        "durations": {"before": 3.0, "hold": 4.0, "after": 6.0},
        "load": {"writers": 2, "readers": 2, "timeout_s": 2.0},
    }
    aborted = {"target": "-", "fault": "-", "mode": "-", "error": "boom"}
    md = markdown(meta, [cell(auto_restarted=True), aborted])
    assert "Load: 2 writers + 2 readers through the API, client timeout 2 s; phases 3 s" in md
    assert (
        "| primary | kill | async | 503×2 | 503×2 | 1.2 / 1.2 | 2.0 / 2.0 | - / - | 3.0 | 40 "
        "| **1** | 2 | Docker restarted it |"
    ) in md
    assert "| - | - | - | aborted: boom |" in md
    assert "Lost acknowledged writes in total: **1**." in md
