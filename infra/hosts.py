"""`Hosts`: one Docker engine per host of `pgha:hosts`, with the stack's network and images there.

Each used host gets its own `docker.Provider` (its `url`: ssh://, tcp:// with TLS, or a
unix socket), its own bridge network named like the single-host one (`pgha-<stack>`),
and the images of exactly the roles placed on it, built there from the base image,
which must already be on that host (`docker save ... | docker -H <host> load` where it
cannot pull; scripts/hosts.sh does so for the test bed). Containers on one host reach
each other by alias on that network; everything across hosts goes through ports
published on the hosts' addresses (infra/placement.py), never an overlay network.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from infra.containers import Site
from infra.images import Images, ImagesArgs
from infra.placement import MultiHost, etcd_members


@dataclass
class HostsArgs:
    prefix: str
    base_image: str
    multihost: MultiHost
    labels: dict[str, str]


def roles_on(mh: MultiHost, host: str) -> frozenset[str]:
    """The image roles a host runs, from what is placed on it."""
    roles = set()
    for key, where in mh.placement.items():
        if where != host:
            continue
        if key in mh.nodes:
            roles.add("postgres")
        elif key in etcd_members():
            roles.add("etcd")
        else:
            roles.add(key)
    if host in mh.proxy_hosts:
        roles |= {"haproxy", "api"}
    return frozenset(roles)


class Hosts(pulumi.ComponentResource):
    providers: dict[str, docker.Provider]
    # host -> the stack network's name and subnet on that host.
    networks: dict[str, pulumi.Output[str]]
    subnets: dict[str, pulumi.Output[str]]
    # host -> role -> built image id on that host.
    images: dict[str, dict[str, pulumi.Output[str]]]

    def __init__(
        self, name: str, args: HostsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:Hosts", name, None, opts)
        self.providers, self.networks, self.subnets, self.images = {}, {}, {}, {}
        mh = args.multihost
        for host in mh.used_hosts():
            provider = docker.Provider(
                f"{name}-{host}",
                docker.ProviderArgs(host=mh.hosts[host].url),
                pulumi.ResourceOptions(parent=self),
            )
            on_host = pulumi.ResourceOptions(parent=self, provider=provider)
            network = docker.Network(
                f"{name}-{host}-network",
                docker.NetworkArgs(
                    name=args.prefix,
                    driver="bridge",
                    labels=[
                        docker.NetworkLabelArgs(label=k, value=v) for k, v in args.labels.items()
                    ],
                ),
                on_host,
            )
            images = Images(
                f"{name}-{host}-images",
                ImagesArgs(prefix=args.prefix, base_image=args.base_image, only=roles_on(mh, host)),
                pulumi.ResourceOptions(parent=self, providers=[provider]),
            )
            self.providers[host] = provider
            self.networks[host] = network.name
            self.subnets[host] = network.ipam_configs.apply(lambda c: c[0].subnet or "")
            self.images[host] = images.ids
        self._addresses = {h: mh.hosts[h].address for h in mh.used_hosts()}
        self.register_outputs({"networks": self.networks})

    def site(self, host: str, role: str) -> Site:
        """Where a `role` member placed on `host` runs: that host's engine, network, image
        of the role, and address."""
        return Site(
            provider=self.providers[host],
            network=self.networks[host],
            image=self.images[host][role],
            address=self._addresses[host],
        )
