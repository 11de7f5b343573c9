"""`Consensus`: the 3-member etcd cluster Patroni keeps its leader lock in (failoverMode patroni).

Why three members: etcd (Raft) answers only with a majority, so three tolerate one
member down while a leader lock can never be granted twice; with two down Patroni's
failsafe mode keeps the current leader as long as it reaches every PostgreSQL node.
Each member is one container (`pgha-<stack>-etcd-N`) with its own volume, on the
stack network under its alias `etcd-N`. On one host it is not published: only the
PostgreSQL nodes talk to it. Across hosts (pgha:hosts) its client and peer ports are
published on its host's address (docs/multihost.md lists who must reach them). Members
are configured with ETCD_* env only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from infra.containers import ContainerSpec, Scope, Site, declare_with_volume

CLIENT_PORT = 2379
PEER_PORT = 2380
DATA_PATH = "/var/lib/etcd"


def member_names(count: int) -> list[str]:
    return [f"etcd-{i}" for i in range(count)]


def client_hosts(count: int) -> list[str]:
    """host:port of every member, as Patroni's etcd3.hosts wants them."""
    return [f"{m}:{CLIENT_PORT}" for m in member_names(count)]


@dataclass
class MemberSite(Site):
    """A member's `Site`, with the ports its peers and Patroni reach it at."""

    client_port: int
    peer_port: int

    def published(self) -> list[tuple[int, int]]:
        return [(CLIENT_PORT, self.client_port), (PEER_PORT, self.peer_port)]


@dataclass
class ConsensusArgs:
    scope: Scope
    image: pulumi.Input[str]
    retain_data: bool
    members: int = 3
    # member name -> its site; empty: every member on the local engine, by alias.
    sites: Mapping[str, MemberSite] = field(default_factory=dict)


def _urls(member: str, site: MemberSite | None) -> tuple[str, str]:
    """(client URL, peer URL) the member advertises."""
    if site is None:
        return f"http://{member}:{CLIENT_PORT}", f"http://{member}:{PEER_PORT}"
    return f"http://{site.address}:{site.client_port}", f"http://{site.address}:{site.peer_port}"


class Consensus(pulumi.ComponentResource):
    containers: dict[str, pulumi.Output[str]]
    volumes: dict[str, pulumi.Output[str]]
    hosts: list[str]
    members: list[docker.Container]

    def __init__(
        self, name: str, args: ConsensusArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:Consensus", name, None, opts)
        names = member_names(args.members)
        urls = {m: _urls(m, args.sites.get(m)) for m in names}
        initial_cluster = ",".join(f"{m}={urls[m][1]}" for m in names)
        self.hosts = [urls[m][0].removeprefix("http://") for m in names]
        self.containers, self.volumes, self.members = {}, {}, []
        for member in names:
            site = args.sites.get(member)
            spec = ContainerSpec(
                args.scope,
                member,
                "etcd",
                args.image,
                envs={
                    "ETCD_NAME": member,
                    "ETCD_LISTEN_CLIENT_URLS": f"http://0.0.0.0:{CLIENT_PORT}",
                    "ETCD_ADVERTISE_CLIENT_URLS": urls[member][0],
                    "ETCD_LISTEN_PEER_URLS": f"http://0.0.0.0:{PEER_PORT}",
                    "ETCD_INITIAL_ADVERTISE_PEER_URLS": urls[member][1],
                    "ETCD_INITIAL_CLUSTER": initial_cluster,
                    # Only read on a member's first start; afterwards its data dir wins.
                    "ETCD_INITIAL_CLUSTER_STATE": "new",
                    # A member never joins another stack's cluster by mistake.
                    "ETCD_INITIAL_CLUSTER_TOKEN": args.scope.prefix,
                    # Patroni rewrites its keys every loop_wait: without compaction the
                    # revision history would grow until the 2 GiB quota stops all writes.
                    "ETCD_AUTO_COMPACTION_MODE": "periodic",
                    "ETCD_AUTO_COMPACTION_RETENTION": "1h",
                },
                tmpfs={"/tmp": "rw,noexec,nosuid,size=16m"},
                stop_timeout=10,
            )
            if site:
                spec = site.place(spec)
            # No ordering between members: each is healthy only once a majority is up,
            # so they must start together.
            container, volume = declare_with_volume(
                f"{name}-{member}",
                spec,
                DATA_PATH,
                args.retain_data,
                self,
                provider=site.provider if site else None,
            )
            self.members.append(container)
            self.containers[member] = container.name
            self.volumes[member] = volume.name
        self.register_outputs({"containers": self.containers, "volumes": self.volumes})
