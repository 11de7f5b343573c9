"""Deploys one throwaway stack in cacheMode sentinel per test session.

The same harness as tests/e2e_patroni (`pgha_testkit.deployment`): a unique stack name,
its own host ports and passwords, destroyed and removed at the end, with a check that
nothing of it (cache nodes, Sentinels, volumes, network) is left in Docker. Every test
leaves the cache whole (two nodes, one primary, three Sentinels) for the next one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    deployed = Deployment.throwaway(os.environ.get("PGHA_TEST_NODES", "pg-0 pg-1").split())
    try:
        # PGHA_CACHE_FAILOVER_GUARD=false deploys the API without the failover guard, only to
        # see test_stale_reads fail without it (service/README.md, "Cache failover").
        guard = os.environ.get("PGHA_CACHE_FAILOVER_GUARD", "true")
        deployed.up(cacheMode="sentinel", cacheFailoverGuard=guard)
        deployed.wait_streaming()
        sentinel.wait_whole(deployed)
        yield deployed
    finally:
        left = deployed.teardown()
        assert left == {"containers": [], "networks": [], "volumes": []}, left


@pytest.fixture(autouse=True)
def whole_cache(deployment: Deployment) -> Iterator[None]:
    """Each test starts, and leaves, with every cache node and Sentinel running."""
    sentinel.restart_stopped(deployment)
    sentinel.wait_whole(deployment)
    yield
    sentinel.restart_stopped(deployment)
    sentinel.wait_whole(deployment)
