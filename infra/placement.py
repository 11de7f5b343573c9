"""Multi-host placement (`pgha:hosts`, `pgha:placement`): parsed and checked by pure functions.

`infra/config.py` reads the raw config values and hands them to `parse`, which either
returns a `MultiHost` or raises one `ValueError` that lists every problem, so a wrong
placement is refused at `pulumi preview`, before anything is created. Unit-tested in
tests/unit/test_placement.py.

Cross-host traffic goes through ports published on each host's `address` (no overlay
network): every PostgreSQL node publishes its PostgreSQL and Patroni REST ports, every
etcd member its client and peer ports. Published port = base + the node's (member's)
index, so two nodes placed on one host never ask for the same port; `published_ports`
lists them all, and `parse` refuses any address:port asked for twice (the bases can be
moved with `pgha:hostPorts` when they clash with something else on the hosts).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Placement keys besides the node names and etcd members.
SERVICES = ("haproxy", "redis", "api")
ETCD_MEMBERS = 3


def etcd_members(count: int = ETCD_MEMBERS) -> list[str]:
    """The etcd members' logical names (`etcd-0`..), as infra/consensus.py names them."""
    return [f"etcd-{i}" for i in range(count)]


@dataclass(frozen=True)
class Host:
    """One Docker engine: `url` for the provider, `address` for the other hosts."""

    name: str
    url: str
    address: str


@dataclass(frozen=True)
class HostPorts:
    """Bases of the ports published on a host's address for cross-host traffic."""

    postgres: int = 15432
    patroni: int = 18008
    etcd_client: int = 12379
    etcd_peer: int = 12479


@dataclass(frozen=True)
class ServicePorts:
    """The client-facing ports (pgha:apiPort and friends), published where their
    service is placed."""

    api: int
    write: int
    read: int
    redis: int


@dataclass(frozen=True)
class MultiHost:
    hosts: Mapping[str, Host]
    # Every placement key (node, etcd member, haproxy, redis, api) -> host name.
    placement: Mapping[str, str]
    ports: HostPorts
    nodes: Sequence[str]

    def host_of(self, key: str) -> Host:
        return self.hosts[self.placement[key]]

    def node_ports(self, node: str) -> tuple[int, int]:
        """(PostgreSQL, Patroni REST) ports `node` publishes on its host's address."""
        i = list(self.nodes).index(node)
        return self.ports.postgres + i, self.ports.patroni + i

    def etcd_ports(self, member: str) -> tuple[int, int]:
        """(client, peer) ports `member` publishes on its host's address."""
        i = etcd_members().index(member)
        return self.ports.etcd_client + i, self.ports.etcd_peer + i

    def used_hosts(self) -> list[str]:
        """Hosts something is placed on, in the order of `hosts`."""
        wanted = set(self.placement.values())
        return [h for h in self.hosts if h in wanted]

    def peer_addresses(self) -> list[str]:
        """Addresses of every used host: where cross-host clients of a node come from."""
        return sorted({self.hosts[h].address for h in self.used_hosts()})


def published_ports(mh: MultiHost, services: ServicePorts) -> list[tuple[str, int, str]]:
    """(address, port, what) of every port the placement publishes on a host's address."""
    found: list[tuple[str, int, str]] = []
    for node in mh.nodes:
        pg, rest = mh.node_ports(node)
        address = mh.host_of(node).address
        found += [(address, pg, f"{node} postgres"), (address, rest, f"{node} patroni")]
    for member in etcd_members():
        client, peer = mh.etcd_ports(member)
        address = mh.host_of(member).address
        found += [(address, client, f"{member} client"), (address, peer, f"{member} peer")]
    proxy = mh.host_of("haproxy").address
    found += [
        (proxy, services.write, "haproxy writePort"),
        (proxy, services.read, "haproxy readPort"),
        (proxy, services.api, "haproxy apiPort"),
        (mh.host_of("redis").address, services.redis, "redis redisPort"),
    ]
    return found


