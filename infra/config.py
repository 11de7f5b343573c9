"""Every stack config read of the pgha program, in one place (namespace `pgha`).

Components never call `pulumi.Config` themselves: they receive a `StackConfig`,
so each key, its default and its validation are documented here and in the README.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pulumi

from infra.containers import DEFAULT_LIMITS, Limits, LogRotation, Scope
from infra.placement import MultiHost, ServicePorts, parse
from infra.sentinel_cfg import SentinelTimings

# The secret config keys (pgha namespace), by `Secrets` field: test stacks and tools
# set exactly these, so a new password is added here and nowhere else.
SECRET_KEYS = {
    "postgres": "postgresPassword",
    "replication": "replicationPassword",
    "redis": "redisPassword",
    "haproxy_stats": "haproxyStatsPassword",
    # pgBackRest's repository cipher passphrase (pgha:backup): infra/backup.py.
    "backup": "backupPassphrase",
}
# Passwords are written unquoted into HAProxy's and Redis's config files, libpq passfiles
# and pgBackRest's config, and percent-encoded into URLs: these characters are safe in
# every one of them (no whitespace, quotes, `#`, `$`, `:` or backslash).
SECRET_VALUE = re.compile(r"^[A-Za-z0-9._~!@%^&*()+=,;?/\[\]{}|<>-]{8,128}$")
NODE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")
READ_FALLBACKS = ("none", "primary")
# manual: ClusterRole moves the primary when pgha:primary changes (infra/failover.py).
# patroni: Patroni elects the leader through etcd on its own; pgha:primary is the
# preferred leader, and a change of it is a switchover (infra/patroni.py).
FAILOVER_MODES = ("manual", "patroni")
# single: one Redis container (infra/cache.py). sentinel: a primary, a replica and 3
# Sentinels that fail over on their own (infra/sentinel.py).
CACHE_MODES = ("single", "sentinel")


@dataclass(frozen=True)
class Ports:
    """Host ports, all published on `bind_address` only."""

    api: int
    write: int
    read: int
    redis: int
    stats: int


@dataclass(frozen=True)
class Secrets:
    """Passwords stay `Output`s from `require_secret` down to container env."""

    postgres: pulumi.Output[str]
    replication: pulumi.Output[str]
    redis: pulumi.Output[str]
    haproxy_stats: pulumi.Output[str]
    backup: pulumi.Output[str]


@dataclass(frozen=True)
class BackupConfig:
    """pgha:backup and its keys (infra/backup.py): WAL archiving and scheduled backups into
    the stack's pgBackRest repository container."""

    enabled: bool = True
    # Keep the repository's volume on `pulumi destroy` (a backup that dies with its cluster
    # is not a backup); the tests' throwaway stacks set it false.
    retain: bool = True
    retention_full: int = 2
    # Hours between scheduled full backups, and between differential ones (0: none).
    full_every_h: int = 24
    diff_every_h: int = 1


@dataclass(frozen=True)
class RestoreConfig:
    """pgha:restoreFrom and pgha:restoreTarget (infra/restore.py): this new stack's cluster
    bootstraps from another stack's repository, recovered to `target`."""

    source: str
    # "latest", or a UTC timestamp in PostgreSQL's format (pgBackRest's --target).
    target: str
    # The source repository's passphrase (pgha:restorePassphrase; `make restore` copies it).
    passphrase: pulumi.Output[str]
    # The target as a moment; None for "latest".
    moment: datetime | None = None

    @property
    def source_volume(self) -> str:
        return f"{pulumi.get_project()}-{self.source}-backup-data"


