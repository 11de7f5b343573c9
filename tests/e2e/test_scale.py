"""Scaling out and in (manual failover mode) changes no existing container and loses no write."""

from __future__ import annotations

from pgha_testkit.deployment import Deployment
from pgha_testkit.nodes import slot_name
from pgha_testkit.scale import run_cycle


def test_a_node_added_and_removed_under_load_leaves_every_other_container_untouched(
    deployment: Deployment,
) -> None:
    cycle = run_cycle(deployment)
    assert cycle.changed(cycle.grown) == {}
    assert cycle.changed(cycle.after) == {}
    assert cycle.caught_up
    assert cycle.served_read
    assert cycle.failed_writes == []
    assert cycle.ledger.lost == 0
    assert slot_name(cycle.added) not in cycle.slots_after
