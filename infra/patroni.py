"""`PatroniCluster`: the PostgreSQL nodes in failoverMode patroni, and their preferred leader.

The same image, volumes and hardening as `PostgresCluster`, but each container runs
Patroni (PGHA_MODE=patroni), which elects the leader through the `Consensus` etcd
cluster, fails over on its own, and serves /primary and /replica on :8008 for
HAProxy. `pgha:primary` only names the preferred leader: it bootstraps the cluster
(its container is created first) and a change of it is a switchover (`PreferredLeader`).

Passwords reach Patroni as PATRONI_* env. The REST API's password reuses the
replication password rather than a new stack secret: the holders of an unsafe-endpoint
password are Patroni's own peers (the leader calls POST /failsafe on every member), so
it must live in every node container, exactly where the replication password already
lives and nowhere else. A separate secret would be held by the same containers and
give no isolation; its rotation would just be a second step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from infra.backup_cfg import RUN_DIR
from infra.containers import ContainerSpec, Site, declare_with_volume
from infra.leader import PreferredLeader, PreferredLeaderArgs
from infra.membership import Membership, MembershipArgs
from infra.patroni_cfg import DATA_ROOT, PG_PORT, REST_PORT, SECRET_ENV, PatroniNode, render
from infra.postgres import PostgresClusterArgs
from infra.restore import RESTORE_WAIT_S


@dataclass
class NodeSite(Site):
    """A node's `Site`: its engine's `url` for PreferredLeader's calls, its host network's
    CIDR, and the ports the other hosts reach PostgreSQL and Patroni's REST API at."""

    url: str
    network_cidr: pulumi.Input[str]
    pg_port: int
    rest_port: int
    # Every used host's address: cross-host clients arrive from their host's address.
    peers: tuple[str, ...]

    def published(self) -> list[tuple[int, int]]:
        return [(PG_PORT, self.pg_port), (REST_PORT, self.rest_port)]


@dataclass
class PatroniClusterArgs(PostgresClusterArgs):
    """`PostgresClusterArgs`, plus where the consensus store is."""

    etcd_hosts: list[str]
    # The etcd members: nodes start once they are healthy.
    consensus: list[docker.Container]
    synchronous_strict: bool = False
    # node -> its site; empty: every node on the local engine, reached by its alias.
    sites: Mapping[str, NodeSite] = field(default_factory=dict)


def node_config(args: PatroniClusterArgs, node: str, network: list[object]) -> str:
    """`node`'s Patroni config, once the network's CIDR and gateway are known."""
    spec = PatroniNode(
        scope=args.scope.prefix,
        name=node,
        etcd_hosts=args.etcd_hosts,
        network_cidr=str(network[0]),
        network_gateway=str(network[1]),
        archive=bool(args.node_env),
        restore_target=args.restore.target if args.restore and args.restore.node == node else "",
    )
    site = args.sites.get(node)
    if site is not None:
        # No gateway rule across hosts (it is ""): a client on the node's own host that
        # dials the host's address arrives through Docker's proxy, from the gateway.
        spec = dataclasses.replace(
            spec,
            connect_host=site.address,
            pg_port=site.pg_port,
            rest_port=site.rest_port,
            peer_cidrs=tuple(f"{a}/32" for a in site.peers),
        )
    return render(spec)


class PatroniCluster(pulumi.ComponentResource):
    containers: dict[str, pulumi.Output[str]]
    volumes: dict[str, pulumi.Output[str]]
    leader: pulumi.Output[str]

    def __init__(
        self, name: str, args: PatroniClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:PatroniCluster", name, None, opts)
        self.containers, self.volumes = {}, {}
        self.ids: dict[str, pulumi.Output[str]] = {}
        network = pulumi.Output.all(args.network_cidr, args.network_gateway)
        previous: docker.Container | None = None
        # The preferred leader first: alone, it wins the bootstrap race, so the cluster
        # starts with the leader the config asks for (no switchover on create).
        ordered = [args.primary] + [n for n in args.nodes if n != args.primary]
        for node in ordered:
            restoring = args.restore if args.restore and args.restore.node == node else None
            site = args.sites.get(node)
            # A spread node's own host network (each host has one of its own).
            net = pulumi.Output.all(site.network_cidr, "") if site else network
            config = net.apply(functools.partial(node_config, args, node))
            spec = ContainerSpec(
                args.scope,
                node,
                "postgres",
                args.image,
                envs={
                    "PGHA_MODE": "patroni",
                    "PGHA_NODE": node,
                    "PGHA_PATRONI_CFG": config,
                    "PGHA_APP_PASSWORD": args.app_password,
                    **{key: args.replication_password for key in SECRET_ENV},
                    **args.node_env.get(node, {}),
                    **(restoring.env if restoring else {}),
                },
                volumes=[restoring.source] if restoring else [],
                # Sockets, the rendered configs and Patroni's pgpass; data is on the volume.
                tmpfs={
                    "/var/run/postgresql": "rw,nosuid,nodev,size=1m",
                    "/run/patroni": "rw,noexec,nosuid,size=1m",
                    "/tmp": "rw,noexec,nosuid,size=16m",
                    **({RUN_DIR: "rw,noexec,nosuid,size=1m"} if args.node_env else {}),
                },
                # Cut off from the network, a node's name lookups go unanswered, and with
                # glibc's default (5 s, 2 tries) each one stalls Patroni's HA loop: a
                # partitioned leader then stayed writable ~20 s, far beyond the ttl in
                # which it must demote. One 1 s try bounds each stall.
                dns_opts=["timeout:1", "attempts:1"],
                # Patroni's clean stop: PostgreSQL's fast shutdown, then the lock is freed.
                stop_timeout=60,
                # A replica clones the leader before it reports healthy.
                wait_timeout=RESTORE_WAIT_S if restoring else 300,
            )
            if site:
                spec = site.place(spec)
            # One node after the other, on create and on replace: each new container is
            # healthy before the next old one stops, so a change that touches every node
            # (a new image) never has two of them down together.
            # On removal the container goes first, then Membership waits until Patroni
            # forgot the member and dropped its slot.
            member = Membership(
                f"{name}-{node}-member",
                MembershipArgs(
                    node=node,
                    container=spec.name,
                    mode="patroni",
                    stack=args.scope.prefix,
                    default_upstream=args.primary,
                    engine=site.url if site else "",
                ),
                pulumi.ResourceOptions(parent=self),
            )
            after = [member, *([previous] if previous else list(args.consensus))]
            container, volume = declare_with_volume(
                f"{name}-{node}",
                spec,
                DATA_ROOT,
                args.retain_data,
                self,
                after,
                site.provider if site else None,
            )
            previous = container
            self.containers[node] = container.name
            self.volumes[node] = volume.name
            self.ids[node] = container.id
        self.role = PreferredLeader(
            f"{name}-leader",
            PreferredLeaderArgs(
                preferred=args.primary,
                containers={n: self.containers[n] for n in args.nodes},
                synchronous=args.synchronous,
                synchronous_strict=args.synchronous_strict,
                engines={n: s.url for n, s in args.sites.items()},
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.leader = self.role.leader
        self.register_outputs(
            {"containers": self.containers, "volumes": self.volumes, "leader": self.leader}
        )
