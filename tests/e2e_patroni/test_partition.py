"""A network partition of the leader under write load, in synchronous mode.

The leader's container is disconnected from the stack network (`docker network
disconnect`), which cuts it off from etcd, its peers and HAProxy at once, while the
test still sees every node through `docker exec`. Expected: the cut-off leader stops
being writable (failsafe mode cannot confirm it: its peers are unreachable) before the
others elect a new leader, no two *reachable* nodes are ever writable together, and
after reconnecting it rejoins as a replica. With Patroni's synchronous mode no
acknowledged write is lost: the old leader's commits waited for a standby it no longer
reached, and only that standby could be promoted.
"""

from __future__ import annotations

import time

from infra import outputs as out
from pgha_testkit import patroni
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.ledger import Ledger
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import wait_until

# Three ttls (6 s): long enough for the old leader to demote and a new one to be elected.
PARTITION_S = 18


def rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def test_a_partitioned_leader_stops_writing_and_rejoins_losing_no_acknowledged_write(
    deployment: Deployment,
) -> None:
    with patroni.synchronous_mode(deployment) as leader:
        nodes = patroni.pg_nodes(deployment)
        others = [n for n in nodes if n != leader]
        network = deployment.docker.networks.get(deployment.outputs[out.NETWORK])
        # (seconds since the cut, leader reachable, node -> writable)
        samples: list[tuple[float, bool, dict[str, bool | None]]] = []
        ledger = Ledger()
        tag = f"partition-{time.monotonic_ns()}"
        with Load(deployment.api, tag, LoadSpec(writers=2, readers=0), ledger=ledger):
            time.sleep(2)
            started = time.monotonic()
            network.disconnect(deployment.container_name(leader))
            try:
                while time.monotonic() - started < PARTITION_S:
                    states = {n: patroni.writable(deployment, n) for n in nodes}
                    samples.append((time.monotonic() - started, False, states))
                    time.sleep(0.1)
            finally:
                network.connect(deployment.container_name(leader), aliases=[leader])
            reconnected = time.monotonic()
            while time.monotonic() - reconnected < 10:
                states = {n: patroni.writable(deployment, n) for n in nodes}
                samples.append((time.monotonic() - started, True, states))
                time.sleep(0.1)
            new = patroni.wait_leader(deployment, 30, not_=leader)
            acked = len(ledger.acked_ids())
            wait_until(lambda: len(ledger.acked_ids()) > acked + 5, 30, "writes on the new leader")

        cut = [s for s in samples if not s[1]]
        demoted = next((t for t, _, st in cut if st[leader] is not True), None)
        promoted = next((t for t, _, st in cut if any(st[n] for n in others)), None)
        overlap = [t for t, _, st in cut if sum(v is True for v in st.values()) > 1]
        record("patroni_partition_old_leader_not_writable_seconds", rounded(demoted))
        record("patroni_partition_new_leader_writable_seconds", rounded(promoted))
        record("patroni_partition_writable_overlap_samples", len(overlap))
        assert demoted is not None, "the partitioned leader stayed writable"
        assert promoted is not None, "no new leader while the old one was cut off"
        # Both reachable = every node but the cut-off one during the cut, all after it.
        two_reachable = [
            (t, st)
            for t, connected, st in samples
            if sum(v is True for n, v in st.items() if connected or n != leader) > 1
        ]
        assert two_reachable == []

        whole, old_writable, result = patroni.settle(deployment, leader, ledger, tag, "partition")
        assert whole == new
        assert old_writable is False
        assert result.lost == 0, result.as_dict()
