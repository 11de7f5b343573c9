"""The sentinel-mode stack's outputs: the observed primary and the Sentinels' endpoints."""

from __future__ import annotations

from infra import outputs as out
from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment


def test_outputs_name_the_observed_primary_and_every_sentinel(deployment: Deployment) -> None:
    primary = sentinel.wait_whole(deployment)
    assert deployment.outputs[out.REDIS_PRIMARY] == primary
    assert deployment.outputs[out.SENTINEL_ENDPOINTS] == [f"{s}:26379" for s in sentinel.SENTINELS]
    containers = deployment.outputs[out.CONTAINERS]
    for name in sentinel.NODES + sentinel.SENTINELS:
        assert containers[name] == f"{deployment.prefix}-{name}"
    assert "redis" not in containers
