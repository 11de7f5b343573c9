"""What both wirings (infra/single_host.py, infra/multihost.py) declare the same way.

The PostgreSQL nodes' args, whichever host their first node is on, and the outputs every
stack exports; the wirings export the cache's and the containers' outputs themselves,
since those differ by mode.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from infra import outputs as out
from infra.config import StackConfig
from infra.containers import Scope
from infra.postgres import PostgresClusterArgs
from infra.restore import RestoreNode


def cluster_args(
    cfg: StackConfig,
    scope: Scope,
    image: pulumi.Input[str],
    network_cidr: pulumi.Input[str],
    network_gateway: pulumi.Input[str],
    node_env: Mapping[str, Mapping[str, pulumi.Input[str]]] | None = None,
    restore: RestoreNode | None = None,
) -> PostgresClusterArgs:
    """The nodes' args; both failover modes run the same nodes from the same secrets."""
    return PostgresClusterArgs(
        scope=scope,
        image=image,
        network_cidr=network_cidr,
        network_gateway=network_gateway,
        nodes=cfg.nodes,
        primary=cfg.primary,
        synchronous=cfg.synchronous,
        app_password=cfg.secrets.postgres,
        replication_password=cfg.secrets.replication,
        retain_data=cfg.retain_data,
        node_env=node_env or {},
        restore=restore,
    )


def export_cluster(
    cfg: StackConfig,
    api_url: pulumi.Input[str],
    leader: pulumi.Input[str],
    write: str,
    read: str,
) -> None:
    """`write` and `read`: the `host:port` clients use for HAProxy's write and read ports."""
    pulumi.export(out.API_URL, api_url)
    pulumi.export(out.WRITE_ENDPOINT, write)
    pulumi.export(out.READ_ENDPOINT, read)
    # The stats page binds 127.0.0.1 on HAProxy's host: from another machine, ssh -L.
    pulumi.export(out.HAPROXY_STATS_URL, f"http://127.0.0.1:{cfg.ports.stats}/")
    pulumi.export(out.PRIMARY, cfg.primary)
    pulumi.export(out.LEADER, leader)
    pulumi.export(out.FAILOVER_MODE, cfg.failover_mode)
    pulumi.export(out.REPLICAS, cfg.replicas)
    pulumi.export(out.SYNCHRONOUS, cfg.synchronous)
    pulumi.export(out.READ_FALLBACK, cfg.read_fallback)
    pulumi.export(out.WRITE_DSN, out.postgres_dsn(cfg.secrets.postgres, write))
    pulumi.export(out.READ_DSN, out.postgres_dsn(cfg.secrets.postgres, read))
