"""The stack spread over three hosts: each piece where the placement says, one cluster.

Every node streams from the leader across hosts, a write through the API lands on the
leader, and a read goes MISS then HIT through the API: HAProxy, Redis and the API on
host 1 reach the nodes on hosts 2 and 3 only through the ports published on their
addresses.
"""

from __future__ import annotations

import docker.errors
import pytest

from infra import outputs as out
from pgha_testkit import hosts, patroni
from pgha_testkit.deployment import Deployment
from pgha_testkit.ledger import ids_present
from pgha_testkit.poll import wait_until


def test_each_container_runs_on_the_host_its_placement_names(deployment: Deployment) -> None:
    containers = deployment.outputs[out.CONTAINERS]
    for role, name in containers.items():
        host = deployment.host_of(role)
        assert deployment.engines[host].containers.get(name).status == "running"
        for other, client in deployment.engines.items():
            if other != host:
                with pytest.raises(docker.errors.NotFound):
                    client.containers.get(name)


def test_every_node_streams_from_the_leader_across_hosts(
    deployment: Deployment, bed: list[hosts.TestHost]
) -> None:
    leader = patroni.wait_whole(deployment)
    sql = "select client_addr from pg_stat_replication where state = 'streaming'"
    streaming = sorted(deployment.sql(leader, sql, "postgres").split())
    # Each replica is on another host and arrives from that host's address, through the
    # port the leader publishes on its own host's address.
    address = {h.name: h.address for h in bed}
    replicas = [n for n in patroni.pg_nodes(deployment) if n != leader]
    assert streaming == sorted(address[deployment.host_of(n)] for n in replicas)


def test_a_write_through_the_api_lands_on_the_leader_and_every_replica(
    deployment: Deployment,
) -> None:
    leader = patroni.wait_whole(deployment)
    with deployment.client() as http:
        pid = deployment.write(http, "spread write")
    on_leader = ids_present(
        deployment.container_name(leader), [pid], client=deployment.client_for(leader)
    )
    assert on_leader == {pid}
    for node in patroni.pg_nodes(deployment):
        wait_until(
            lambda n=node: (
                ids_present(deployment.container_name(n), [pid], client=deployment.client_for(n))
                == {pid}
            ),
            10,
            f"the write replicated to {node}",
        )


def test_a_read_misses_then_hits_the_cache_through_the_api(deployment: Deployment) -> None:
    patroni.wait_whole(deployment)
    with deployment.client() as http:
        pid = deployment.write(http, "spread read")
        first = http.get(f"/products/{pid}")
        second = http.get(f"/products/{pid}")
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
