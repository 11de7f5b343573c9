"""What the patroni chaos report calls an RTO, an outage and a split brain."""

from __future__ import annotations

from bench.patroni_report import (
    NodeState,
    first_write_after,
    markdown,
    split_brain_samples,
    summary,
    write_outage,
)
from pgha_testkit.load import Event

UP, CUT = True, False


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


def test_the_write_outage_is_the_longest_gap_between_successful_writes() -> None:
    events = [
        Event("write", 0.0, 1.0, "201"),
        Event("read", 2.0, 2.1, "200"),
        Event("write", 1.1, 8.0, "timeout"),
        Event("write", 8.0, 8.5, "201"),
        Event("write", 8.6, 9.0, "201"),
    ]
    assert write_outage(events) == 7.5


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


def test_the_markdown_has_a_row_per_cell_and_the_defaults_ratio() -> None:
    meta = {
        "series": {"leader kill": {**summary([6.5, 7.0]), "lost": 0}},
        "defaults_ratio": 4.2,
    }
    cells = [{"cell": "leader:kill", "lost": 0, "split_brain": False}]
    text = markdown(meta, cells)
    assert "| leader kill | 2 | 6.75 | 7.0 | 0 |" in text
    assert "4.2x" in text
    assert "| leader:kill |" in text
