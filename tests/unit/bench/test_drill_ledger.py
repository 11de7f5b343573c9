"""bench/drill/ledger.py: the Jepsen-style counts of a restore against the ledger."""

from __future__ import annotations

from bench.drill.ledger import Entry, exactness, rpo


def entry(n: int, sent: float, acked: float | None) -> Entry:
    return Entry(f"l-{n}", sent, acked, n if acked else None)


ENTRIES = [
    entry(1, 1.0, 1.1),  # acknowledged before the target (10): must be there
    entry(2, 9.5, 10.5),  # in flight across the target: either way
    entry(3, 10.2, 10.3),  # sent after the target: must not be there
    entry(4, 11.0, None),  # sent after, never acknowledged
]


def test_a_restore_with_exactly_the_rows_before_the_target_counts_no_error() -> None:
    counts = exactness(ENTRIES, {"l-1", "l-2"}, target=10.0)
    assert counts == {
        "acked_before_target": 1,
        "present_before_target": 1,
        "lost": 0,
        "sent_after_target": 2,
        "phantom": 0,
        "in_flight_at_target": 1,
    }


def test_a_missing_acknowledged_row_is_lost_and_a_later_one_is_a_phantom() -> None:
    counts = exactness(ENTRIES, {"l-3"}, target=10.0)
    assert (counts["lost"], counts["phantom"]) == (1, 1)


def test_rpo_counts_the_acknowledged_writes_missing_and_the_window_they_span() -> None:
    entries = [entry(1, 0.0, 1.0), entry(2, 40.0, 41.0), entry(3, 50.0, 51.0), entry(4, 70, None)]
    assert rpo(entries, {"l-1"}, loss=60.0) == {
        "acked_before_loss": 3,
        "acked_lost": 2,
        "lost_window_s": 19.0,
    }


def test_rpo_does_not_count_rows_the_drill_deleted_itself_before_the_loss() -> None:
    # l-1 was acknowledged before the operator's DELETE at 30: absent after a `latest`
    # restore because it was deleted, not lost.
    entries = [entry(1, 0.0, 1.0), entry(2, 40.0, 41.0), entry(3, 50.0, 51.0)]
    assert rpo(entries, {"l-2"}, loss=60.0, since=30.0) == {
        "acked_before_loss": 2,
        "acked_lost": 1,
        "lost_window_s": 9.0,
    }
