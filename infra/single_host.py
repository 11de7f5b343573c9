"""The stack on one Docker engine (`pgha:hosts` unset): wiring and outputs.

What `__main__.py` declared before multi-host placement existed, unchanged: every
container on the local engine (or DOCKER_HOST), on one stack network.
"""

import pulumi
import pulumi_docker as docker

from infra import backup, restore
from infra import outputs as out
from infra.api import Api, ApiArgs
from infra.backup import BackupRepository, BackupRepositoryArgs
from infra.backup_cfg import REPO_PATH, STANZA, STATUS_FILE
from infra.cache import REDIS_PORT, Cache, CacheArgs
from infra.config import StackConfig
from infra.containers import Scope
from infra.etcd import Consensus, ConsensusArgs
from infra.haproxy import Proxy, ProxyArgs
from infra.haproxy_cfg import MANUAL_CHECKS, PATRONI_CHECKS, READ_PORT, WRITE_PORT, ProxyTopology
from infra.images import Images, ImagesArgs
from infra.major_guard import MajorVersionGuard
from infra.monitoring import Monitoring, MonitoringArgs, RedisCredentials
from infra.monitoring_cfg import Members
from infra.patroni import PatroniCluster, PatroniClusterArgs
from infra.postgres import PostgresCluster
from infra.restore import RESTORE_WAIT_S
from infra.sentinel import SentinelCache, SentinelCacheArgs, sentinel_password
from infra.sentinel_cfg import API_USER, SENTINEL_PORT
from infra.stack_ca import StackCA, StackCAArgs
from infra.wiring import cluster_args, export_cluster


