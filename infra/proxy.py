"""`WriteProxy`: HAProxy routing writes to the primary and reads to the replicas.

The config is rendered from stack config and uploaded into the container. A
change (failover, readFallback) uploads the new file and reloads HAProxy in
place with SIGUSR2, after `ClusterRole` has promoted the new primary; old
workers are cut after `hard-stop-after`, and the API's pools reconnect.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from dockerres import (
    Container,
    ContainerArgs,
    ContainerNetworksAdvancedArgs,
    ContainerPortArgs,
    ContainerUploadArgs,
)
from haproxy_cfg import READ_PORT, STATS_PORT, WRITE_PORT, ProxyTopology, render


@dataclass
class WriteProxyArgs:
    prefix: str
    image: pulumi.Input[str]
    network: pulumi.Input[str]
    topology: ProxyTopology
    stats_password: pulumi.Input[str]
    bind_address: str
    write_port: int
    read_port: int
    stats_port: int
    labels: dict[str, str]


class WriteProxy(pulumi.ComponentResource):
    container: pulumi.Output[str]
    host: str = "haproxy"

    def __init__(
        self, name: str, args: WriteProxyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:WriteProxy", name, None, opts)
        config = pulumi.Output.secret(args.stats_password).apply(
            lambda pw: render(args.topology, pw)
        )
        container = Container(
            name,
            ContainerArgs(
                name=f"{args.prefix}-haproxy",
                image=args.image,
                networks_advanced=[
                    ContainerNetworksAdvancedArgs(name=args.network, aliases=[self.host])
                ],
                ports=[
                    ContainerPortArgs(WRITE_PORT, args.write_port, args.bind_address),
                    ContainerPortArgs(READ_PORT, args.read_port, args.bind_address),
                    # The stats page is for the operator on this host only.
                    ContainerPortArgs(STATS_PORT, args.stats_port, "127.0.0.1"),
                ],
                uploads=[
                    ContainerUploadArgs(file="/usr/local/etc/haproxy/haproxy.cfg", content=config)
                ],
                labels={**args.labels, "pgha.role": "haproxy"},
                # A new config (failover, readFallback) is a reload, not a new
                # container: the master re-reads it and starts fresh workers.
                reload_signal="SIGUSR2",
                stop_timeout=5,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.container = container.name
        self.register_outputs({"container": self.container})