def _hosts(raw: Any, errors: list[str]) -> dict[str, Host]:
    if not isinstance(raw, Mapping) or not raw:
        errors.append("pgha:hosts must map host names to {url, address}")
        return {}
    hosts: dict[str, Host] = {}
    for name, spec in raw.items():
        if not isinstance(spec, Mapping):
            errors.append(f"pgha:hosts.{name} must be an object with url and address")
            continue
        url, address = spec.get("url"), spec.get("address")
        if not isinstance(url, str) or not url.startswith(("ssh://", "tcp://", "unix://")):
            errors.append(f"pgha:hosts.{name}.url must be an ssh://, tcp:// or unix:// URL")
            continue
        try:
            ipaddress.ip_address(str(address))
        except ValueError:
            errors.append(f"pgha:hosts.{name}.address must be an IP address, not {address!r}")
            continue
        hosts[str(name)] = Host(str(name), url, str(address))
    seen: dict[str, str] = {}
    for host in hosts.values():
        if host.address in seen:
            errors.append(
                f"pgha:hosts {seen[host.address]} and {host.name} share the address {host.address}"
            )
        seen.setdefault(host.address, host.name)
    return hosts


def _host_ports(raw: Any, errors: list[str]) -> HostPorts:
    if raw is None:
        return HostPorts()
    keys = {"postgres": "postgres", "patroni": "patroni", "etcdClient": "etcd_client"}
    keys["etcdPeer"] = "etcd_peer"
    if not isinstance(raw, Mapping) or set(raw) - set(keys):
        errors.append(f"pgha:hostPorts may only set {sorted(keys)}")
        return HostPorts()
    values = {keys[k]: v for k, v in raw.items()}
    if not all(isinstance(v, int) and 1024 <= v <= 65000 for v in values.values()):
        errors.append("pgha:hostPorts values must be port numbers from 1024 to 65000")
        return HostPorts()
    return HostPorts(**values)


def _concentrated(
    placement: Mapping[str, str], keys: Sequence[str], what: str, errors: list[str]
) -> None:
    hosts = {placement[k] for k in keys if k in placement}
    if len(keys) > 1 and len(hosts) == 1:
        errors.append(
            f"pgha:placement puts all {what} on host {hosts.pop()}: losing that one host "
            f"would lose them all; spread them over at least two hosts"
        )


def parse(
    raw_hosts: Any,
    raw_placement: Any,
    raw_host_ports: Any,
    *,
    nodes: Sequence[str],
    failover_mode: str,
    cache_mode: str,
    services: ServicePorts,
) -> MultiHost:
    """`pgha:hosts`, `pgha:placement` and `pgha:hostPorts` checked against the rest of the
    config; raises ValueError naming every problem found."""
    errors: list[str] = []
    if failover_mode != "patroni":
        # Manual mode's ClusterRole fences and promotes by `docker exec` on one engine and
        # has no consensus: across hosts it could not fence a primary it cannot reach.
        errors.append(
            "pgha:hosts needs pgha:failoverMode patroni: manual failover across hosts is "
            "not supported (nothing could fence a primary on a host it cannot reach)"
        )
    if cache_mode != "single":
        errors.append("pgha:hosts supports pgha:cacheMode single only")
    hosts = _hosts(raw_hosts, errors)
    ports = _host_ports(raw_host_ports, errors)
    if not isinstance(raw_placement, Mapping):
        errors.append("pgha:placement must map nodes, etcd members, haproxy, redis, api to hosts")
        raise ValueError("invalid multi-host config:\n  - " + "\n  - ".join(errors))
    placement = {str(k): str(v) for k, v in raw_placement.items()}
    keys = [*nodes, *etcd_members(), *SERVICES]
    missing = [k for k in keys if k not in placement]
    if missing:
        errors.append(f"pgha:placement does not place {missing}")
    unknown_keys = sorted(set(placement) - set(keys))
    if unknown_keys:
        errors.append(f"pgha:placement names {unknown_keys}, which are not part of this stack")
    for key, host in sorted(placement.items()):
        if host not in hosts and (raw_hosts is None or host not in raw_hosts):
            errors.append(f"pgha:placement.{key} names host {host!r}, not one of pgha:hosts")
    _concentrated(placement, nodes, "PostgreSQL nodes", errors)
    _concentrated(placement, etcd_members(), "etcd members", errors)
    if placement.get("api") != placement.get("haproxy"):
        # HAProxy finds the API instances by their alias on its own host's network.
        errors.append("pgha:placement.api must name the same host as pgha:placement.haproxy")
    if not errors:
        mh = MultiHost(hosts=hosts, placement=placement, ports=ports, nodes=list(nodes))
        owners: dict[tuple[str, int], str] = {}
        for address, port, what in published_ports(mh, services):
            if (address, port) in owners:
                errors.append(
                    f"port {port} on {address} is published twice: by {owners[address, port]} "
                    f"and by {what} (move one, e.g. with pgha:hostPorts)"
                )
            owners.setdefault((address, port), what)
    if errors:
        raise ValueError("invalid multi-host config:\n  - " + "\n  - ".join(errors))
    return mh
