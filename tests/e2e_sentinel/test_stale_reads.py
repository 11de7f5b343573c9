"""No stale read across a cache failover: a Jepsen-style history against the deployed stack.

Writers PUT increasing versions of a few products while readers GET them in a loop. In
the middle of the run the Redis primary is killed. Redis replicates asynchronously; on
loopback the replica is usually only microseconds behind, so to make the loss the design
must survive actually happen, the replica is paused first (`docker pause`): fence raises
and DELs the primary acknowledges meanwhile never reach it. Then the primary is killed and
the replica resumed, and Sentinel promotes it with the cache as it was before the pause.
A read is stale if it started after a PUT of the same product returned and saw an older
version (pgha_testkit.history). There must be none, and no 5xx.

With PGHA_CACHE_FAILOVER_GUARD=false on the API (`pgha:cacheFailoverGuard false`), the
promoted replica's old bodies are served as hits and this test fails (checked by hand).
"""

from __future__ import annotations

import time

from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.history import HistoryLoad, stale_reads
from pgha_testkit.poll import wait_until

PRODUCTS = 4
READERS = 4


def test_no_read_after_an_acknowledged_write_sees_an_older_version_across_a_failover(
    deployment: Deployment,
) -> None:
    old = sentinel.wait_whole(deployment)
    replica = next(n for n in sentinel.NODES if n != old)
    with deployment.client() as http:
        pids = [deployment.write(http, f"history {i}") for i in range(PRODUCTS)]
    load = HistoryLoad(deployment.api, pids, writers=2, readers=READERS)
    history = load.history
    load.start()
    try:
        time.sleep(3)
        paused_at = time.monotonic()
        deployment.container(replica).pause()
        time.sleep(1.5)
        deployment.container(old).kill()
        killed_at = time.monotonic()
        deployment.container(replica).unpause()
        try:
            # A bound, not a timing: a loaded host can split the Sentinels' election, and each
            # retry waits twice the failover timeout.
            wait_until(
                lambda: sentinel.sentinel_primary(deployment, sentinel.SENTINELS[0]) == replica,
                180,
                "Sentinel to promote the replica",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; Sentinels said: {sentinel.logs(deployment)}") from exc
        promoted_at = time.monotonic()

        def hits_after_promotion() -> bool:
            return any(r.started > promoted_at and r.cache == "HIT" for r in list(history.reads))

        wait_until(hits_after_promotion, 60, "cache hits on the new primary")
        time.sleep(3)
    finally:
        load.stop()
        deployment.container(old).start()
    stale = stale_reads(history.writes, history.reads)
    acked_while_paused = [w for w in history.writes if paused_at <= w.acked <= killed_at]
    hits_after = [r for r in history.reads if r.started > promoted_at and r.cache == "HIT"]
    record("sentinel_history_reads", len(history.reads))
    record("sentinel_history_writes", len(history.writes))
    record("sentinel_history_stale_reads", len(stale))
    record("sentinel_history_statuses", dict(history.statuses))
    # The fault did what it is for: writes were acknowledged that the replica never got,
    # and the cache served hits again afterwards.
    assert acked_while_paused, "no write was acknowledged while the replica was paused"
    assert hits_after, "no cache hit after the promotion"
    assert not [code for code in history.statuses if code >= 500 or code < 0], history.statuses
    # On failure: when each stale read started, relative to the promotion (diagnosis).
    timeline = [(round(r.started - promoted_at, 2), r.cache, r.version, v) for r, v in stale]
    assert stale == [], (
        f"{len(stale)} stale reads (paused {paused_at - promoted_at:.2f}s, killed "
        f"{killed_at - promoted_at:.2f}s before the promotion): {timeline[:8]}"
    )
