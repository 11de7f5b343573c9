"""Deploys one throwaway pgha stack per test session, through the Automation API.

The stack gets a unique name and its own host ports, so it runs beside a dev stack
(`pgha_testkit.deployment`). At the end the stack is destroyed and removed, and the
teardown checks that nothing of it is left in Docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pgha_testkit.argv import ArgvSampler
from pgha_testkit.deployment import Deployment


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    deployed = Deployment.throwaway(os.environ.get("PGHA_TEST_NODES", "pg-0 pg-1").split())
    try:
        # Every command line of the first up, for tests/e2e/test_security.py.
        with ArgvSampler() as sampler:
            deployed.up()
        deployed.bootstrap_argvs = frozenset(sampler.seen)
        yield deployed
    finally:
        left = deployed.teardown()
        assert left == {"containers": [], "networks": [], "volumes": []}, left
