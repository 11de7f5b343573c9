"""Cache failover: the Redis primary killed, a Sentinel down.

Faults are real (`docker kill`, `docker stop`); each test leaves every node and Sentinel
running again (the autouse `whole_cache` fixture waits for that).
"""

from __future__ import annotations

import time

from infra import outputs as out
from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.poll import wait_until


def hit(http: object, pid: int) -> bool:
    res = http.get(f"/products/{pid}")  # type: ignore[attr-defined]
    return bool(res.status_code == 200 and res.headers["X-Cache"] == "HIT")


def test_killing_the_primary_keeps_reads_up_and_hits_return_on_the_replica(
    deployment: Deployment,
) -> None:
    old = sentinel.wait_whole(deployment)
    with deployment.client() as http:
        pid = deployment.write(http, "before the cache failover")
        wait_until(lambda: hit(http, pid), 30, "a cached product")
        seen: list[tuple[int, str]] = []

        def hits_again() -> bool:
            res = http.get(f"/products/{pid}")
            seen.append((res.status_code, res.headers.get("X-Cache", "")))
            return res.status_code == 200 and res.headers["X-Cache"] == "HIT"

        killed = time.monotonic()
        deployment.container(old).kill()
        took = wait_until(hits_again, 90, "cache hits after the promotion", interval=0.1)
        record("sentinel_hits_resume_after_primary_kill_s", round(took, 2))
    assert {status for status, _ in seen} == {200}
    # While no primary answered, reads went around the cache.
    assert "BYPASS" in {cache for _, cache in seen}
    survivor = next(s for s in sentinel.SENTINELS if sentinel.running(deployment, s))
    new = sentinel.sentinel_primary(deployment, survivor)
    assert new != old
    # The killed node comes back (as an operator or a restart policy would start it) and
    # Sentinel turns it into the new primary's replica.
    deployment.container(old).start()
    assert sentinel.wait_whole(deployment) == new
    assert sentinel.info(deployment, old)["role"] == "slave"
    record("sentinel_kill_seconds_total", round(time.monotonic() - killed, 2))
    # The next `up` records the primary Sentinel observes, and moves nothing back.
    deployment.up()
    assert deployment.outputs[out.REDIS_PRIMARY] == new
    assert sentinel.wait_whole(deployment) == new


def test_one_sentinel_down_changes_nothing(deployment: Deployment) -> None:
    primary = sentinel.wait_whole(deployment)
    with deployment.client() as http:
        pid = deployment.write(http, "one sentinel down")
        wait_until(lambda: hit(http, pid), 30, "a cached product")
        deployment.container(sentinel.SENTINELS[0]).stop()
        answers = [http.get(f"/products/{pid}") for _ in range(20)]
        assert {(r.status_code, r.headers["X-Cache"]) for r in answers} == {(200, "HIT")}
        put = http.put(f"/products/{pid}", json={"name": "still fenced", "price": 1, "stock": 1})
        assert put.status_code == 200
        after = http.get(f"/products/{pid}")
        assert after.json()["name"] == "still fenced"
        assert after.headers["X-Cache"] == "MISS"
    for s in sentinel.SENTINELS[1:]:
        assert sentinel.sentinel_primary(deployment, s) == primary
