"""No stale read when a Redis primary is paused, replaced, and comes back with its old data.

`docker pause` freezes the primary: its connections hang instead of being refused. The
Sentinels promote the replica; then the old primary is resumed. Until the Sentinels
reconfigure it, it still calls itself primary and holds the bodies and fences of before the
pause. A fence that lands there is lost for the readers on the new primary, so a fence
counts only once the replica acknowledged it (WAIT), or once the Sentinels confirm that
the node that took it is the primary; otherwise it goes to the fence log (app/fencelog.py).
Writers and readers run through HAProxy, over both API instances, the whole time.
"""

from __future__ import annotations

import time

from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.history import HistoryLoad, stale_reads
from pgha_testkit.poll import wait_until

PRODUCTS = 4


def test_a_paused_primary_that_comes_back_after_a_failover_serves_no_stale_read(
    deployment: Deployment,
) -> None:
    old = sentinel.wait_whole(deployment)
    replica = next(n for n in sentinel.NODES if n != old)
    with deployment.client() as http:
        pids = [deployment.write(http, f"paused {i}") for i in range(PRODUCTS)]
    load = HistoryLoad(deployment.api, pids, writers=2, readers=4, pace_s=0.01)
    history = load.history
    load.start()
    try:
        time.sleep(2)
        deployment.container(old).pause()
        paused_at = time.monotonic()
        try:
            wait_until(
                lambda: sentinel.sentinel_primary(deployment, sentinel.SENTINELS[0]) == replica,
                180,
                "Sentinel to promote the replica",
            )
        finally:
            deployment.container(old).unpause()
        resumed_at = time.monotonic()
        # The old primary is back with its old data; the load goes on across its demotion.
        wait_until(lambda: sentinel.whole(deployment) == replica, 120, "the old primary demoted")
        time.sleep(3)
    finally:
        load.stop()
    stale = stale_reads(history.writes, history.reads)
    record("sentinel_pause_history_reads", len(history.reads))
    record("sentinel_pause_history_stale_reads", len(stale))
    record("sentinel_pause_statuses", dict(history.statuses))
    assert [w for w in history.writes if w.acked > resumed_at], "no write after the resume"
    timeline = [(round(r.started - paused_at, 2), r.cache, r.version, v) for r, v in stale]
    assert stale == [], f"{len(stale)} stale reads (s after the pause): {timeline[:8]}"
    # The stack as an operator finds it after a failover: the outputs name the new primary.
    deployment.up()
