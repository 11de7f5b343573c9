"""The stack spread over several Docker hosts (`pgha:hosts` set): wiring and outputs.

`__main__.py` calls `deploy` instead of its single-host wiring when `pgha:hosts` is set,
so a stack without it declares exactly what it did before. The components are the same
ones: `Hosts` gives one provider, network and image set per host, and each component or
member lands on the host `pgha:placement` names (failoverMode patroni only, checked in
infra/placement.py):

- PostgreSQL nodes and etcd members publish their ports on their host's address, and
  Patroni and etcd advertise those addresses, so replication, the REST API and etcd's
  peer and client traffic cross hosts directly;
- each HAProxy (one per host `pgha:placement.haproxy` lists, with API instances beside
  it) checks and reaches every node at its host's address; the API reaches its HAProxy
  by alias and Redis by alias on the same host, or at Redis's host address and
  `redisPort` on another one;
- clients reach the API, write and read ports at an HAProxy's host address.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra import outputs as out
from infra.api import Api, ApiArgs
from infra.cache import Cache, CacheArgs
from infra.config import StackConfig
from infra.etcd import Consensus, ConsensusArgs, MemberSite
from infra.haproxy import Proxy, ProxyArgs
from infra.haproxy_cfg import PATRONI_CHECKS, READ_PORT, WRITE_PORT, ProxyTopology
from infra.hosts import Hosts, HostsArgs
from infra.patroni import NodeSite, PatroniCluster, PatroniClusterArgs
from infra.placement import MultiHost, ProxySite, etcd_members
from infra.wiring import cluster_args, export_cluster


def _on(hosts: Hosts, host: str) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(providers=[hosts.providers[host]])


def _consensus(cfg: StackConfig, mh: MultiHost, hosts: Hosts, labels: dict[str, str]) -> Consensus:
    sites = {}
    for member in etcd_members():
        host = mh.placement[member]
        client, peer = mh.etcd_ports(member)
        sites[member] = MemberSite(
            **vars(hosts.site(host, "etcd")), client_port=client, peer_port=peer
        )
    first = mh.placement["etcd-0"]
    return Consensus(
        "etcd",
        ConsensusArgs(
            scope=cfg.scope(hosts.networks[first], labels),
            image=hosts.images[first]["etcd"],
            retain_data=cfg.retain_data,
            sites=sites,
        ),
    )


def _cluster(
    cfg: StackConfig, mh: MultiHost, hosts: Hosts, consensus: Consensus, labels: dict[str, str]
) -> PatroniCluster:
    sites = {}
    for node in cfg.nodes:
        host = mh.placement[node]
        pg, rest = mh.node_ports(node)
        sites[node] = NodeSite(
            **vars(hosts.site(host, "postgres")),
            url=mh.hosts[host].url,
            network_cidr=hosts.subnets[host],
            pg_port=pg,
            rest_port=rest,
            peers=tuple(mh.peer_addresses()),
        )
    first = mh.placement[cfg.primary]
    return PatroniCluster(
        "postgres",
        PatroniClusterArgs(
            **vars(
                cluster_args(
                    cfg,
                    cfg.scope(hosts.networks[first], labels),
                    hosts.images[first]["postgres"],
                    hosts.subnets[first],
                    "",
                )
            ),
            etcd_hosts=consensus.hosts,
            consensus=consensus.members,
            synchronous_strict=cfg.synchronous_strict,
            sites=sites,
        ),
    )


@dataclass
class _Served:
    """One host's HAProxy and API instances, as declared, and where clients reach them."""

    host: str
    haproxy: str
    proxy: Proxy
    api: Api
    api_url: str
    write: str
    read: str


