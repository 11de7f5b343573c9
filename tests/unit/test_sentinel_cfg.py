"""infra/sentinel_cfg.py: the cache nodes' and Sentinels' rendered configs."""

from __future__ import annotations

import pytest

from infra.sentinel_cfg import (
    SentinelTimings,
    derive_password,
    render_redis,
    render_sentinel,
    sentinel_id,
)

RUN_ID = sentinel_id("pgha-unit", "sentinel-0")


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_only_the_non_primary_node_starts_as_a_replica() -> None:
    primary = render_redis("redis-0", "redis-0", "api", "repl", "sent")
    replica = render_redis("redis-1", "redis-0", "api", "repl", "sent")
    assert not any(line.startswith("replicaof") for line in lines(primary))
    assert "replicaof redis-0 6379" in lines(replica)


def test_nodes_announce_their_alias_and_authenticate_replication() -> None:
    conf = lines(render_redis("redis-1", "redis-0", "api", "repl", "sent"))
    assert "replica-announce-ip redis-1" in conf
    assert "masteruser pgha-replica" in conf
    assert "masterauth repl" in conf


def test_nobody_gets_in_without_a_password_and_each_user_has_its_own() -> None:
    conf = lines(render_redis("redis-0", "redis-0", "api", "repl", "sent"))
    assert "user default off" in conf
    users = {line.split()[1]: line.split()[3] for line in conf if line.startswith("user pgha")}
    assert users == {"pgha": ">api", "pgha-replica": ">repl", "pgha-sentinel": ">sent"}


def test_the_api_user_keeps_single_modes_rights() -> None:
    conf = render_redis("redis-0", "redis-0", "api", "repl", "sent")
    api = next(line for line in lines(conf) if line.startswith("user pgha on"))
    assert "-@dangerous" in api and "+info" in api and "-select" in api


def test_the_replication_user_can_only_sync() -> None:
    conf = render_redis("redis-0", "redis-0", "api", "repl", "sent")
    repl = next(line for line in lines(conf) if line.startswith("user pgha-replica"))
    assert repl.endswith("+psync +replconf +ping")


@pytest.mark.parametrize("bad", ["", "has space", "new\nline", 'quo"te'])
def test_a_password_that_would_break_a_config_line_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        render_redis("redis-0", "redis-0", bad, "repl", "sent")
    with pytest.raises(ValueError):
        render_sentinel(
            "sentinel-0", RUN_ID, "redis-0", "auth", bad, SentinelTimings(), "client-pw"
        )


def test_sentinel_monitors_the_initial_primary_with_a_majority_quorum() -> None:
    conf = lines(
        render_sentinel("sentinel-1", RUN_ID, "redis-0", "a", "c", SentinelTimings(), "client-pw")
    )
    assert "sentinel monitor pgha redis-0 6379 2" in conf
    # The per-primary settings must follow the monitor line, or Sentinel rejects them.
    monitor = conf.index("sentinel monitor pgha redis-0 6379 2")
    assert all(conf.index(line) > monitor for line in conf if line.startswith("sentinel auth"))


def test_sentinel_authenticates_to_the_nodes_and_requires_a_password_itself() -> None:
    conf = lines(
        render_sentinel(
            "sentinel-0", RUN_ID, "redis-0", "auth", "cli", SentinelTimings(), "client-pw"
        )
    )
    assert "sentinel auth-user pgha pgha-sentinel" in conf
    assert "sentinel auth-pass pgha auth" in conf
    assert "requirepass cli" in conf
    assert "sentinel sentinel-pass cli" in conf


def test_the_apis_sentinel_user_may_only_ask_where_the_primary_is() -> None:
    conf = lines(
        render_sentinel("sentinel-0", RUN_ID, "redis-0", "a", "c", SentinelTimings(), "api")
    )
    (user,) = [line for line in conf if line.startswith("user ")]
    rules = user.split()
    assert rules[:4] == ["user", "pgha-client", "on", ">api"]
    assert rules[4] == "-@all"
    granted = {r for r in rules[5:] if r.startswith("+")}
    assert granted == {
        "+sentinel|get-master-addr-by-name",
        "+sentinel|masters",
        "+sentinel|master",
        "+ping",
        "+client|setname",
    }


def test_sentinel_announces_and_resolves_names() -> None:
    conf = lines(
        render_sentinel("sentinel-2", RUN_ID, "redis-0", "a", "c", SentinelTimings(), "client-pw")
    )
    assert "sentinel announce-ip sentinel-2" in conf
    assert "sentinel resolve-hostnames yes" in conf
    assert "sentinel announce-hostnames yes" in conf
    assert f"sentinel myid {RUN_ID}" in conf


def test_timings_reach_the_config() -> None:
    timings = SentinelTimings(down_after_ms=1500, failover_timeout_ms=9000)
    conf = lines(render_sentinel("sentinel-0", RUN_ID, "redis-0", "a", "c", timings, "client-pw"))
    assert "sentinel down-after-milliseconds pgha 1500" in conf
    assert "sentinel failover-timeout pgha 9000" in conf


def test_a_run_id_is_stable_per_sentinel_and_distinct_between_them() -> None:
    assert sentinel_id("p", "sentinel-0") == sentinel_id("p", "sentinel-0")
    assert sentinel_id("p", "sentinel-0") != sentinel_id("p", "sentinel-1")
    with pytest.raises(ValueError):
        render_sentinel(
            "sentinel-0", "not-hex", "redis-0", "a", "c", SentinelTimings(), "client-pw"
        )


def test_derived_passwords_differ_by_role_and_do_not_reveal_the_secret() -> None:
    a, b = derive_password("s3cret", "replication"), derive_password("s3cret", "sentinel")
    assert a != b
    assert "s3cret" not in a
    assert len(a) == 64
