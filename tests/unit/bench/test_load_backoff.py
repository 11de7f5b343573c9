"""The load client's pause between requests: bounded backoff while the stack fails."""

from __future__ import annotations

from pgha_testkit.load import LoadSpec, pause_after


def test_a_thread_that_succeeds_keeps_its_pace() -> None:
    assert pause_after(0, LoadSpec()) == LoadSpec().pace_s


def test_consecutive_errors_double_the_pause_up_to_a_bound_below_the_recovery_goal() -> None:
    spec = LoadSpec(error_backoff_s=0.05, error_backoff_max_s=0.2)
    assert [pause_after(n, spec) for n in range(1, 6)] == [0.05, 0.1, 0.2, 0.2, 0.2]


def test_an_outage_of_any_length_keeps_the_bounded_pause() -> None:
    assert pause_after(100_000, LoadSpec()) == LoadSpec().error_backoff_max_s
