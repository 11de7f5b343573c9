"""The one chaos report: the same cell table for every campaign, its checks and series."""

from __future__ import annotations

from typing import Any

from bench.chaos.figures import summary
from bench.chaos.report import fmt_errors, markdown

META = {
    "campaign": "chaos",
    "run_id": "R",
    "stack": "dev",
    "command": "python -m bench.chaos --quick",
    "phases": {"before": 3.0, "hold": 4.0, "after": 6.0},
    "load": {"writers": 2, "readers": 2, "timeout_s": 2.0},
}


def test_fmt_errors() -> None:
    assert fmt_errors({}) == "0"
    assert fmt_errors({"503": 2, "timeout": 1}) == "503×2, timeout×1"


def cell(**extra: Any) -> dict[str, Any]:
    side = {
        "errors": {"503": 2},
        "longest_error_streak_s": 1.25,
        "longest_gap_without_2xx_s": 2.0,
        "first_2xx_after_fault_s": 2.5,
        "first_2xx_after_lift_s": None,
    }
    integrity = {"acked": 40, "lost": 1, "duplicated": 0, "indeterminate_committed": 2}
    return {"cell": "primary:kill", "target": "primary", "fault": "kill", "mode": "async",
            "held_s": 4.0, "write": side, "read": side, "integrity": integrity,
            "recover_s": {"traffic": 0.5, "quiet": None}, "whole_after_lift_s": 3.0,
            "checks": {}, **extra}  # fmt: skip


def test_markdown_lists_every_cell_and_the_total_loss() -> None:
    aborted = {"cell": "replica:stop", "mode": "async", "error": "boom"}
    md = markdown(META, [cell(), aborted])
    assert "held 4.0 s" in md
    assert (
        "| primary:kill | async | 4.0 | 503×2 | 503×2 | 2.0 / 2.0 | 2.5 | - / - | 0.50 / never "
        "| 3.0 | 40 | **1** | 2 |  |"
    ) in md
    assert "| replica:stop | async | aborted: boom |" in md
    assert "Lost acknowledged writes in total: **1**." in md
    assert "primary:kill (async, quiet): never" in md


def test_a_campaign_without_a_ledger_load_has_the_same_row_with_dashes() -> None:
    no_ledger = cell(write=None, read=None, integrity=None, mode="")
    md = markdown(META, [no_ledger])
    assert "| primary:kill | - | 4.0 | - | - | - / - | - | - / - | 0.50 / never | 3.0 | - " in md


def test_the_campaigns_checks_get_a_table_of_their_own() -> None:
    checks = (("failover", "failover"), ("stale", "stale_reads"), ("stall", "write_stall_s"))
    own = {"failover": True, "stale_reads": 0, "write_stall_s": {"p50": 0.1, "max": None}}
    md = markdown(META, [cell(checks=own)], checks)
    assert "| cell | failover | stale | stall |" in md
    assert "| primary:kill | yes | 0 | 0.10/- |" in md


def test_series_are_summarized_with_their_lost_writes() -> None:
    meta = {**META, "series": {"leader kill": {**summary([6.5, 7.0]), "lost": 0}}}
    assert "| leader kill | 2 | 6.75 | 7.00 | 0 |" in markdown(meta, [cell()])


def test_a_stack_that_did_not_become_whole_is_noted() -> None:
    md = markdown(META, [cell(not_whole="redis-1 is not a primary yet")])
    assert "NOT WHOLE: redis-1 is not a primary yet" in md