def restore_target(raw: str) -> str:
    """pgha:restoreTarget as pgBackRest's --target: "latest", or RFC 3339 (with an offset or
    Z) as a UTC timestamp PostgreSQL parses; anything else is an error."""
    if raw == "latest":
        return raw
    moment = None
    if RFC3339.match(raw):
        try:
            moment = datetime.fromisoformat(raw.upper())
        except ValueError:  # e.g. month 13
            moment = None
    if moment is None:
        raise ValueError(
            f"pgha:restoreTarget {raw!r} is not an RFC 3339 time with an offset "
            '(e.g. 2026-12-07T14:03:00Z) or "latest"'
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _restore(cfg: pulumi.Config, backup: BackupConfig) -> RestoreConfig | None:
    source = cfg.get("restoreFrom")
    raw_target = cfg.get("restoreTarget")
    if not source:
        if raw_target:
            raise ValueError("pgha:restoreTarget needs pgha:restoreFrom (the stack to restore)")
        return None
    if not NODE_NAME.match(source):
        raise ValueError(f"pgha:restoreFrom {source!r} is not a stack name")
    if source == pulumi.get_stack():
        raise ValueError(
            "pgha:restoreFrom names this stack itself: restore into a new stack "
            "(pulumi stack init NAME), never over the cluster being restored"
        )
    if not backup.enabled:
        raise ValueError("pgha:restoreFrom needs pgha:backup: the restored stack archives too")
    target = restore_target(raw_target or "latest")
    if target != "latest" and datetime.fromisoformat((raw_target or "").upper()) > datetime.now(
        UTC
    ):
        raise ValueError(f"pgha:restoreTarget {raw_target} is in the future")
    passphrase = cfg.get_secret("restorePassphrase")
    if passphrase is None:
        raise ValueError(
            f"pgha:restoreFrom {source} needs that stack's repository passphrase: "
            f"pulumi config set --secret pgha:restorePassphrase "
            f'"$(pulumi config get pgha:backupPassphrase --stack {source})" '
            "(make restore does this)"
        )
    moment = None if target == "latest" else datetime.fromisoformat((raw_target or "").upper())
    return RestoreConfig(source=source, target=target, passphrase=passphrase, moment=moment)


@dataclass(frozen=True)
class MonitoringConfig:
    """pgha:monitoring and the host ports of Prometheus and Alertmanager (127.0.0.1 only)."""

    # Off until its CPU cost on the 2-core test host decides the default (docs/observability.md).
    enabled: bool = False
    prometheus_port: int = 9090
    alertmanager_port: int = 9093


def _monitoring(cfg: pulumi.Config, multihost: bool) -> MonitoringConfig:
    defaults = MonitoringConfig()
    enabled = cfg.get_bool("monitoring") or False
    if enabled and multihost:
        raise ValueError("pgha:monitoring is not supported with pgha:hosts yet; set it false")
    ports = (
        cfg.get_int("prometheusPort") or defaults.prometheus_port,
        cfg.get_int("alertmanagerPort") or defaults.alertmanager_port,
    )
    if len(set(ports)) != 2 or not all(1 <= p <= 65535 for p in ports):
        raise ValueError("pgha:prometheusPort and pgha:alertmanagerPort must be distinct ports")
    return MonitoringConfig(enabled, *ports)


@dataclass(frozen=True)
class StackConfig:
    prefix: str
    nodes: list[str]
    primary: str
    synchronous: bool
    # Patroni's synchronous_mode_strict (failoverMode patroni only).
    synchronous_strict: bool
    cache_ttl_seconds: int
    read_fallback: str
    failover_mode: str
    bind_address: str
    ports: Ports
    base_image: str
    retain_data: bool
    api_workers: int
    api_replicas: int
    secrets: Secrets
    cache_mode: str = "single"
    # Read only in cacheMode sentinel; defaults and reasons in infra/sentinel_cfg.py.
    sentinel_timings: SentinelTimings = SentinelTimings()
    # The API's failover guard (cache epoch, grace, primary reads while bypassing); off only
    # to demonstrate what it prevents (tests/e2e_sentinel/test_stale_reads.py).
    cache_failover_guard: bool = True
    # pgha:hosts and pgha:placement (infra/placement.py); None: everything on the local
    # engine, exactly as before they existed.
    multihost: MultiHost | None = None
    backup: BackupConfig = BackupConfig(enabled=False)
    restore: RestoreConfig | None = None
    # pgha:monitoring (infra/monitoring.py): Prometheus, Alertmanager and the exporters.
    monitoring: MonitoringConfig = MonitoringConfig()
    # pgha:memoryLimitsMb over infra/containers.py's defaults, and pgha:logMaxSizeMb/Files.
    limits: Mapping[str, Limits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    logs: LogRotation = LogRotation()

    @property
    def replicas(self) -> list[str]:
        return [n for n in self.nodes if n != self.primary]

    def scope(self, network: pulumi.Input[str], labels: Mapping[str, str]) -> Scope:
        """Where a component's containers go, with this stack's limits and log rotation."""
        return Scope(self.prefix, network, labels, self.limits, self.logs)


def load() -> StackConfig:
    cfg = pulumi.Config("pgha")
    nodes = cfg.get_object("nodes") or ["pg-0", "pg-1"]
    if not isinstance(nodes, list) or len(nodes) < 2 or len(set(nodes)) != len(nodes):
        raise ValueError("pgha:nodes must list at least two distinct node names")
    bad = [n for n in nodes if not isinstance(n, str) or not NODE_NAME.match(n)]
    if bad:
        raise ValueError(f"pgha:nodes has invalid names {bad}: use lowercase letters, digits, '-'")
    primary = cfg.get("primary") or nodes[0]
    if primary not in nodes:
        raise ValueError(f"pgha:primary {primary!r} is not one of pgha:nodes {nodes}")
    read_fallback = cfg.get("readFallback") or "none"
    if read_fallback not in READ_FALLBACKS:
        raise ValueError(f"pgha:readFallback must be one of {READ_FALLBACKS}")
    failover_mode = cfg.get("failoverMode") or "manual"
    if failover_mode not in FAILOVER_MODES:
        raise ValueError(f"pgha:failoverMode must be one of {FAILOVER_MODES}")
    synchronous = cfg.get_bool("synchronous") or False
    strict = cfg.get_bool("synchronousStrict") or False
    if strict and not synchronous:
        raise ValueError("pgha:synchronousStrict needs pgha:synchronous true")
    if strict and failover_mode != "patroni":
        # Manual mode's synchronous replication is strict already: a commit waits for a
        # standby, and there is no engine to relax it.
        raise ValueError("pgha:synchronousStrict applies to failoverMode patroni only")
    ttl = cfg.get_int("cacheTtlSeconds") or 60
    if ttl <= 0:
        raise ValueError("pgha:cacheTtlSeconds must be positive")
    # Two instances: one can die or be replaced while the other serves. More only
    # help with CPU, which one host with 2 cores does not have to spare.
    api_replicas = cfg.get_int("apiReplicas") or 2
    if not 1 <= api_replicas <= 8:
        raise ValueError("pgha:apiReplicas must be between 1 and 8")
    cache_mode = cfg.get("cacheMode") or "single"
    if cache_mode not in CACHE_MODES:
        raise ValueError(f"pgha:cacheMode must be one of {CACHE_MODES}")
    defaults = SentinelTimings()
    timings = SentinelTimings(
        down_after_ms=cfg.get_int("sentinelDownAfterMs") or defaults.down_after_ms,
        failover_timeout_ms=cfg.get_int("sentinelFailoverTimeoutMs")
        or defaults.failover_timeout_ms,
    )
    if not 100 <= timings.down_after_ms <= timings.failover_timeout_ms:
        raise ValueError(
            "pgha:sentinelDownAfterMs must be at least 100 and at most "
            "pgha:sentinelFailoverTimeoutMs"
        )
    ports = Ports(
        api=cfg.get_int("apiPort") or 8000,
        write=cfg.get_int("writePort") or 5432,
        read=cfg.get_int("readPort") or 5433,
        redis=cfg.get_int("redisPort") or 6379,
        stats=cfg.get_int("statsPort") or 8404,
    )
    raw_hosts = cfg.get_object("hosts")
    multihost = None
    if raw_hosts is not None:
        multihost = parse(
            raw_hosts,
            cfg.get_object("placement"),
            cfg.get_object("hostPorts"),
            nodes=nodes,
            failover_mode=failover_mode,
            cache_mode=cache_mode,
            services=ServicePorts(
                api=ports.api, write=ports.write, read=ports.read, redis=ports.redis
            ),
        )
    elif cfg.get_object("placement") is not None:
        raise ValueError("pgha:placement needs pgha:hosts (the hosts it names)")
    backup = _backup(cfg, multihost is not None)
    restore = _restore(cfg, backup)
    return StackConfig(
        prefix=f"{pulumi.get_project()}-{pulumi.get_stack()}",
        nodes=nodes,
        primary=primary,
        synchronous=synchronous,
        synchronous_strict=strict,
        cache_ttl_seconds=ttl,
        read_fallback=read_fallback,
        failover_mode=failover_mode,
        bind_address=cfg.get("bindAddress") or "127.0.0.1",
        ports=ports,
        base_image=cfg.get("baseImage") or "debian:bookworm-slim",
        retain_data=cfg.get_bool("retainData") or False,
        api_workers=cfg.get_int("apiWorkers") or 1,
        api_replicas=api_replicas,
        secrets=Secrets(**{field: _secret(cfg, key) for field, key in SECRET_KEYS.items()}),
        cache_mode=cache_mode,
        sentinel_timings=timings,
        cache_failover_guard=cfg.get_bool("cacheFailoverGuard") is not False,
        multihost=multihost,
        backup=backup,
        restore=restore,
        monitoring=_monitoring(cfg, multihost is not None),
        limits=_limits(cfg),
        logs=_logs(cfg),
    )


def _limits(cfg: pulumi.Config) -> dict[str, Limits]:
    raw = cfg.get_object("memoryLimitsMb") or {}
    if not isinstance(raw, dict):
        raise ValueError("pgha:memoryLimitsMb must be an object of role -> MiB")
    limits = dict(DEFAULT_LIMITS)
    for role, mb in raw.items():
        if role not in DEFAULT_LIMITS:
            raise ValueError(
                f"pgha:memoryLimitsMb names an unknown role {role!r}; roles: "
                + ", ".join(sorted(DEFAULT_LIMITS))
            )
        if not isinstance(mb, int) or isinstance(mb, bool) or not 64 <= mb <= 262144:
            raise ValueError(
                f"pgha:memoryLimitsMb.{role} must be a whole number of MiB, 64 or more"
            )
        limits[role] = Limits(mb)
    return limits


def _logs(cfg: pulumi.Config) -> LogRotation:
    size = cfg.get_int("logMaxSizeMb") or LogRotation.max_size_mb
    files = cfg.get_int("logMaxFiles") or LogRotation.max_files
    if not 1 <= size <= 1024 or not 1 <= files <= 100:
        raise ValueError("pgha:logMaxSizeMb must be 1 to 1024 and pgha:logMaxFiles 1 to 100")
    return LogRotation(size, files)


def check_secret(key: str, value: str) -> None:
    """Refuses a password that some file it is written into would misread (never shows it)."""
    if not SECRET_VALUE.match(value):
        raise ValueError(
            f"pgha:{key} must be 8 to 128 characters of A-Z a-z 0-9 and "
            "._~!@%^&*()+=,;?/[]{}|<>- "
            "(it is written unquoted into HAProxy, Redis and libpq files); "
            "`make up` generates one"
        )


def _secret(cfg: pulumi.Config, key: str) -> pulumi.Output[str]:
    # The plain value is read once, only to check it; what components get stays an Output
    # from require_secret, so it is secret in the state and the logs.
    value = cfg.require_secret(key)
    plain = pulumi.runtime.get_config(f"{cfg.name}:{key}")
    if isinstance(plain, str):
        check_secret(key, plain)
    return value


def _backup(cfg: pulumi.Config, multihost: bool) -> BackupConfig:
    enabled = cfg.get_bool("backup")
    if multihost:
        # Not placed across hosts yet: a spread stack runs without a repository.
        if enabled:
            raise ValueError("pgha:backup is not supported with pgha:hosts yet; set it false")
        return BackupConfig(enabled=False)
    defaults = BackupConfig()
    retention = cfg.get_int("backupRetentionFull")
    retention = defaults.retention_full if retention is None else retention
    if not 1 <= retention <= 100:
        raise ValueError("pgha:backupRetentionFull must be between 1 and 100")
    full_h = cfg.get_int("backupFullEveryHours") or defaults.full_every_h
    diff_h = cfg.get_int("backupDiffEveryHours")
    diff_h = defaults.diff_every_h if diff_h is None else diff_h
    if full_h < 1 or diff_h < 0 or (diff_h and diff_h >= full_h):
        raise ValueError(
            "pgha:backupFullEveryHours must be at least 1, and pgha:backupDiffEveryHours "
            "0 (no differential backups) or less than it"
        )
    return BackupConfig(
        enabled=enabled is not False,
        retain=cfg.get_bool("backupRetain") is not False,
        retention_full=retention,
        full_every_h=full_h,
        diff_every_h=diff_h,
    )
