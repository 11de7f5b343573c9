"""Failover through stack config, switchover under load, fail back, sync mode, split brain.

Each test leaves pg-0 as the primary with every node streaming, so they can run
in any order. Timings (RTO of a config failover, writes lost in a switchover)
are recorded in bench/results/e2e-measurements.jsonl, never asserted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from pgha_testkit.deployment import Deployment, record
from pgha_testkit.poll import wait_until


def other(deployment: Deployment) -> str:
    return deployment.replicas[0]


def rows_on(deployment: Deployment, node: str, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    found = deployment.sql(
        node, f"select id from pgha.products where id in ({','.join(map(str, ids))})"
    )
    return {int(x) for x in found.split()}


@contextmanager
def write_load(deployment: Deployment) -> Iterator[dict[str, list]]:
    """POSTs in a loop (bounded in count and time) and records what was acknowledged."""
    result: dict[str, list] = {"acked": [], "errors": [], "times": []}
    stop = threading.Event()

    def run() -> None:
        with deployment.client(timeout=5) as http:
            deadline = time.monotonic() + 300
            for i in range(20000):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    res = http.post("/products", json={"name": f"load {i}", "price": 1, "stock": 1})
                except httpx.HTTPError as exc:
                    result["errors"].append(type(exc).__name__)
                    time.sleep(0.05)
                    continue
                if res.status_code == 201:
                    result["acked"].append(res.json()["id"])
                    result["times"].append(time.monotonic())
                else:
                    result["errors"].append(res.status_code)
                    time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join(timeout=30)


def test_failover_with_the_primary_down_restores_writes_and_the_old_primary_rejoins(
    deployment: Deployment,
) -> None:
    old, new = deployment.primary, other(deployment)
    with deployment.client() as http:
        before = [deployment.write(http, f"before failover {i}") for i in range(20)]
    wait_until(lambda: rows_on(deployment, new, before) == set(before), 10, "replication")

    deployment.container(old).stop()
    with deployment.client(timeout=3) as http:
        assert http.post("/products", json={"name": "x", "price": 1, "stock": 1}).status_code == 503
        started = time.monotonic()
        with write_load(deployment) as load:
            deployment.up(primary=new)
            wait_until(lambda: len(load["acked"]) > 0, 30, "a write after failover")
        record("failover_rto_seconds", round(load["times"][0] - started, 2))
        assert deployment.role(new) == "primary"
        ids = before + load["acked"]
        assert rows_on(deployment, new, ids) == set(ids)

    deployment.container(old).start()
    deployment.wait_streaming()
    assert deployment.role(old) == "replica"
    wait_until(lambda: rows_on(deployment, old, ids) == set(ids), 30, "old primary caught up")
    # Reads need a replica (strict mode): the rejoined old primary serves them once
    # HAProxy admits it (streaming comes first, then its /replica checks must rise), and
    # the API follows within its 2 s recovery bound.
    wait_until(
        lambda: "UP" in deployment.backend_status("replica_nodes").values(),
        15,
        "HAProxy admitting the rejoined replica for reads",
    )
    with deployment.client() as http:
        wait_until(
            lambda: http.get(f"/products/{before[0]}").status_code == 200,
            3,
            "a read served by the rejoined replica",
        )
        for pid in before[:3] + load["acked"][:3]:
            assert http.get(f"/products/{pid}").status_code == 200


def test_planned_switchover_under_write_load_loses_no_acknowledged_write(
    deployment: Deployment,
) -> None:
    deployment.wait_streaming()
    target = other(deployment)
    with write_load(deployment) as load:
        time.sleep(2)
        deployment.up(primary=target)
        acked_before = len(load["acked"])
        wait_until(lambda: len(load["acked"]) > acked_before + 5, 30, "writes after switchover")
    acked = load["acked"]
    lost = set(acked) - rows_on(deployment, target, acked)
    record("switchover_acked_writes", len(acked))
    record("switchover_lost_writes", len(lost))
    assert lost == set()
    deployment.wait_streaming()


def test_a_switchover_never_has_two_servers_up_for_writes(deployment: Deployment) -> None:
    """Every node is in HAProxy's write backend; role checks must admit one at a time."""
    deployment.wait_streaming()
    start, target = deployment.primary, other(deployment)
    samples: list[dict[str, str]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.append(deployment.backend_status("primary_nodes"))
            except httpx.HTTPError:
                pass
            time.sleep(0.05)

    deployment.stats_password  # noqa: B018 (read before `up` runs beside the sampler)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        deployment.up(primary=target)
        wait_until(lambda: samples[-1].get(target) == "UP", 15, f"{target} UP for writes")
        deployment.up(primary=start)
        wait_until(lambda: samples[-1].get(start) == "UP", 15, f"{start} UP for writes")
    finally:
        stop.set()
        thread.join(timeout=5)
    both_ways = (
        [s for s in samples if s.get(start) == "UP"],
        [s for s in samples if s.get(target) == "UP"],
    )
    # Positive control: the sampler saw each node take writes, so it could see an overlap.
    assert all(both_ways), len(samples)
    # "UP 1/2" is a server going down that still takes new connections.
    overlaps = [s for s in samples if sum(v.startswith("UP") for v in s.values()) > 1]
    record("switchover_write_backend_samples", len(samples))
    assert overlaps == []
    deployment.wait_streaming()


def test_fail_back_round_trips_keep_every_row(deployment: Deployment) -> None:
    start = deployment.primary
    ids: list[int] = []
    for target in (other(deployment), start, other(deployment), start):
        deployment.up(primary=target)
        deployment.wait_streaming()
        with deployment.client() as http:
            ids.append(deployment.write(http, f"round trip to {target}"))
        assert deployment.role(target) == "primary"
        assert rows_on(deployment, target, ids) == set(ids)
    assert deployment.primary == start


def test_synchronous_mode_keeps_a_write_acknowledged_before_the_primary_is_killed(
    deployment: Deployment,
) -> None:
    deployment.up(synchronous="true")
    old, new = deployment.primary, other(deployment)
    assert deployment.sql(old, "show synchronous_standby_names").startswith("ANY 1")
    try:
        with deployment.client() as http:
            pid = deployment.write(http, "acknowledged under synchronous replication")
        deployment.container(old).kill()
        deployment.up(primary=new)
        assert rows_on(deployment, new, [pid]) == {pid}
        # With its only standby down, the new primary holds commits until the
        # old one rejoins: the price of synchronous replication.
        deployment.container(old).start()
        deployment.wait_streaming()
    finally:
        deployment.up(synchronous="false", primary=old)
        deployment.wait_streaming()
    with deployment.client() as http:
        assert http.get(f"/products/{pid}").status_code == 200


def test_an_old_primary_made_writable_by_hand_gets_no_writes(deployment: Deployment) -> None:
    deployment.wait_streaming()
    rogue = other(deployment)
    node = deployment.container(rogue)
    code, output = node.exec_run(["pg_ctl", "promote", "-w"], user="postgres")
    assert code == 0, output
    assert deployment.role(rogue) == "primary"
    try:
        with deployment.client() as http:
            ids = [deployment.write(http, f"split brain {i}") for i in range(10)]
        assert rows_on(deployment, deployment.primary, ids) == set(ids)
        assert rows_on(deployment, rogue, ids) == set()
    finally:
        # The documented repair: record the role, restart, and pg_rewind does the rest.
        code, output = node.exec_run(["pgha-ctl", "follow", deployment.primary], user="postgres")
        assert code == 0, output
        node.restart()
        deployment.wait_streaming()
