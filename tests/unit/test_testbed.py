"""The multi-host test bed's pure parts: what `hosts.sh` prints, and which images a host builds."""

from __future__ import annotations

from infra.hosts import roles_on
from infra.placement import MultiHost, parse
from infra.placement import ServicePorts as Services
from pgha_testkit.hosts import hosts_config
from pgha_testkit.hosts import parse as parse_hosts

OUTPUT = """hosts: pgha-host-1 tcp://127.0.0.1:23751 172.31.240.11 storage=overlay2
pgha-host-1 tcp://127.0.0.1:23751 172.31.240.11
pgha-host-2 tcp://127.0.0.1:23752 172.31.240.12
"""


def test_the_script_output_gives_one_host_per_line_named_without_the_prefix() -> None:
    bed = parse_hosts(OUTPUT)
    assert [(h.name, h.url, h.address) for h in bed] == [
        ("host-1", "tcp://127.0.0.1:23751", "172.31.240.11"),
        ("host-2", "tcp://127.0.0.1:23752", "172.31.240.12"),
    ]
    assert hosts_config(bed)["host-2"] == {
        "url": "tcp://127.0.0.1:23752",
        "address": "172.31.240.12",
    }


def spread() -> MultiHost:
    hosts = {f"h{i}": {"url": f"tcp://127.0.0.1:{i}", "address": f"10.0.0.{i}"} for i in (1, 2)}
    placement = {"pg-0": "h1", "pg-1": "h2", "etcd-0": "h1", "etcd-1": "h2", "etcd-2": "h2"}
    placement |= {"haproxy": "h1", "redis": "h2", "api": "h1"}
    return parse(
        hosts,
        placement,
        None,
        nodes=["pg-0", "pg-1"],
        failover_mode="patroni",
        cache_mode="single",
        services=Services(api=8000, write=5432, read=5433, redis=6379),
    )


def test_each_host_builds_only_the_images_of_what_is_placed_on_it() -> None:
    mh = spread()
    assert roles_on(mh, "h1") == {"postgres", "etcd", "haproxy", "api"}
    assert roles_on(mh, "h2") == {"postgres", "etcd", "redis"}


def test_a_second_proxy_host_builds_the_haproxy_and_api_images_too() -> None:
    mh = spread()
    two = MultiHost(mh.hosts, mh.placement, mh.ports, mh.nodes, proxy_hosts=("h1", "h2"))
    assert roles_on(two, "h2") == {"postgres", "etcd", "redis", "haproxy", "api"}
