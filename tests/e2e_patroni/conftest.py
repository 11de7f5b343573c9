"""Deploys one throwaway stack in failoverMode patroni per test session.

The same harness as tests/e2e (`pgha_testkit.deployment`): a unique stack name, its own
host ports and passwords, destroyed and removed at the end, with a check that nothing of
it (PostgreSQL nodes, etcd members, volumes, network) is left in Docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pgha_testkit import patroni
from pgha_testkit.deployment import Deployment


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    deployed = Deployment.throwaway(os.environ.get("PGHA_TEST_NODES", "pg-0 pg-1").split())
    try:
        # pgha:monitoring here only: one shared stack carries tests/e2e_patroni/test_monitoring.py.
        deployed.up(failoverMode="patroni", monitoring="true")
        patroni.wait_whole(deployed)
        yield deployed
    finally:
        left = deployed.teardown()
        assert left == {"containers": [], "networks": [], "volumes": []}, left
