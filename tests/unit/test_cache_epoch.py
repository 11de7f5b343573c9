"""The cache epoch (cacheMode sentinel): parsing it, tagging bodies, the grace period."""

from __future__ import annotations

import pytest

from app.cache.sentinel import (
    EpochClock,
    NotAPrimary,
    parse_replication,
    parse_sentinels,
    primary_epoch,
    split_body,
)

REPLID = b"8209067aa68776e01bc922edd74fc26e3c432775"
PRIMARY_INFO = (
    b"# Replication\r\nrole:master\r\nconnected_slaves:1\r\nmaster_failover_state:no-failover\r\n"
    b"master_replid:" + REPLID + b"\r\nmaster_replid2:0000000000000000000000000000000000000000\r\n"
)


def test_the_epoch_of_a_primary_is_its_replication_id() -> None:
    assert parse_replication(PRIMARY_INFO) == ("master", REPLID)
    assert primary_epoch(PRIMARY_INFO) == REPLID


def test_a_replica_is_never_taken_for_the_primary() -> None:
    with pytest.raises(NotAPrimary):
        primary_epoch(PRIMARY_INFO.replace(b"role:master", b"role:slave"))


def test_an_info_reply_without_a_replication_id_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_replication(b"# Replication\r\nrole:master\r\n")


def test_a_tagged_body_splits_into_version_epoch_and_json() -> None:
    assert split_body(b"12|" + REPLID + b'|{"id": 1}') == (12, REPLID, b'{"id": 1}')


@pytest.mark.parametrize("raw", [b'12|{"id": 1}', b"|" + REPLID + b"|{}", b"1|short|{}"])
def test_a_body_without_an_epoch_tag_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        split_body(raw)


def test_a_new_epoch_opens_a_grace_period_and_the_same_one_does_not() -> None:
    clock = EpochClock(grace_seconds=2.0)
    assert clock.observe(b"a" * 40, now=100.0)
    assert clock.in_grace(now=101.0)
    assert not clock.in_grace(now=102.5)
    assert not clock.observe(b"a" * 40, now=103.0)
    assert not clock.in_grace(now=103.0)
    assert clock.observe(b"b" * 40, now=104.0)
    assert clock.in_grace(now=105.0)


def test_with_no_grace_configured_nothing_is_ever_in_grace() -> None:
    clock = EpochClock(grace_seconds=0.0)
    clock.observe(b"a" * 40, now=1.0)
    assert not clock.in_grace(now=1.0)


def test_sentinel_addresses_parse_and_a_malformed_one_is_refused() -> None:
    assert parse_sentinels("sentinel-0:26379, sentinel-1:26379") == [
        ("sentinel-0", 26379),
        ("sentinel-1", 26379),
    ]
    with pytest.raises(ValueError):
        parse_sentinels("sentinel-0")


def test_with_a_barrier_the_grace_lasts_until_the_primary_lsn_is_read() -> None:
    clock = EpochClock(grace_seconds=2.0, with_barrier=True, barrier_wait_seconds=2.0)
    clock.observe(b"a" * 40, now=100.0)
    assert clock.barrier_due(now=101.0) is None
    assert clock.barrier_due(now=102.0) == b"a" * 40
    assert clock.in_grace(now=103.0)
    assert clock.set_barrier(b"a" * 40, "0/3000060")
    assert not clock.in_grace(now=103.0)
    assert clock.barrier == "0/3000060"
    assert clock.barrier_due(now=103.0) is None


def test_a_barrier_read_for_an_older_epoch_is_dropped_and_a_new_epoch_clears_it() -> None:
    clock = EpochClock(grace_seconds=2.0, with_barrier=True)
    clock.observe(b"a" * 40, now=100.0)
    clock.set_barrier(b"a" * 40, "0/1")
    clock.observe(b"b" * 40, now=110.0)
    assert clock.barrier is None
    assert not clock.set_barrier(b"a" * 40, "0/2")
    assert clock.barrier is None


def test_the_grace_ends_without_a_barrier_when_the_primary_never_answers() -> None:
    clock = EpochClock(grace_seconds=2.0, with_barrier=True, barrier_wait_seconds=2.0)
    clock.observe(b"a" * 40, now=100.0)
    assert clock.in_grace(now=103.9)
    assert not clock.in_grace(now=104.1)
    assert clock.barrier_due(now=104.1) == b"a" * 40


def test_without_the_guard_no_barrier_is_ever_due() -> None:
    clock = EpochClock(grace_seconds=0.0)
    clock.observe(b"a" * 40, now=1.0)
    assert clock.barrier_due(now=5.0) is None
    assert not clock.in_grace(now=1.0)
