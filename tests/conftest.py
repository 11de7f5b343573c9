"""Marks every test by the tier its directory stands for, so `-m` selects tiers.

`unit`: pure logic, no servers, always runs. `service`: the API against real PostgreSQL
and Redis processes on loopback. `e2e`: a deployed stack (Pulumi and Docker).
`e2e_patroni`: a deployed stack in failoverMode patroni. `e2e_sentinel`: a deployed
stack in cacheMode sentinel. `multihost` (tests/e2e_multihost): a stack spread over
three Docker-in-Docker hosts. `toolchain`: the Pulumi CLI and plugins `make setup`
provides. `slow` is set by hand, on a test or a module, and only keeps it out of
`make test-fast`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# The harness asserts too (e.g. `miss_then_hit`): let pytest explain its failures.
pytest.register_assert_rewrite("pgha_testkit")

TIERS = {"unit", "service", "e2e", "e2e_patroni", "e2e_sentinel", "toolchain"}
# Directories whose marker is not their name.
MARKERS = {"e2e_multihost": "multihost"}
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.path).resolve().relative_to(TESTS).parts[0]
        if tier in TIERS:
            item.add_marker(tier)
        elif tier in MARKERS:
            item.add_marker(MARKERS[tier])
