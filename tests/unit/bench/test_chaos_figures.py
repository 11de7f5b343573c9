"""Chaos figures from made-up timelines: outages, RTOs, split brains, resumed cache hits."""

from __future__ import annotations

from typing import Any

from bench.chaos.figures import (
    NodeState,
    first_write_after,
    hits_resume_s,
    longest_error_streak,
    longest_gap_without_2xx,
    server_errors,
    slow_recoveries,
    split_brain_samples,
    stall,
    summarize,
    summary,
)
from pgha_testkit.history import Read
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
UP, CUT = True, False


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
    assert s["first_2xx_after_fault_s"] == 3.5
    assert summarize(TIMELINE, "read", 2.0, 4.8)["requests"] == 1


def test_the_rto_ignores_writes_that_were_in_flight_at_the_fault() -> None:
    events = [
        Event("write", 9.9, 10.2, "201"),  # started before the fault at 10.0
        Event("write", 10.5, 12.0, "503"),
        Event("read", 10.6, 10.7, "200"),
        Event("write", 16.0, 16.4, "201"),
    ]
    assert first_write_after(events, 10.0) == 6.4
    assert first_write_after(events[:3], 10.0) is None


def test_writes_sent_while_the_fault_was_being_injected_do_not_count() -> None:
    # `docker kill` returned at 10.4: the write sent at 10.1 reached the old leader.
    events = [Event("write", 10.1, 10.15, "201"), Event("write", 16.0, 16.5, "201")]
    assert first_write_after(events, 10.0) == 0.15
    assert first_write_after(events, 10.0, 10.4) == 6.5
    assert summarize(events, "write", 10.0, 17.0, t_done=10.4)["first_2xx_after_fault_s"] == 6.5


def test_the_write_outage_is_the_longest_gap_between_successful_writes() -> None:
    events = [
        Event("write", 0.0, 1.0, "201"),
        Event("read", 2.0, 2.1, "200"),
        Event("write", 1.1, 8.0, "timeout"),
        Event("write", 8.0, 8.5, "201"),
        Event("write", 8.6, 9.0, "201"),
    ]
    assert summarize(events, "write", 1.0, 8.0)["longest_gap_without_2xx_s"] == 7.5


def test_two_writable_nodes_are_a_split_brain_only_when_both_are_reachable() -> None:
    samples = [
        (0.0, {"pg-0": NodeState(UP, True), "pg-1": NodeState(UP, False)}),
        # The cut-off old leader still writable while a new one leads: not client-visible.
        (1.0, {"pg-0": NodeState(CUT, True), "pg-1": NodeState(UP, True)}),
        (2.0, {"pg-0": NodeState(UP, None), "pg-1": NodeState(UP, True)}),
        (3.0, {"pg-0": NodeState(UP, True), "pg-1": NodeState(UP, True)}),
    ]
    assert split_brain_samples(samples) == [3.0]


def test_a_summary_counts_missing_runs_instead_of_guessing_them() -> None:
    s = summary([6.0, None, 8.0, 7.0])
    assert (s["runs"], s["missing"], s["median"], s["max"]) == (4, 1, 7.0, 8.0)
    assert summary([None])["median"] is None


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


def test_the_write_stall_is_nearest_rank_and_none_without_writes() -> None:
    assert stall([0.1, 0.2, 0.3, 5.0]) == {"p50": 0.2, "p99": 5.0, "max": 5.0}
    assert stall([]) == {"p50": None, "p99": None, "max": None}


def cell(name: str, **recover: float | None) -> dict[str, Any]:
    return {"cell": name, "mode": "async", "recover_s": recover}


def test_cells_slower_than_the_goal_or_never_recovered_are_listed_with_their_phase() -> None:
    cells = [
        cell("replica:stop", traffic=0.3, quiet=0.4),
        cell("primary:kill", traffic=2.5, quiet=None),
        cell("redis:pause", traffic=1.0),
    ]
    assert slow_recoveries(cells) == [
        "primary:kill (async, traffic): 2.50 s",
        "primary:kill (async, quiet): never",
    ]


def test_the_goal_itself_is_not_above_the_goal() -> None:
    assert slow_recoveries([cell("api:kill", traffic=2.0)]) == []
