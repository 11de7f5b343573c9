"""Deploys one throwaway stack spread over three Docker-in-Docker hosts per test session.

The hosts come from scripts/hosts.sh (`make hosts-up`; brought up here too, it is
idempotent). The layout is `pgha_testkit.multihost`'s: pg-N and etcd-N on host N+1,
HAProxy, Redis and the API on host 1, pgha:primary pg-1 (the leader starts off the
API's host: a host failure that takes the leader must leave the API standing), and
synchronous mode on from the start, so the host failure test can demand that no
acknowledged write is lost.

At the end the stack is destroyed and removed, with a check that no container, network
or volume of it is left on any host.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgha_testkit import hosts, multihost
from pgha_testkit.deployment import Deployment


@pytest.fixture(scope="session")
def bed() -> list[hosts.TestHost]:
    return hosts.bring_up(3)


@pytest.fixture(scope="session")
def deployment(bed: list[hosts.TestHost]) -> Iterator[Deployment]:
    deployed = multihost.throwaway(bed)
    try:
        multihost.deploy(deployed, bed)
        yield deployed
    finally:
        # A test that failed halfway may leave a host down: destroy needs every engine.
        for host in bed:
            hosts.start(host)
        left = deployed.teardown()
        assert left == {"containers": [], "networks": [], "volumes": []}, left
