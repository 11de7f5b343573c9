"""pgha:monitoring on the patroni suite's stack: every target up, and real faults fire alerts.

Each fault is timed from the moment it is made to the alert being active in Alertmanager's
API (polled, never asserted against a time); the durations go to
bench/results/e2e-measurements.jsonl and docs/observability.md. The tests wait until the
cluster is whole again before they break anything, so they run in any order beside the
suite's other tests.
"""

from __future__ import annotations

import json
import time

from infra import outputs as out
from pgha_testkit import patroni
from pgha_testkit.alerts import AlertWatch, targets
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import NotYet, wait_until

# Generous bounds for a loaded 2-core host; the measured times are in the report.
FIRE_TIMEOUT_S = 120
RESOLVE_TIMEOUT_S = 180


def _watch(deployment: Deployment) -> AlertWatch:
    return AlertWatch(str(deployment.outputs[out.ALERTMANAGER_URL]))


def test_every_scrape_target_is_up_on_a_fresh_stack(deployment: Deployment) -> None:
    url = str(deployment.outputs[out.PROMETHEUS_URL])

    def all_up() -> bool:
        down = [
            f"{t['labels']['job']}/{t['labels']['node']}: {t['lastError'] or t['health']}"
            for t in targets(url)
            if t["health"] != "up"
        ]
        if down:
            raise NotYet(f"not up: {down}")
        return True

    wait_until(all_up, 120, "every scrape target up")
    jobs = {t["labels"]["job"] for t in targets(url)}
    assert jobs == {
        "postgres",
        "patroni",
        "etcd",
        "redis",
        "haproxy",
        "api",
        "disk",
        "prometheus",
        "alertmanager",
    }
    nodes = {t["labels"]["node"] for t in targets(url) if t["labels"]["job"] == "postgres"}
    assert nodes == set(patroni.pg_nodes(deployment))


def test_a_leader_kill_fires_the_failover_and_primary_count_alerts_which_then_resolve(
    deployment: Deployment,
) -> None:
    old = patroni.wait_whole(deployment)
    watch = _watch(deployment)
    watch.wait_resolved("PostgresNotExactlyOnePrimary", RESOLVE_TIMEOUT_S)
    watch.started = time.monotonic()
    deployment.container(old).kill()
    try:
        primaries = watch.wait_firing("PostgresNotExactlyOnePrimary", FIRE_TIMEOUT_S)
        failover = watch.wait_firing("PostgresFailover", FIRE_TIMEOUT_S)
        resolved = watch.wait_resolved("PostgresNotExactlyOnePrimary", RESOLVE_TIMEOUT_S)
    finally:
        deployment.container(old).start()
    record("alert_not_exactly_one_primary_fired_seconds", round(primaries, 1))
    record("alert_failover_fired_seconds", round(failover, 1))
    record("alert_not_exactly_one_primary_resolved_seconds", round(resolved, 1))
    assert patroni.wait_whole(deployment) != old


def _maintenance(deployment: Deployment, node: str, on: bool) -> None:
    """Patroni's maintenance mode, as `patronictl pause`/`resume` set it, seen by `node`.

    Outside it, Patroni resumes a paused WAL replay at its next loop ("Resuming paused WAL
    replay"), so the lag fault needs it for as long as the replay stays paused.
    """
    status, body = patroni.request(deployment, node, "PATCH", "/config", {"pause": on})
    assert status == 200, body

    def seen() -> bool:
        _, state = patroni.request(deployment, node, "GET", "/patroni")
        return bool(json.loads(state).get("pause", False)) is on

    wait_until(seen, 30, f"{node} sees maintenance mode {on}")


def test_paused_replay_under_writes_fires_the_lag_alert_which_resolves_on_resume(
    deployment: Deployment,
) -> None:
    leader = patroni.wait_whole(deployment)
    replica = next(n for n in patroni.pg_nodes(deployment) if n != leader)
    watch = _watch(deployment)
    watch.wait_resolved("PostgresReplicationLagHigh", RESOLVE_TIMEOUT_S, node=replica)
    _maintenance(deployment, replica, True)
    try:
        with Load(deployment.api, f"lag-{time.monotonic_ns()}", LoadSpec(writers=1, readers=0)):
            watch.started = time.monotonic()
            deployment.sql(replica, "SELECT pg_wal_replay_pause()")
            try:
                fired = watch.wait_firing(
                    "PostgresReplicationLagHigh", FIRE_TIMEOUT_S, node=replica
                )
            finally:
                deployment.sql(replica, "SELECT pg_wal_replay_resume()")
            resumed = time.monotonic()
            watch.wait_resolved("PostgresReplicationLagHigh", RESOLVE_TIMEOUT_S, node=replica)
    finally:
        _maintenance(deployment, replica, False)
    record("alert_replication_lag_fired_seconds", round(fired, 1))
    record("alert_replication_lag_resolved_seconds", round(time.monotonic() - resumed, 1))
    patroni.wait_whole(deployment)


def test_a_stopped_redis_fires_redis_down(deployment: Deployment) -> None:
    watch = _watch(deployment)
    watch.wait_resolved("RedisDown", RESOLVE_TIMEOUT_S)
    # Timed from the stop's start: `docker stop` itself takes a while (graceful shutdown).
    watch.started = time.monotonic()
    with deployment.stopped(["redis"]):
        fired = watch.wait_firing("RedisDown", FIRE_TIMEOUT_S, node="redis")
    record("alert_redis_down_fired_seconds", round(fired, 1))
    watch.wait_resolved("RedisDown", RESOLVE_TIMEOUT_S)


def test_a_stopped_api_instance_fires_api_instance_down(deployment: Deployment) -> None:
    instance = "api-2"
    watch = _watch(deployment)
    watch.wait_resolved("ApiInstanceDown", RESOLVE_TIMEOUT_S)
    watch.started = time.monotonic()
    with deployment.stopped([instance]):
        fired = watch.wait_firing("ApiInstanceDown", FIRE_TIMEOUT_S, node=instance)
    record("alert_api_instance_down_fired_seconds", round(fired, 1))
    watch.wait_resolved("ApiInstanceDown", RESOLVE_TIMEOUT_S)
