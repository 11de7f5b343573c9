"""`Proxy`: HAProxy routing writes to the primary and reads to the replicas, by role,
and HTTP to the API instances.

Its config is rendered from stack config (infra/haproxy_cfg.py) and lists every
node in every backend behind role checks, so a failover leaves this container
untouched: HAProxy follows the roles `ClusterRole` sets within about two
seconds. A change of nodes, readFallback or the stats password is uploaded and
reloaded by `ProxyConfig` (infra/proxy_config.py); only a new image replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.containers import ContainerSpec, Port, Scope, declare_with_volume
from infra.haproxy_cfg import (
    API_PORT,
    READ_PORT,
    STATS_PORT,
    WRITE_PORT,
    ProxyTopology,
    render,
)
from infra.proxy_config import ProxyConfig, ProxyConfigArgs

# The volume that keeps the uploaded config across restarts (images/haproxy).
CONFIG_DIR = "/var/lib/pgha-haproxy"


@dataclass
class ProxyArgs:
    scope: Scope
    image: pulumi.Input[str]
    topology: ProxyTopology
    stats_password: pulumi.Input[str]
    bind_address: str
    write_port: int
    read_port: int
    stats_port: int
    api_port: int
    # pgha:placement with several HAProxies: the ones beside the first are `haproxy-<host>`;
    # every one keeps the alias `haproxy` on its own host's network, where its API finds it.
    member: str = "haproxy"
    # pgha:hosts: the Docker engine URL of its host, for ProxyConfig's `docker exec`.
    engine: str = ""


class Proxy(pulumi.ComponentResource):
    container: pulumi.Output[str]
    host: str = "haproxy"
    api_url: str

    def __init__(
        self, name: str, args: ProxyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:Proxy", name, None, opts)
        config = pulumi.Output.secret(args.stats_password).apply(
            lambda pw: render(args.topology, pw)
        )
        spec = ContainerSpec(
            args.scope,
            args.member,
            "haproxy",
            args.image,
            alias=self.host,
            node_label=False,
            ports=[
                Port(WRITE_PORT, args.write_port, args.bind_address),
                Port(READ_PORT, args.read_port, args.bind_address),
                Port(API_PORT, args.api_port, args.bind_address),
                # The stats page is for the operator on this host only.
                Port(STATS_PORT, args.stats_port, "127.0.0.1"),
            ],
            # The rendered config; the root filesystem is read-only.
            tmpfs={"/run/haproxy": "rw,noexec,nosuid,size=1m"},
            stop_timeout=5,
        )
        # The config is no part of the container: a new one would replace it.
        container, _ = declare_with_volume(name, spec, CONFIG_DIR, False, self)
        self.config = ProxyConfig(
            f"{name}-config",
            ProxyConfigArgs(container.name, container.id, config, args.engine),
            pulumi.ResourceOptions(parent=self, depends_on=[container]),
        )
        self.container = container.name
        # Clients reach the API instances only through this frontend.
        self.api_url = f"http://{args.bind_address}:{args.api_port}"
        self.register_outputs({"container": self.container, "api_url": self.api_url})
