"""A leader frozen past its ttl (`docker pause`) under write load, in synchronous mode.

A paused process cannot demote itself: it stops mid-loop with its lease running out and
wakes up believing it still leads. Expected: the synchronous standby is promoted while
the old leader sleeps; the old leader, woken, finds the lock taken and rejoins as a
replica; no acknowledged write is lost. Debian's Patroni 3.0.2 failed this in
`make chaos-patroni`: woken, it renewed the leader key under a new lease over the new
leader's, took the lock back on its old timeline, lost the writes the new leader had
acknowledged, and the replicas, one timeline ahead, never streamed from it again.
"""

from __future__ import annotations

import time

from pgha_testkit import patroni
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.ledger import Ledger
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import wait_until


def test_a_paused_leader_wakes_as_a_replica_losing_no_acknowledged_write(
    deployment: Deployment,
) -> None:
    with patroni.synchronous_mode(deployment) as leader:
        ledger = Ledger()
        tag = f"pause-{time.monotonic_ns()}"
        with Load(deployment.api, tag, LoadSpec(writers=2, readers=0), ledger=ledger):
            time.sleep(2)
            frozen = deployment.container(leader)
            frozen.pause()
            paused = time.monotonic()
            try:
                new = patroni.wait_leader(deployment, 60, not_=leader)
                acked = len(ledger.acked_ids())
                wait_until(
                    lambda: len(ledger.acked_ids()) > acked + 5, 30, "writes on the new leader"
                )
            finally:
                frozen.unpause()
            record("patroni_pause_new_leader_seconds", round(time.monotonic() - paused, 2))
            # Writes go on across the old leader's wake-up: the moment it could steal the lock.
            time.sleep(5)

        whole, old_writable, result = patroni.settle(deployment, leader, ledger, tag, "pause")
        assert whole == new
        assert old_writable is False
        assert result.lost == 0, result.as_dict()
