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

`haproxy` and `api` may each name one host or a list of hosts (the same ones): every
listed host gets its own HAProxy with its own API instances behind it (`ProxySite`).
The first keeps the names a one-host placement has always had (`haproxy`, `api-N`), so
such a stack declares exactly what it did before lists were allowed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Placement keys besides the node names and etcd members.
SERVICES = ("haproxy", "redis", "api")
ETCD_MEMBERS = 3
# Placement keys that may list several hosts: one HAProxy and its API instances on each.
PROXY_KEYS = ("haproxy", "api")
# A host that gets a second HAProxy lends its name to container names and network aliases.
CONTAINER_NAME_PART = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")


def etcd_members(count: int = ETCD_MEMBERS) -> list[str]:
    """The etcd members' logical names (`etcd-0`..), as infra/etcd.py names them."""
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
class ProxySite:
    """One host's HAProxy and the API instances behind it, by their logical names."""

    host: str
    # The HAProxy's name: `haproxy` on the first host, `haproxy-<host>` on the others.
    haproxy: str
    # Its API instances are `<api>-1` .. `<api>-N`: `api-N` on the first host, as before.
    api: str


@dataclass(frozen=True)
class MultiHost:
    hosts: Mapping[str, Host]
    # Every placement key (node, etcd member, haproxy, redis, api) -> host name; for
    # `haproxy` and `api`, the first of `proxy_hosts`.
    placement: Mapping[str, str]
    ports: HostPorts
    nodes: Sequence[str]
    # Every host with an HAProxy and API instances, in the order pgha:placement lists them;
    # empty means the one host `placement["haproxy"]` names.
    proxy_hosts: Sequence[str] = ()

    def proxy_sites(self) -> list[ProxySite]:
        """Each HAProxy with its API instances; the first one is named as on one host."""
        hosts = list(self.proxy_hosts) or [self.placement["haproxy"]]
        sites = [ProxySite(hosts[0], "haproxy", "api")]
        return sites + [ProxySite(h, f"haproxy-{h}", f"api-{h}") for h in hosts[1:]]

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
        wanted = set(self.placement.values()) | set(self.proxy_hosts)
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
    for site in mh.proxy_sites():
        proxy = mh.hosts[site.host].address
        found += [
            (proxy, services.write, f"{site.haproxy} writePort"),
            (proxy, services.read, f"{site.haproxy} readPort"),
            (proxy, services.api, f"{site.haproxy} apiPort"),
        ]
    found.append((mh.host_of("redis").address, services.redis, "redis redisPort"))
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


def _proxy_hosts(raw: Mapping[str, Any], errors: list[str]) -> dict[str, list[str]]:
    """`haproxy` and `api` as lists of host names (one name is a list of one)."""
    found: dict[str, list[str]] = {}
    for key in PROXY_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        listed = [value] if isinstance(value, str) else value
        if (
            not isinstance(listed, Sequence)
            or not listed
            or not all(isinstance(h, str) for h in listed)
        ):
            errors.append(f"pgha:placement.{key} must be a host name or a list of host names")
            continue
        if len(set(listed)) != len(listed):
            errors.append(f"pgha:placement.{key} lists a host twice: {list(listed)}")
        found[key] = list(listed)
    haproxy, api = found.get("haproxy"), found.get("api")
    if haproxy is not None and api is not None and set(haproxy) != set(api):
        # Each HAProxy finds its API instances by their alias on its own host's network,
        # and each API instance reaches the database through the HAProxy beside it.
        errors.append(
            f"pgha:placement.api must list the same hosts as pgha:placement.haproxy "
            f"(each HAProxy serves the API instances on its own host): api {api}, "
            f"haproxy {haproxy}"
        )
    for host in (haproxy or [])[1:]:
        if not CONTAINER_NAME_PART.match(host):
            errors.append(
                f"pgha:placement.haproxy lists host {host!r}: a second HAProxy's host must be "
                f"named with lowercase letters, digits, '.', '_' or '-' (it names containers)"
            )
    return found


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
    proxies = _proxy_hosts(raw_placement, errors)
    placement = {str(k): str(v) for k, v in raw_placement.items() if str(k) not in PROXY_KEYS}
    proxy_hosts = proxies.get("haproxy", [])
    for key, listed in proxies.items():
        # The first HAProxy's host is where `api` counts as placed, whatever api's order.
        placement[key] = proxy_hosts[0] if proxy_hosts else listed[0]
    keys = [*nodes, *etcd_members(), *SERVICES]
    missing = [k for k in keys if k not in placement]
    if missing:
        errors.append(f"pgha:placement does not place {missing}")
    unknown_keys = sorted(set(placement) - set(keys))
    if unknown_keys:
        errors.append(f"pgha:placement names {unknown_keys}, which are not part of this stack")
    named = [*placement.items(), *((k, h) for k, hs in proxies.items() for h in hs[1:])]
    for key, host in sorted(set(named)):
        if host not in hosts and (raw_hosts is None or host not in raw_hosts):
            errors.append(f"pgha:placement.{key} names host {host!r}, not one of pgha:hosts")
    _concentrated(placement, nodes, "PostgreSQL nodes", errors)
    _concentrated(placement, etcd_members(), "etcd members", errors)
    if not errors:
        mh = MultiHost(
            hosts=hosts,
            placement=placement,
            ports=ports,
            nodes=list(nodes),
            # A single host keeps the field empty, so a one-proxy MultiHost is as before.
            proxy_hosts=tuple(proxy_hosts) if len(proxy_hosts) > 1 else (),
        )
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