def deploy(cfg: StackConfig) -> None:
    """Declares the single-host stack and exports its outputs."""
    labels = {out.STACK_LABEL: cfg.prefix}

    network = docker.Network(
        "network",
        docker.NetworkArgs(
            name=cfg.prefix,
            driver="bridge",
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in labels.items()],
        ),
    )
    # Docker picks the subnet; pg_hba admits it and rejects its gateway (the host).
    ipam = network.ipam_configs.apply(lambda c: c[0])
    scope = cfg.scope(network.name, labels)
    patroni = cfg.failover_mode == "patroni"
    sentinel = cfg.cache_mode == "sentinel"
    # A different PostgreSQL major is refused at preview, before any image is built.
    guard = MajorVersionGuard("postgres-major", [f"{cfg.prefix}-{n}" for n in cfg.nodes])
    images = Images(
        "images",
        ImagesArgs(
            prefix=cfg.prefix,
            base_image=cfg.base_image,
            extra=frozenset({"etcd"} if patroni else ())
            | frozenset({"redis-ha"} if sentinel else ())
            | frozenset({"monitoring"} if cfg.monitoring.enabled else ()),
        ),
        pulumi.ResourceOptions(depends_on=[guard]),
    )

    # pgha:backup: every node archives to the repository container over TLS, with a
    # certificate from the stack CA.
    ca = StackCA("ca", StackCAArgs(prefix=cfg.prefix)) if cfg.backup.enabled else None
    node_env = {n: backup.node_env(ca, n, cfg.secrets.backup) for n in cfg.nodes} if ca else {}
    # Both failover modes run the same nodes from the same secrets; patroni mode adds the
    # consensus store they elect their leader through.
    # pgha:restoreFrom: the node that bootstraps first restores instead of running initdb.
    first = cfg.primary if patroni else cfg.nodes[0]
    restoring = None
    if cfg.restore:
        restore.check_source(cfg.restore, f"{cfg.prefix}-{first}-data", cfg.base_image)
        restoring = restore.restore_node(first, cfg.restore)
    nodes = cluster_args(
        cfg,
        scope,
        images.postgres,
        ipam.apply(lambda c: c.subnet or ""),
        ipam.apply(lambda c: c.gateway or ""),
        node_env,
        restoring,
    )
    cluster: PostgresCluster | PatroniCluster
    consensus: Consensus | None = None
    if patroni:
        consensus = Consensus(
            "etcd",
            ConsensusArgs(
                scope=scope,
                image=images.ids["etcd"],
                retain_data=cfg.retain_data,
            ),
        )
        cluster = PatroniCluster(
            "postgres",
            PatroniClusterArgs(
                **vars(nodes),
                etcd_hosts=consensus.hosts,
                consensus=consensus.members,
                synchronous_strict=cfg.synchronous_strict,
            ),
        )
    else:
        cluster = PostgresCluster("postgres", nodes)
    repo = (
        BackupRepository(
            "backup",
            BackupRepositoryArgs(
                scope=scope,
                image=images.postgres,
                nodes=cfg.nodes,
                ca=ca,
                passphrase=cfg.secrets.backup,
                settings=cfg.backup,
                # Its stanza and first backup need the primary the cluster's role names. A
                # restoring cluster needs the repository up while it restores instead: its
                # first promotion archives, and Patroni's restart after a custom bootstrap
                # waits for the archiver (the repository waits for a primary by itself).
                after=[] if cfg.restore else [cluster.role],
                wait_timeout=RESTORE_WAIT_S + 600 if cfg.restore else 600,
            ),
        )
        if ca
        else None
    )

    proxy = Proxy(
        "haproxy",
        ProxyArgs(
            scope=scope,
            image=images.haproxy,
            topology=ProxyTopology(
                nodes=cfg.nodes,
                read_fallback=cfg.read_fallback,
                checks=PATRONI_CHECKS if patroni else MANUAL_CHECKS,
                api_instances=cfg.api_replicas,
                metrics=cfg.monitoring.enabled,
            ),
            stats_password=cfg.secrets.haproxy_stats,
            bind_address=cfg.bind_address,
            write_port=cfg.ports.write,
            read_port=cfg.ports.read,
            stats_port=cfg.ports.stats,
            api_port=cfg.ports.api,
        ),
        # HAProxy checks roles, so it starts once the cluster has them.
        pulumi.ResourceOptions(depends_on=[cluster.role]),
    )

    # single: today's one container, published on bindAddress. sentinel: nodes and Sentinels on
    # the stack network only; the API asks the Sentinels where the primary is.
    cache: Cache | SentinelCache
    if sentinel:
        cache = SentinelCache(
            "redis",
            SentinelCacheArgs(
                scope=scope,
                image=images.ids["redis-ha"],
                password=cfg.secrets.redis,
                timings=cfg.sentinel_timings,
                failover_guard=cfg.cache_failover_guard,
            ),
        )
    else:
        cache = Cache(
            "redis",
            CacheArgs(
                scope=scope,
                image=images.redis,
                password=cfg.secrets.redis,
                bind_address=cfg.bind_address,
                port=cfg.ports.redis,
            ),
        )

    def dsn(port: int) -> pulumi.Output[str]:
        return out.postgres_dsn(cfg.secrets.postgres, pulumi.Output.concat(proxy.host, f":{port}"))

    api = Api(
        "api",
        ApiArgs(
            scope=scope,
            image=images.api,
            write_dsn=dsn(WRITE_PORT),
            read_dsn=dsn(READ_PORT),
            redis_url=out.redis_url(cache.user, cfg.secrets.redis, cache.redis_address),
            extra_env=cache.api_env,
            cache_ttl_seconds=cfg.cache_ttl_seconds,
            read_fallback=cfg.read_fallback,
            workers=cfg.api_workers,
            replicas=cfg.api_replicas,
        ),
        pulumi.ResourceOptions(depends_on=[proxy, cache]),
    )

    if cfg.monitoring.enabled:
        _monitoring(cfg, scope, images.ids["monitoring"], cluster, consensus, cache, api)

    host = cfg.bind_address
    export_cluster(
        cfg, proxy.api_url, cluster.leader, f"{host}:{cfg.ports.write}", f"{host}:{cfg.ports.read}"
    )
    if isinstance(cache, SentinelCache):
        # Nothing of the cache is published on the host: these are in-network addresses.
        redis_endpoint: pulumi.Input[str] = cache.primary.apply(lambda p: f"{p}:6379")
        pulumi.export(out.REDIS_PRIMARY, cache.primary)
        pulumi.export(out.SENTINEL_ENDPOINTS, cache.endpoints)
    else:
        redis_endpoint = f"{host}:{cfg.ports.redis}"
    pulumi.export(out.REDIS_ENDPOINT, redis_endpoint)
    pulumi.export(out.REDIS_URL, out.redis_url(cache.user, cfg.secrets.redis, redis_endpoint))
    pulumi.export(
        out.CONTAINERS,
        {
            **cluster.containers,
            **(consensus.containers if consensus else {}),
            "haproxy": proxy.container,
            **(
                cache.containers if isinstance(cache, SentinelCache) else {"redis": cache.container}
            ),
            **api.containers,
            **({"backup": repo.container} if repo else {}),
        },
    )
    pulumi.export(out.NETWORK, network.name)
    pulumi.export(
        out.VOLUMES,
        {
            **cluster.volumes,
            **(consensus.volumes if consensus else {}),
            **({"backup": repo.volume} if repo else {}),
        },
    )
    if cfg.restore:
        ended = restore.RestoreResult(
            "restore-result",
            cluster.containers[first],
            cluster.ids[first],
            pulumi.ResourceOptions(depends_on=[cluster.role]),
        )
        pulumi.export(out.RESTORED_FROM, cfg.restore.source)
        pulumi.export(out.RESTORE_TARGET, cfg.restore.target)
        pulumi.export(out.RESTORE_TIMELINE, ended.timeline)
        pulumi.export(out.RESTORE_LSN, ended.lsn)
    if repo:
        pulumi.export(
            out.BACKUP,
            {
                "container": repo.container,
                "volume": repo.volume,
                "stanza": STANZA,
                "retained": cfg.backup.retain,
                # Monitoring: the repository's status (ages of the last backup, of the
                # newest full and of the newest archived segment) as JSON, by either way.
                "status_command": "pgha-backup status",
                "status_file": f"{REPO_PATH}/{STATUS_FILE}",
            },
        )


