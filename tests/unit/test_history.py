"""The stale-read check of the e2e sentinel suite's Jepsen-style history."""

from __future__ import annotations

from pgha_testkit.history import Read, Write, stale_reads


def test_a_read_started_after_an_ack_that_sees_an_older_version_is_stale() -> None:
    writes = [Write(1, 2, acked=10.0)]
    reads = [Read(1, started=10.5, version=1, cache="HIT")]
    assert stale_reads(writes, reads) == [(reads[0], 2)]


def test_a_read_that_started_before_the_ack_may_see_the_old_version() -> None:
    writes = [Write(1, 2, acked=10.0)]
    assert stale_reads(writes, [Read(1, started=9.9, version=1, cache="MISS")]) == []


def test_the_newest_acked_version_counts_even_if_acks_arrived_out_of_order() -> None:
    writes = [Write(1, 5, acked=3.0), Write(1, 4, acked=4.0)]
    stale = stale_reads(writes, [Read(1, started=5.0, version=4, cache="HIT")])
    assert [v for _, v in stale] == [5]


def test_reads_of_other_products_are_not_compared() -> None:
    writes = [Write(1, 9, acked=1.0)]
    assert stale_reads(writes, [Read(2, started=2.0, version=1, cache="HIT")]) == []
