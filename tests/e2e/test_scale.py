"""Scaling out and in (manual failover mode) changes no existing container and loses no write."""

from __future__ import annotations

from pgha_testkit.deployment import Deployment
from pgha_testkit.scale import assert_untouched_and_lossless, run_cycle


def test_a_node_added_and_removed_under_load_leaves_every_other_container_untouched(
    deployment: Deployment,
) -> None:
    cycle = run_cycle(deployment)
    assert_untouched_and_lossless(cycle)
