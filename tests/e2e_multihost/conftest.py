"""Deploys one throwaway stack spread over three Docker-in-Docker hosts per test session.

The hosts come from scripts/hosts.sh (`make hosts-up`; brought up here too, it is
idempotent). The placement is the issue's: pg-N and etcd-N on host N+1, HAProxy, Redis
and the API on host 1. pgha:primary is pg-1, so the cluster bootstraps with its leader
off host 1: a host failure that takes the leader must leave the API's host standing,
or there would be nothing to write through. Synchronous mode is on from the start, so
the host failure test can demand that no acknowledged write is lost.

At the end the stack is destroyed and removed, with a check that no container, network
or volume of it is left on any host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pgha_testkit import hosts, patroni
from pgha_testkit.deployment import Deployment

NODES = ["pg-0", "pg-1", "pg-2"]


def placement(bed: list[hosts.TestHost]) -> dict[str, str]:
    spread = {f"pg-{i}": bed[i].name for i in range(3)}
    spread |= {f"etcd-{i}": bed[i].name for i in range(3)}
    return spread | {"haproxy": bed[0].name, "redis": bed[0].name, "api": bed[0].name}


@pytest.fixture(scope="session")
def bed() -> list[hosts.TestHost]:
    return hosts.bring_up(3)


@pytest.fixture(scope="session")
def deployment(bed: list[hosts.TestHost]) -> Iterator[Deployment]:
    deployed = Deployment.throwaway(NODES)
    deployed.engines = hosts.engines({h.name: h.url for h in bed})
    try:
        deployed.up(
            failoverMode="patroni",
            primary="pg-1",
            synchronous="true",
            hosts=json.dumps(hosts.hosts_config(bed)),
            placement=json.dumps(placement(bed)),
        )
        patroni.wait_whole(deployed)
        yield deployed
    finally:
        # A test that failed halfway may leave a host stopped: destroy needs every engine.
        for host in bed:
            hosts.start(host)
        left = deployed.teardown()
        assert left == {"containers": [], "networks": [], "volumes": []}, left
