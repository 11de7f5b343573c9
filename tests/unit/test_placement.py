"""`infra.placement.parse`: multi-host placements that are refused at preview, and why."""

from __future__ import annotations

from typing import Any

import pytest

from infra.placement import HostPorts, ServicePorts, parse, published_ports

NODES = ["pg-0", "pg-1", "pg-2"]
SERVICES = ServicePorts(api=8000, write=5432, read=5433, redis=6379)
HOSTS = {
    f"h{i}": {"url": f"tcp://127.0.0.1:2375{i}", "address": f"172.31.240.1{i}"} for i in (1, 2, 3)
}
# pg-N and etcd-N on host N+1; the services on h1: the test bed's layout.
SPREAD = {
    **{f"pg-{i}": f"h{i + 1}" for i in range(3)},
    **{f"etcd-{i}": f"h{i + 1}" for i in range(3)},
    "haproxy": "h1",
    "redis": "h1",
    "api": "h1",
}


def run(
    hosts: Any = None,
    placement: Any = None,
    host_ports: Any = None,
    failover_mode: str = "patroni",
    cache_mode: str = "single",
) -> Any:
    return parse(
        HOSTS if hosts is None else hosts,
        SPREAD if placement is None else placement,
        host_ports,
        nodes=NODES,
        failover_mode=failover_mode,
        cache_mode=cache_mode,
        services=SERVICES,
    )


def refused(**kwargs: Any) -> str:
    with pytest.raises(ValueError) as err:
        run(**kwargs)
    return str(err.value)


def test_a_spread_placement_puts_each_node_on_its_host_with_its_own_ports() -> None:
    mh = run()
    assert mh.host_of("pg-1").address == "172.31.240.12"
    assert mh.node_ports("pg-2") == (15434, 18010)
    assert mh.etcd_ports("etcd-1") == (12380, 12480)
    assert mh.used_hosts() == ["h1", "h2", "h3"]
    assert mh.peer_addresses() == ["172.31.240.11", "172.31.240.12", "172.31.240.13"]


def test_manual_failover_across_hosts_is_refused() -> None:
    assert "failoverMode patroni" in refused(failover_mode="manual")


def test_sentinel_cache_across_hosts_is_refused() -> None:
    assert "cacheMode single" in refused(cache_mode="sentinel")


def test_all_nodes_on_one_host_is_refused() -> None:
    message = refused(placement={**SPREAD, "pg-1": "h1", "pg-2": "h1"})
    assert "all PostgreSQL nodes on host h1" in message


def test_all_etcd_members_on_one_host_is_refused() -> None:
    message = refused(placement={**SPREAD, "etcd-0": "h2", "etcd-2": "h2"})
    assert "all etcd members on host h2" in message


def test_an_unknown_host_name_is_refused() -> None:
    assert "pgha:placement.redis names host 'h9'" in refused(placement={**SPREAD, "redis": "h9"})


def test_an_unplaced_node_and_an_unknown_key_are_refused() -> None:
    placement = {k: v for k, v in SPREAD.items() if k != "pg-2"} | {"pg-7": "h1"}
    message = refused(placement=placement)
    assert "does not place ['pg-2']" in message
    assert "['pg-7']" in message


def test_a_port_published_twice_on_one_address_is_refused() -> None:
    # pg-0's PostgreSQL port on h1 moved onto HAProxy's writePort there.
    message = refused(host_ports={"postgres": 5432})
    assert "port 5432 on 172.31.240.11 is published twice" in message


def test_two_nodes_on_one_host_get_different_ports() -> None:
    mh = run(placement={**SPREAD, "pg-2": "h2"})
    ports = [(a, p) for a, p, _ in published_ports(mh, SERVICES)]
    assert len(ports) == len(set(ports))


def test_two_hosts_with_one_address_are_refused() -> None:
    hosts = {**HOSTS, "h3": {**HOSTS["h3"], "address": "172.31.240.11"}}
    assert "share the address 172.31.240.11" in refused(hosts=hosts)


def test_a_host_without_a_docker_url_is_refused() -> None:
    hosts = {**HOSTS, "h2": {"url": "http://h2", "address": "172.31.240.12"}}
    assert "pgha:hosts.h2.url" in refused(hosts=hosts)


def test_the_api_away_from_haproxy_is_refused() -> None:
    assert "pgha:placement.api" in refused(placement={**SPREAD, "api": "h2"})


def test_every_problem_is_named_at_once() -> None:
    message = refused(failover_mode="manual", placement={**SPREAD, "redis": "h9"})
    assert "failoverMode patroni" in message and "'h9'" in message


