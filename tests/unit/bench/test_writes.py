"""The order of the write runs: ABBA across rounds for every pair."""

from __future__ import annotations

from bench.perf.writes import WriteRun, abba


def run(key: str) -> WriteRun:
    return WriteRun(key, "http://x", "c", "post.lua", [])


def test_abba_alternates_each_pair_across_rounds() -> None:
    pairs = [(run("api_post"), run("bare_insert")), (run("api_put"), run("bare_update"))]
    plan = [[w.key for w in r] for r in abba(pairs, 3)]
    assert plan == [
        ["api_post", "bare_insert", "api_put", "bare_update"],
        ["bare_insert", "api_post", "bare_update", "api_put"],
        ["api_post", "bare_insert", "api_put", "bare_update"],
    ]


def test_abba_with_no_rounds_plans_nothing() -> None:
    assert abba([(run("a"), run("b"))], 0) == []