def _proxy_site(
    cfg: StackConfig,
    mh: MultiHost,
    hosts: Hosts,
    site: ProxySite,
    cluster: PatroniCluster,
    cache: Cache,
    labels: dict[str, str],
) -> _Served:
    """An HAProxy on `site.host` in front of every node, and the API instances beside it.

    Its API frontend balances over the instances on its own host only: a client that
    reached this host is served here or not at all, so one host's failure costs only the
    requests on their way through it, and the client's retry on the next address does the
    rest (README, "Two HAProxies").
    """
    host = site.host
    address = mh.hosts[host].address
    scope = cfg.scope(hosts.networks[host], labels)
    endpoints = tuple((n, mh.host_of(n).address, *mh.node_ports(n)) for n in cfg.nodes)
    proxy = Proxy(
        site.haproxy,
        ProxyArgs(
            scope=scope,
            image=hosts.images[host]["haproxy"],
            topology=ProxyTopology(
                nodes=cfg.nodes,
                read_fallback=cfg.read_fallback,
                checks=PATRONI_CHECKS,
                api_instances=cfg.api_replicas,
                endpoints=endpoints,
            ),
            stats_password=cfg.secrets.haproxy_stats,
            # Published on the host's address: clients and other hosts come from outside.
            bind_address=address,
            write_port=cfg.ports.write,
            read_port=cfg.ports.read,
            stats_port=cfg.ports.stats,
            api_port=cfg.ports.api,
            member=site.haproxy,
            engine=mh.hosts[host].url,
        ),
        pulumi.ResourceOptions(depends_on=[cluster.role], providers=[hosts.providers[host]]),
    )
    # The API reaches its HAProxy by alias (same host, placement.parse insists); Redis by
    # alias too when it is there, else at its host's published port.
    redis_host = mh.placement["redis"]
    redis_endpoint = (
        f"{cache.host}:6379"
        if redis_host == host
        else f"{mh.hosts[redis_host].address}:{cfg.ports.redis}"
    )

    def dsn(port: int) -> pulumi.Output[str]:
        return out.postgres_dsn(cfg.secrets.postgres, f"{proxy.host}:{port}")

    api = Api(
        site.api,
        ApiArgs(
            scope=scope,
            image=hosts.images[host]["api"],
            write_dsn=dsn(WRITE_PORT),
            read_dsn=dsn(READ_PORT),
            redis_url=out.redis_url(cache.user, cfg.secrets.redis, redis_endpoint),
            cache_ttl_seconds=cfg.cache_ttl_seconds,
            read_fallback=cfg.read_fallback,
            workers=cfg.api_workers,
            replicas=cfg.api_replicas,
            prefix=site.api,
        ),
        pulumi.ResourceOptions(depends_on=[proxy, cache], providers=[hosts.providers[host]]),
    )
    return _Served(
        host,
        site.haproxy,
        proxy,
        api,
        proxy.api_url,
        f"{address}:{cfg.ports.write}",
        f"{address}:{cfg.ports.read}",
    )


def deploy(cfg: StackConfig) -> None:
    """Declares the spread stack and exports the same outputs as a single-host one, plus
    `placement` and `engines` (and, with several HAProxies, `api_urls` and
    `proxy_endpoints`)."""
    mh = cfg.multihost
    assert mh is not None
    labels = {out.STACK_LABEL: cfg.prefix}
    hosts = Hosts("hosts", HostsArgs(cfg.prefix, cfg.base_image, mh, labels))
    consensus = _consensus(cfg, mh, hosts, labels)
    cluster = _cluster(cfg, mh, hosts, consensus, labels)

    redis_host = mh.placement["redis"]
    redis_address = mh.hosts[redis_host].address
    cache = Cache(
        "redis",
        CacheArgs(
            scope=cfg.scope(hosts.networks[redis_host], labels),
            image=hosts.images[redis_host]["redis"],
            password=cfg.secrets.redis,
            bind_address=redis_address,
            port=cfg.ports.redis,
        ),
        _on(hosts, redis_host),
    )
    served = [
        _proxy_site(cfg, mh, hosts, site, cluster, cache, labels) for site in mh.proxy_sites()
    ]

    first = served[0]
    redis_public = f"{redis_address}:{cfg.ports.redis}"
    export_cluster(cfg, first.api_url, cluster.leader, first.write, first.read)
    if len(served) > 1:
        # Only with several HAProxies, so a one-proxy stack's outputs are as before.
        pulumi.export(out.API_URLS, [s.api_url for s in served])
        pulumi.export(
            out.PROXY_ENDPOINTS,
            {
                s.host: {
                    out.API_URL: s.api_url,
                    out.WRITE_ENDPOINT: s.write,
                    out.READ_ENDPOINT: s.read,
                }
                for s in served
            },
        )
    pulumi.export(out.REDIS_ENDPOINT, redis_public)
    pulumi.export(out.REDIS_URL, out.redis_url(cache.user, cfg.secrets.redis, redis_public))
    containers: dict[str, pulumi.Input[str]] = {**cluster.containers, **consensus.containers}
    # Which host each container is on, and how to reach each host's engine.
    placement = dict(mh.placement)
    for s in served:
        containers[s.haproxy] = s.proxy.container
        placement[s.haproxy] = s.host
        # Redis keeps its place among the containers a one-proxy stack has always listed.
        if s is first:
            containers["redis"] = cache.container
        containers.update(s.api.containers)
        placement.update({i: s.host for i in s.api.containers})
    pulumi.export(out.CONTAINERS, containers)
    pulumi.export(out.NETWORK, cfg.prefix)
    pulumi.export(out.VOLUMES, {**cluster.volumes, **consensus.volumes})
    pulumi.export(out.PLACEMENT, placement)
    pulumi.export(out.ENGINES, {h: mh.hosts[h].url for h in mh.used_hosts()})