def _monitoring(
    cfg: StackConfig,
    scope: Scope,
    image: pulumi.Input[str],
    cluster: PostgresCluster | PatroniCluster,
    consensus: Consensus | None,
    cache: Cache | SentinelCache,
    api: Api,
) -> None:
    """pgha:monitoring: Prometheus, Alertmanager and the exporters, scraping these members."""
    if isinstance(cache, SentinelCache):
        # The component's own member names: its redis-N nodes, then its sentinel-N.
        nodes = [m for m in cache.containers if m.startswith("redis-")]
        sentinels = [m for m in cache.containers if m.startswith("sentinel-")]
        password = sentinel_password(cfg.secrets.redis)
        creds = {
            **{n: RedisCredentials(API_USER, cfg.secrets.redis, REDIS_PORT) for n in nodes},
            **{s: RedisCredentials("default", password, SENTINEL_PORT) for s in sentinels},
        }
    else:
        sentinels = []
        creds = {"redis": RedisCredentials(cache.user, cfg.secrets.redis, REDIS_PORT)}
    members = Members(
        nodes=cfg.nodes,
        api_instances=list(api.containers),
        patroni=consensus is not None,
        etcd=list(consensus.containers) if consensus else [],
        redis=[m for m in creds if m not in sentinels],
        sentinels=sentinels,
    )
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            scope=scope,
            image=image,
            members=members,
            node_containers=cluster.containers,
            postgres_password=cfg.secrets.postgres,
            redis=creds,
            prometheus_port=cfg.monitoring.prometheus_port,
            alertmanager_port=cfg.monitoring.alertmanager_port,
        ),
        # The exporters log in with the role the primary creates, and Prometheus scrapes
        # the members from its first minute.
        pulumi.ResourceOptions(depends_on=[cluster.role, api]),
    )
    pulumi.export(out.PROMETHEUS_URL, monitoring.prometheus_url)
    pulumi.export(out.ALERTMANAGER_URL, monitoring.alertmanager_url)
    pulumi.export(out.MONITORING_CONTAINERS, monitoring.containers)
