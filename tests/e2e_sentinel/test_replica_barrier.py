"""A cache failover that loses a fence, while the PostgreSQL replica is behind that write.

The history test (test_stale_reads) shows no stale read when the replica replays within
the grace period, as it does on a quiet host. This one makes the replica lag for as long
as the test wants, deterministically: its WAL replay is paused (`pg_wal_replay_pause()`)
before a PUT. The loss of that PUT's fence in the failover is then injected directly: the
fence key is deleted on the Redis primary (and so on its replica) just before the primary
is killed. Pausing the Redis replica does not lose it reliably (what the primary sends
meanwhile waits in the replica's socket buffer and is applied on resume), and holding it
back behind a large write stalled the Sentinels on this host. After the promotion and the
grace period a replica read would return the version before the PUT. The API instance that
did not make the PUT has nothing else to go by; only the WAL barrier read after the grace
(app/sentinel.EpochClock) sends its reads to the primary. Without it this test fails with
the old version (checked by hand against the code before the barrier).
"""

from __future__ import annotations

import json

from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.instance import in_instance
from pgha_testkit.poll import wait_until

# Reads after the grace: the API's grace (2 s) and barrier wait (2 s) are well inside it.
READ_SECONDS = 6.0


def version_of(deployment: Deployment, node: str, pid: int) -> int:
    return int(deployment.sql(node, f"SELECT version FROM pgha.products WHERE id = {pid}").strip())


def test_after_a_cache_failover_no_replica_behind_a_lost_fence_is_read(
    deployment: Deployment,
) -> None:
    old = sentinel.wait_whole(deployment)
    redis_replica = next(n for n in sentinel.NODES if n != old)
    writer, reader = "api-1", "api-2"
    with deployment.client() as http:
        pid = deployment.write(http, "barrier")
    deployment.wait_streaming()
    in_instance(deployment, reader, "GET", f"/products/{pid}")
    node = deployment.replicas[0]
    deployment.sql(node, "SELECT pg_wal_replay_pause()")
    try:
        body = json.dumps({"name": "barrier v2", "price": "2.00", "stock": 2})
        [put] = in_instance(deployment, writer, "PUT", f"/products/{pid}", body=body)
        acked = int(put[2])
        # The replica really is behind the write: without its fence, a read there is stale.
        assert version_of(deployment, node, pid) < acked
        sentinel.ask(deployment, old, "DEL", f"product:{pid}:fence")
        # On the replica too, which is the node Sentinel will promote.
        assert sentinel.ask(deployment, old, "WAIT", "1", "5000") == "1"
        deployment.container(old).kill()
        wait_until(
            lambda: sentinel.sentinel_primary(deployment, sentinel.SENTINELS[0]) == redis_replica,
            180,
            "Sentinel to promote the replica",
        )
        # The reader instance has no local fence for the PUT: only Redis (which lost it), the
        # replica (paused before it) and the barrier can tell it about the write.
        seen = in_instance(deployment, reader, "GET", f"/products/{pid}", READ_SECONDS)
        still_behind = version_of(deployment, node, pid) < acked
    finally:
        deployment.sql(node, "SELECT pg_wal_replay_resume()")
        deployment.container(old).start()
    # The next tests find the stack as an operator would after a failover: whole, and with
    # the outputs naming the new primary (the next `up` records it, as test_failover shows).
    sentinel.wait_whole(deployment)
    deployment.up()
    record("sentinel_barrier_reads", len(seen))
    record("sentinel_barrier_answers", sorted({f"{s[3]} from {s[4]}" for s in seen}))
    stale = [s for s in seen if s[2] < acked]
    assert still_behind, "the replica replayed the PUT during the test: nothing was proven"
    assert seen[-1][0] >= READ_SECONDS, seen[-1]
    assert stale == [], f"{len(stale)} of {len(seen)} reads older than version {acked}: {stale[:8]}"
