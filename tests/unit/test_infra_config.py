"""`infra.config.load`: defaults, and a clear error for each invalid stack config."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pulumi
import pytest

from infra import config, outputs

SECRETS = {f"pgha:{key}": "s3cret-pass" for key in config.SECRET_KEYS.values()}


class NoResources(pulumi.runtime.Mocks):
    # load() declares no resources; mocks only give it a project, a stack and config.
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return args.name, dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


@pytest.fixture(autouse=True)
def mocked_stack() -> Iterator[None]:
    # Pulumi's mocks run on the current event loop; async tests that ran earlier in the
    # session (the service tier) leave none set, so each test gets its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pulumi.runtime.set_mocks(NoResources(), project="pgha", stack="unit")
    yield
    pulumi.runtime.set_all_config({})
    asyncio.set_event_loop(None)
    loop.close()


def load(**values: object) -> config.StackConfig:
    raw = {f"pgha:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    pulumi.runtime.set_all_config({**SECRETS, **raw}, secret_keys=list(SECRETS))
    return config.load()


def test_defaults_give_two_nodes_with_the_first_as_primary() -> None:
    cfg = load()
    assert cfg.prefix == "pgha-unit"
    assert cfg.nodes == ["pg-0", "pg-1"]
    assert (cfg.primary, cfg.replicas) == ("pg-0", ["pg-1"])
    assert cfg.cache_ttl_seconds == 60
    assert cfg.read_fallback == "none"
    assert cfg.bind_address == "127.0.0.1"
    assert (cfg.ports.api, cfg.ports.write, cfg.ports.read) == (8000, 5432, 5433)


def test_the_configured_primary_leads_and_every_other_node_replicates() -> None:
    cfg = load(nodes=["pg-0", "pg-1", "pg-2"], primary="pg-2")
    assert cfg.primary == "pg-2"
    assert cfg.replicas == ["pg-0", "pg-1"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nodes": ["pg-0"]}, "at least two distinct"),
        ({"nodes": ["pg-0", "pg-0"]}, "at least two distinct"),
        ({"nodes": ["pg-0", "PG_1"]}, "invalid names"),
        ({"primary": "pg-9"}, "is not one of pgha:nodes"),
        ({"readFallback": "anything"}, "pgha:readFallback must be one of"),
        ({"failoverMode": "auto"}, "pgha:failoverMode must be one of"),
        ({"cacheTtlSeconds": "-5"}, "must be positive"),
        ({"synchronousStrict": "true", "failoverMode": "patroni"}, "needs pgha:synchronous"),
        ({"synchronousStrict": "true", "synchronous": "true"}, "failoverMode patroni only"),
        ({"cacheMode": "cluster"}, "pgha:cacheMode must be one of"),
        ({"sentinelDownAfterMs": "50"}, "pgha:sentinelDownAfterMs must be at least 100"),
        (
            {"sentinelDownAfterMs": "20000", "sentinelFailoverTimeoutMs": "10000"},
            "at most pgha:sentinelFailoverTimeoutMs",
        ),
    ],
)
def test_invalid_config_is_refused_with_the_key_named(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load(**values)


def test_failover_stays_manual_unless_patroni_is_asked_for() -> None:
    assert load().failover_mode == "manual"
    assert load(failoverMode="patroni").failover_mode == "patroni"


def test_strict_synchronous_mode_is_off_unless_asked_for_in_patroni_mode() -> None:
    assert load(synchronous="true").synchronous_strict is False
    strict = load(failoverMode="patroni", synchronous="true", synchronousStrict="true")
    assert (strict.synchronous, strict.synchronous_strict) == (True, True)


def test_the_cache_stays_a_single_redis_unless_sentinel_is_asked_for() -> None:
    single = load()
    assert single.cache_mode == "single"
    assert single.cache_failover_guard
    sentinel = load(cacheMode="sentinel", sentinelDownAfterMs="1500")
    assert sentinel.cache_mode == "sentinel"
    assert sentinel.sentinel_timings.down_after_ms == 1500
    assert sentinel.sentinel_timings.failover_timeout_ms == 10000
    assert sentinel.sentinel_timings.quorum == 2


def test_the_failover_guard_is_off_only_when_explicitly_disabled() -> None:
    assert load(cacheMode="sentinel", cacheFailoverGuard="true").cache_failover_guard
    assert not load(cacheMode="sentinel", cacheFailoverGuard="false").cache_failover_guard


def test_passwords_are_secret_outputs() -> None:
    cfg = load()
    assert all(isinstance(v, pulumi.Output) for v in vars(cfg.secrets).values())


def test_without_hosts_the_stack_stays_on_the_local_engine() -> None:
    assert load(failoverMode="patroni").multihost is None


def test_hosts_and_placement_are_read_and_checked_at_load() -> None:
    hosts = {f"h{i}": {"url": f"tcp://127.0.0.1:2375{i}", "address": f"10.0.0.{i}"} for i in (1, 2)}
    placement = {
        "pg-0": "h1",
        "pg-1": "h2",
        **{f"etcd-{i}": f"h{1 + i % 2}" for i in range(3)},
        "haproxy": "h1",
        "redis": "h2",
        "api": "h1",
    }
    cfg = load(failoverMode="patroni", hosts=hosts, placement=placement)
    assert cfg.multihost is not None
    assert cfg.multihost.host_of("pg-1").address == "10.0.0.2"
    with pytest.raises(ValueError, match="failoverMode patroni"):
        load(hosts=hosts, placement=placement)


def test_a_placement_without_hosts_is_refused() -> None:
    with pytest.raises(ValueError, match="needs pgha:hosts"):
        load(placement={"pg-0": "h1"})


def test_backup_is_on_by_default_keeps_its_repository_and_two_fulls() -> None:
    cfg = load()
    assert cfg.backup.enabled and cfg.backup.retain
    assert cfg.backup.retention_full == 2
    assert cfg.restore is None


def test_backup_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="backupRetentionFull"):
        load(backupRetentionFull="0")
    with pytest.raises(ValueError, match="backupDiffEveryHours"):
        load(backupFullEveryHours="6", backupDiffEveryHours="6")


@pytest.mark.parametrize(
    ("raw", "target"),
    [
        ("latest", "latest"),
        ("2026-12-07T14:03:00Z", "2026-12-07 14:03:00.000000+00"),
        ("2026-12-07T15:03:00.25+01:00", "2026-12-07 14:03:00.250000+00"),
    ],
)
def test_a_restore_target_becomes_a_utc_timestamp(raw: str, target: str) -> None:
    cfg = load(restoreFrom="dev", restoreTarget=raw, restorePassphrase="p")
    assert cfg.restore is not None
    assert (cfg.restore.source, cfg.restore.target) == ("dev", target)


@pytest.mark.parametrize(
    "raw", ["yesterday", "2026-12-07", "2026-12-07T14:03:00", "2026-13-07T14:03:00Z", "1765116180"]
)
def test_a_restore_target_that_is_not_rfc3339_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        load(restoreFrom="dev", restoreTarget=raw, restorePassphrase="p")


def test_a_restore_target_in_the_future_is_refused() -> None:
    with pytest.raises(ValueError, match="future"):
        load(restoreFrom="dev", restoreTarget="2999-01-01T00:00:00Z", restorePassphrase="p")


def test_restoring_a_stack_into_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="names this stack itself"):
        load(restoreFrom="unit", restorePassphrase="p")


def test_a_restore_needs_the_source_passphrase_and_a_source() -> None:
    with pytest.raises(ValueError, match="restorePassphrase"):
        load(restoreFrom="dev")
    with pytest.raises(ValueError, match="needs pgha:restoreFrom"):
        load(restoreTarget="latest")


@pytest.mark.parametrize(
    "bad", ["short", "has space inside", "quote'd-password", "hash#password", "x" * 129]
)
def test_a_password_a_config_file_would_misread_is_refused_without_showing_it(bad: str) -> None:
    pulumi.runtime.set_all_config({**SECRETS, "pgha:redisPassword": bad}, secret_keys=list(SECRETS))
    with pytest.raises(ValueError, match="pgha:redisPassword must be") as refused:
        config.load()
    assert bad not in str(refused.value)


@pulumi.runtime.test
def test_a_password_with_url_delimiters_is_percent_encoded_in_the_connection_urls() -> Any:
    password = "p@ss/w%rd?x"
    config.check_secret("postgresPassword", password)

    def check(urls: list[str]) -> None:
        for url in urls:
            parts = urlsplit(url)
            assert unquote(parts.password or "") == password
            assert parts.hostname in {"haproxy", "redis"}

    return pulumi.Output.all(
        outputs.postgres_dsn(password, "haproxy:5000"),
        outputs.redis_url("pgha-api", password, "redis:6379"),
    ).apply(check)


def test_every_role_has_a_memory_ceiling_and_a_change_replaces_only_that_role() -> None:
    from infra.containers import DEFAULT_LIMITS

    cfg = load(memoryLimitsMb={"postgres": 4096})
    assert cfg.limits["postgres"].memory_mb == 4096
    assert {r: v for r, v in cfg.limits.items() if r != "postgres"} == {
        r: v for r, v in DEFAULT_LIMITS.items() if r != "postgres"
    }
    assert cfg.logs.max_size_mb == 10 and cfg.logs.max_files == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"memoryLimitsMb": {"postgress": 1024}}, "unknown role 'postgress'"),
        ({"memoryLimitsMb": {"api": 8}}, "memoryLimitsMb.api"),
        ({"memoryLimitsMb": [1]}, "must be an object"),
        ({"logMaxFiles": 1000}, "logMaxFiles"),
    ],
)
def test_bad_limits_are_refused_with_the_key_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load(**values)
