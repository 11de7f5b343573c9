"""The cache contract across instances: one API instance cut off from Redis, the others not.

api-1 alone loses Redis (a DROP rule in its network namespace, the partial partition of
issue 21). A write it acknowledges must never be read older through api-2, whose cache
still holds the old body: neither while api-1 stays cut off, nor after api-1 is killed
with the write's fence never having reached Redis from it. Before the fence log
(app/fencelog.py) both failed: api-2 served the old body until its TTL ran out.
"""

from __future__ import annotations

import json
import time

import pytest

from infra import outputs as out
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.instance import cut_off_from, in_instance
from pgha_testkit.poll import wait_until

WRITER, READER = "api-1", "api-2"
# Several drain rounds and breaker cool-downs, far below the 60 s TTL the old body had left.
READ_SECONDS = 4.0


@pytest.fixture(autouse=True)
def needs_two_instances(deployment: Deployment) -> None:
    if READER not in deployment.outputs[out.CONTAINERS]:
        pytest.skip("pgha:apiReplicas is 1 on this stack")


def cached_everywhere(deployment: Deployment, name: str) -> int:
    """A product that both instances serve from the cache at version 1."""
    with deployment.client() as http:
        pid = deployment.write(http, name)
    for instance in (WRITER, READER):
        wait_until(
            lambda i=instance: in_instance(deployment, i, "GET", f"/products/{pid}")[0][3] == "HIT",
            10,
            f"{instance} to cache the product",
        )
    return pid


def put_through(deployment: Deployment, instance: str, pid: int) -> int:
    body = json.dumps({"name": "written while cut off", "price": "2.00", "stock": 2})
    started = time.monotonic()
    [answer] = in_instance(deployment, instance, "PUT", f"/products/{pid}", body=body)
    record("cut_off_put_seconds", round(time.monotonic() - started, 3))
    assert answer[1] == 200, answer
    return int(answer[2])


def test_a_write_through_an_instance_cut_off_from_redis_is_never_read_older_elsewhere(
    deployment: Deployment,
) -> None:
    pid = cached_everywhere(deployment, "partition")
    with cut_off_from(deployment, WRITER, "redis"):
        acked = put_through(deployment, WRITER, pid)
        seen = in_instance(deployment, READER, "GET", f"/products/{pid}", READ_SECONDS)
    stale = [s for s in seen if s[2] < acked]
    assert stale == [], f"{len(stale)} of {len(seen)} reads older than {acked}: {stale[:5]}"


def test_an_instance_killed_after_acknowledging_while_cut_off_loses_no_invalidation(
    deployment: Deployment,
) -> None:
    pid = cached_everywhere(deployment, "killed with a fence")
    writer = deployment.container(WRITER)
    try:
        with cut_off_from(deployment, WRITER, "redis"):
            acked = put_through(deployment, WRITER, pid)
            writer.kill()
        seen = in_instance(deployment, READER, "GET", f"/products/{pid}", READ_SECONDS)
    finally:
        writer.start()
        with deployment.client() as http:
            wait_until(
                lambda: len({http.get("/health").headers["x-served-by"] for _ in range(8)}) == 2,
                60,
                "the killed instance back behind HAProxy",
            )
    stale = [s for s in seen if s[2] < acked]
    assert stale == [], f"{len(stale)} of {len(seen)} reads older than {acked}: {stale[:5]}"
