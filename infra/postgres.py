"""`PostgresCluster`: one volume and one container per node, plus their roles.

Every node runs the same image; the first node bootstraps the cluster and the
others clone from it with pg_basebackup over a replication slot. Which node is
primary afterwards is owned by `ClusterRole` (infra/failover.py), so changing
`pgha:primary` never recreates a container or touches a volume. Nothing in a node's
container depends on the other nodes: the membership (slots, synchronous standbys) is
written into the nodes by `ClusterRole`, so adding or removing a node touches no other
node's container; `Membership` drops a removed node's slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from infra.backup_cfg import RUN_DIR
from infra.containers import ContainerSpec, Scope, declare_with_volume
from infra.failover import DATA_ROOT, ClusterRole, ClusterRoleArgs
from infra.membership import Membership, MembershipArgs
from infra.restore import RESTORE_WAIT_S, RestoreNode


@dataclass
class PostgresClusterArgs:
    scope: Scope
    image: pulumi.Input[str]
    network_cidr: pulumi.Input[str]
    network_gateway: pulumi.Input[str]
    nodes: list[str]
    primary: str
    synchronous: bool
    app_password: pulumi.Input[str]
    replication_password: pulumi.Input[str]
    retain_data: bool
    # node -> extra env (pgha:backup: its pgBackRest config, certificate and archiving).
    node_env: Mapping[str, Mapping[str, pulumi.Input[str]]] = field(
        default_factory=dict, kw_only=True
    )
    # pgha:restoreFrom: the node that bootstraps from the source repository (infra/restore.py).
    restore: RestoreNode | None = field(default=None, kw_only=True)


class PostgresCluster(pulumi.ComponentResource):
    containers: dict[str, pulumi.Output[str]]
    volumes: dict[str, pulumi.Output[str]]
    roles: pulumi.Output[dict[str, str]]
    leader: pulumi.Output[str]

    def __init__(
        self, name: str, args: PostgresClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:PostgresCluster", name, None, opts)
        bootstrap = args.nodes[0]
        self.containers, self.volumes = {}, {}
        ids: dict[str, pulumi.Output[str]] = {}
        first: docker.Container | None = None
        for node in args.nodes:
            restoring = args.restore if args.restore and args.restore.node == node else None
            spec = ContainerSpec(
                args.scope,
                node,
                "postgres",
                args.image,
                envs={
                    "PGHA_NODE": node,
                    "PGHA_ALLOWED_CIDR": args.network_cidr,
                    "PGHA_HOST_GATEWAY": args.network_gateway,
                    "PGHA_APP_PASSWORD": args.app_password,
                    "PGHA_REPLICATION_PASSWORD": args.replication_password,
                    **args.node_env.get(node, {}),
                    **(restoring.env if restoring else {}),
                },
                volumes=[restoring.source] if restoring else [],
                # The socket and lock files, and pgBackRest's config and PEMs; the data
                # lives on the volume.
                tmpfs={
                    "/var/run/postgresql": "rw,nosuid,nodev,size=1m",
                    "/tmp": "rw,noexec,nosuid,size=16m",
                    **({RUN_DIR: "rw,noexec,nosuid,size=1m"} if args.node_env else {}),
                },
                # A fast shutdown streams the last WAL to the replicas first.
                stop_timeout=60,
                # A replica clones the primary before it reports healthy; a restoring node
                # reports healthy once recovery reached its target.
                wait_timeout=RESTORE_WAIT_S if restoring else 300,
            )
            member = Membership(
                f"{name}-{node}-member",
                MembershipArgs(
                    node=node,
                    container=spec.name,
                    mode="manual",
                    stack=args.scope.prefix,
                    default_upstream=bootstrap,
                ),
                pulumi.ResourceOptions(parent=self),
            )
            # A node joining a running stack clones from its primary of the day (recorded
            # once, so it never changes this container again).
            spec.envs = {**spec.envs, "PGHA_BOOTSTRAP_PRIMARY": member.clone_from}
            # Replicas clone from the bootstrap node, so it is created first. The member
            # first too: on removal the container goes before its slot is dropped.
            container, volume = declare_with_volume(
                f"{name}-{node}",
                spec,
                DATA_ROOT,
                args.retain_data,
                self,
                [member, *([first] if first else [])],
            )
            first = first or container
            self.containers[node] = container.name
            self.volumes[node] = volume.name
            ids[node] = container.id
        self.role = ClusterRole(
            f"{name}-role",
            ClusterRoleArgs(
                primary=args.primary,
                containers=self.containers,
                container_ids=ids,
                synchronous=args.synchronous,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.roles = self.role.roles
        self.ids = ids
        # The node ClusterRole found primary at its last run, as patroni mode's `leader`.
        self.leader = self.roles.apply(
            lambda roles: next((n for n, r in (roles or {}).items() if r == "primary"), "")
        )
        self.register_outputs({"containers": self.containers, "roles": self.roles})