def test_host_ports_move_the_bases() -> None:
    mh = run(host_ports={"postgres": 25432, "etcdPeer": 22480})
    assert mh.ports == HostPorts(postgres=25432, etcd_peer=22480)
    assert mh.node_ports("pg-0") == (25432, 18008)


# HAProxy and the API on h1 and h2 (Redis stays on h1): one HAProxy per listed host.
TWO_PROXIES = {**SPREAD, "haproxy": ["h1", "h2"], "api": ["h1", "h2"]}


def test_one_host_in_a_list_is_the_same_as_its_name() -> None:
    listed = run(placement={**SPREAD, "haproxy": ["h1"], "api": ["h1"]})
    assert listed == run()
    assert [(s.host, s.haproxy, s.api) for s in listed.proxy_sites()] == [("h1", "haproxy", "api")]


def test_two_proxy_hosts_get_one_haproxy_each_the_first_named_as_on_one_host() -> None:
    mh = run(placement=TWO_PROXIES)
    assert [(s.host, s.haproxy, s.api) for s in mh.proxy_sites()] == [
        ("h1", "haproxy", "api"),
        ("h2", "haproxy-h2", "api-h2"),
    ]
    assert mh.placement["haproxy"] == mh.placement["api"] == "h1"


def test_each_proxy_host_publishes_the_client_ports_on_its_own_address() -> None:
    mh = run(placement=TWO_PROXIES)
    found = {(a, p): what for a, p, what in published_ports(mh, SERVICES)}
    assert found["172.31.240.11", 8000] == "haproxy apiPort"
    assert found["172.31.240.12", 8000] == "haproxy-h2 apiPort"
    assert found["172.31.240.12", 5432] == "haproxy-h2 writePort"


def test_a_host_with_only_a_proxy_is_used_and_its_address_admitted() -> None:
    hosts = {**HOSTS, "edge": {"url": "ssh://edge", "address": "10.9.0.1"}}
    mh = run(hosts=hosts, placement={**SPREAD, "haproxy": ["h1", "edge"], "api": ["h1", "edge"]})
    assert mh.used_hosts() == ["h1", "h2", "h3", "edge"]
    assert "10.9.0.1" in mh.peer_addresses()


def test_the_api_on_other_hosts_than_the_haproxies_is_refused() -> None:
    message = refused(placement={**TWO_PROXIES, "api": ["h1", "h3"]})
    assert "pgha:placement.api must list the same hosts as pgha:placement.haproxy" in message
    assert "pgha:placement.api must list" in refused(placement={**TWO_PROXIES, "api": "h1"})


def test_the_api_listed_in_another_order_is_placed_with_the_first_haproxy() -> None:
    mh = run(placement={**TWO_PROXIES, "api": ["h2", "h1"]})
    assert mh.placement["api"] == "h1"


def test_a_proxy_host_listed_twice_or_unknown_or_an_empty_list_is_refused() -> None:
    twice = refused(placement={**TWO_PROXIES, "haproxy": ["h1", "h1"], "api": ["h1", "h1"]})
    assert "pgha:placement.haproxy lists a host twice" in twice
    unknown = refused(placement={**TWO_PROXIES, "haproxy": ["h1", "h9"], "api": ["h1", "h9"]})
    assert "pgha:placement.haproxy names host 'h9'" in unknown
    empty = refused(placement={**SPREAD, "haproxy": [], "api": []})
    assert "pgha:placement.haproxy must be a host name or a list of host names" in empty


def test_a_second_proxy_host_whose_name_cannot_name_a_container_is_refused() -> None:
    hosts = {**HOSTS, "Edge 1": {"url": "ssh://edge", "address": "10.9.0.1"}}
    placement = {**SPREAD, "haproxy": ["h1", "Edge 1"], "api": ["h1", "Edge 1"]}
    assert "a second HAProxy's host must be named" in refused(hosts=hosts, placement=placement)


def test_a_second_proxy_on_redis_port_of_its_host_is_refused() -> None:
    # Redis on h2 and HAProxy's writePort moved onto redisPort: both on 172.31.240.12.
    services = ServicePorts(api=8000, write=6379, read=5433, redis=6379)
    with pytest.raises(ValueError) as err:
        parse(
            HOSTS,
            {**TWO_PROXIES, "redis": "h2"},
            None,
            nodes=NODES,
            failover_mode="patroni",
            cache_mode="single",
            services=services,
        )
    assert "port 6379 on 172.31.240.12 is published twice" in str(err.value)
