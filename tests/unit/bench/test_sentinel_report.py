"""Sentinel chaos figures from made-up read timelines, the cell plan, and the markdown."""

from __future__ import annotations

import argparse

import pytest

from bench.sentinel_chaos import MATRIX, plan
from bench.sentinel_report import hits_resume_s, markdown, server_errors, summary
from pgha_testkit.history import Read


def reads(*timeline: tuple[float, str]) -> list[Read]:
    return [Read(1, started, 1, cache) for started, cache in timeline]


def every(start: float, stop: float, step: float, cache: str = "HIT") -> list[tuple[float, str]]:
    n = round((stop - start) / step)
    return [(round(start + i * step, 3), cache) for i in range(n)]


def test_hits_resume_is_the_end_of_the_gap_the_fault_opened() -> None:
    # Hits every 0.1 s, the fault at 10.0, bypasses until 16.0, hits again from 16.5.
    timeline = every(8.0, 10.0, 0.1) + every(10.0, 16.0, 0.2, "BYPASS") + every(16.5, 18, 0.1)
    assert hits_resume_s(reads(*timeline), 10.0) == 6.5


def test_hits_that_never_paused_resume_at_zero() -> None:
    timeline = every(8.0, 14.0, 0.1) + [(10.05, "MISS"), (10.3, "MISS")]
    assert hits_resume_s(reads(*timeline), 10.0) == 0.0


def test_a_short_hit_after_promotion_does_not_hide_the_longer_gap_after_it() -> None:
    # One hit right after the fault (an instance not yet aware), then the grace period.
    timeline = every(8.0, 10.0, 0.1) + [(10.2, "HIT")] + every(13.0, 14.0, 0.1)
    assert hits_resume_s(reads(*timeline), 10.0) == 3.0


def test_no_hit_after_the_fault_is_none() -> None:
    assert hits_resume_s(reads(*every(8.0, 10.0, 0.1), (11.0, "BYPASS")), 10.0) is None


def test_server_errors_count_5xx_and_unanswered_requests_only() -> None:
    assert server_errors({200: 50, 404: 3, 503: 2, 500: 1, -1: 4}) == 7
    assert server_errors({200: 50, 409: 1}) == 0


def test_summary_counts_missing_runs() -> None:
    assert summary([4.0, None, 6.0, 5.0]) == {"runs": 4, "missing": 1, "median": 5.0, "max": 6.0}


def test_plan_repeats_only_the_primary_kill() -> None:
    opts = argparse.Namespace(cells="primary:kill,replica:pause", kill_runs=3)
    assert plan(opts) == ["primary:kill"] * 3 + ["replica:pause"]
    everything = plan(argparse.Namespace(cells=None, kill_runs=5))
    assert len(everything) == len(MATRIX) + 4
    assert "sentinels2+primary:kill" in everything


def test_plan_rejects_unknown_cells() -> None:
    with pytest.raises(SystemExit):
        plan(argparse.Namespace(cells="redis:kill", kill_runs=1))


def test_markdown_shows_failover_and_never() -> None:
    cell = {
        "cell": "primary:kill",
        "server_errors": 0,
        "stale_reads": 0,
        "hits_resume_s": None,
        "failover": True,
        "primary_before": "redis-0",
        "primary_after": "redis-1",
        "reads_by_cache": {"HIT": 5, "BYPASS": 2},
    }
    text = markdown({"run_id": "x"}, [cell, {"cell": "replica:kill", "error": "boom"}])
    assert "| primary:kill | 0 | 0 | never | yes | redis-0 → redis-1 | 5/0/2 |" in text
    assert "error: boom" in text


def test_markdown_says_when_the_cache_did_not_become_whole() -> None:
    cell = {"cell": "sentinels2+primary:kill", "not_whole": "redis-1 is not a primary yet"}
    assert "not whole again: redis-1 is not a primary yet" in markdown({}, [cell])
