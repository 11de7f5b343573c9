"""Pure recovery logic of the service (app/db/recovery.py): backoff schedule and breaker hold."""

from __future__ import annotations

from app.db.recovery import (
    FIRST_FLAP_HOLD_S,
    FLAP_WINDOW_S,
    CircuitBreaker,
    backoff_delay,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_try_is_immediate_then_the_delay_doubles_up_to_the_cap() -> None:
    delays = [backoff_delay(n, 0.25, 1.0) for n in range(6)]
    assert delays == [0.0, 0.25, 0.5, 1.0, 1.0, 1.0]


def test_a_very_long_outage_keeps_the_capped_delay() -> None:
    assert backoff_delay(10_000, 0.25, 1.0) == 1.0


def test_a_first_trip_lets_the_recovery_loop_close_the_breaker_at_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3.0, clock=clock)
    breaker.trip()
    assert breaker.is_open()
    assert breaker.cooled_down()


def test_failed_probes_do_not_push_the_next_one_back() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3.0, clock=clock)
    breaker.trip()
    clock.now += 0.25
    breaker.trip()  # what a failing request or probe does while it is open
    assert breaker.cooled_down()


def test_a_breaker_that_keeps_re_tripping_after_closing_is_held_longer_up_to_the_max() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3.0, clock=clock)
    breaker.trip()
    assert breaker.cooled_down()  # the first trip holds nothing
    for hold in (FIRST_FLAP_HOLD_S, 1.0, 2.0, 3.0, 3.0):
        breaker.close()
        clock.now += 0.1  # re-trips right after closing: a flapping Redis
        breaker.trip()
        clock.now += hold - 0.01
        assert not breaker.cooled_down()
        clock.now += 0.01
        assert breaker.cooled_down()


def test_a_trip_long_after_the_last_close_is_a_new_outage_with_no_hold() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3.0, clock=clock)
    for _ in range(3):
        breaker.trip()
        clock.now += 3.0
        breaker.close()
    clock.now += FLAP_WINDOW_S
    breaker.trip()
    assert breaker.cooled_down()
