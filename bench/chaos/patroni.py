"""`make chaos-patroni`: failoverMode patroni broken on purpose, on a throwaway 3-node stack
(the runner: runner.py).

What it starts: a stack `e2e-<random>` in failoverMode patroni, three PostgreSQL nodes,
synchronous mode on (pgha_testkit's `Deployment`, as the e2e suites use), destroyed at
the end. Why a throwaway: the cells kill, pause and cut off nodes and swap Patroni's
timings live; nobody's dev stack should be left like that.

Series: switchover by config (`pgha:primary`, by `pulumi up`) x3; leader kill x5 in
synchronous mode (the RTO goal: median <= 10 s, max <= 15 s, 0 lost); x3 asynchronous
(lost writes and the lag at the kill, not hidden); x2 with Patroni's default timings
PATCHed in live (ttl 30, loop_wait 10, retry_timeout 10), for the ratio. The matrix: kill,
stop and pause of the leader, a replica, one etcd member and two, and the backup
repository, plus the leader's partition (`docker network disconnect`). A fault is held
past a minimum and until a write succeeds again. Checks: the replication lag at the
fault, a split-brain flag from node samples every 0.25 s, the leader before and after.
Reports: bench/results/chaos-patroni-<time>.json and .md. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from bench.chaos import backup, faults
from bench.chaos.cli import common_args, launch, parse_cells, phases
from bench.chaos.figures import NodeState, Sample, first_write_after, split_brain_samples
from bench.chaos.runner import Cell, CellRun, OnDeployment, Phases
from bench.common import log
from infra import outputs as out
from infra.patroni_cfg import LOOP_WAIT_S, RETRY_TIMEOUT_S, TTL_S
from pgha_testkit import patroni
from pgha_testkit.deployment import Deployment
from pgha_testkit.poll import wait_until

NODES = ("pg-0", "pg-1", "pg-2")
SWITCHOVER = "switchover"
KNOWN = (
    *(
        f"{t}:{f}"
        for t in ("leader", "replica", "etcd1", "etcd2", backup.TARGET)
        for f in faults.FAULTS
    ),
    f"leader:{faults.PARTITION}",
)
# Patroni's documented defaults, against ours (infra/patroni_cfg.py).
PATRONI_DEFAULTS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
OURS = {"ttl": TTL_S, "loop_wait": LOOP_WAIT_S, "retry_timeout": RETRY_TIMEOUT_S}
# A fault is held at least `hold` (a partition: three ttls, as the e2e test), and past the
# first write that succeeds after it, up to MAX_HOLD_S (Patroni's defaults: longer).
PHASES = Phases(before=2.0, hold=10.0, after=2.0)
PARTITION_HOLD_S = 3.0 * TTL_S
MAX_HOLD_S = 60.0
DEFAULTS_MAX_HOLD_S = 150.0
SAMPLE_EVERY_S = 0.25
LAG_SQL = (
    "select coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint"
    " from pg_stat_replication"
)
SERIES_SWITCHOVER = "switchover by config: write outage"
SERIES_SYNC = "leader kill, synchronous: RTO"
SERIES_ASYNC = "leader kill, asynchronous: RTO"
SERIES_DEFAULTS = "leader kill, Patroni defaults: RTO"


class Sampler(threading.Thread):
    """Every node's (reachable, writable), every SAMPLE_EVERY_S, until stopped."""

    def __init__(self, d: Deployment, t0: float) -> None:
        super().__init__(daemon=True)
        self.d, self.t0 = d, t0
        self.samples: list[Sample] = []
        self.halt = threading.Event()

    def reachable(self, node: str) -> bool:
        try:
            c = self.d.container(node)
        except Exception:  # noqa: BLE001 (removed mid-cell counts as unreachable)
            return False
        networks = c.attrs["NetworkSettings"]["Networks"]
        return c.status == "running" and self.d.outputs[out.NETWORK] in networks

    def run(self) -> None:
        while not self.halt.is_set():
            states = {
                n: NodeState(self.reachable(n), patroni.writable(self.d, n))
                for n in patroni.pg_nodes(self.d)
            }
            self.samples.append((round(time.monotonic() - self.t0, 2), states))
            self.halt.wait(SAMPLE_EVERY_S)


class PatroniCampaign(OnDeployment):
    name = "chaos-patroni"
    module = "bench.chaos.patroni"
    check_columns = (
        ("lag at fault (bytes)", "lag_bytes"),
        ("split brain", "split_brain"),
        ("leader before", "leader_before"),
        ("leader after", "leader_after"),
        ("WAL queued at lift", "wal_ready_at_lift"),
        ("archive failures", "archive_failures"),
        ("pulumi up s", "pulumi_up_s"),
    )

    def __init__(self, opts: argparse.Namespace) -> None:
        super().__init__(phases(opts, PHASES, PHASES), Deployment.throwaway(NODES))
        self.opts = opts
        self.only = parse_cells(opts.cells, KNOWN)
        self.samplers: dict[str, Sampler] = {}
        self.max_hold = MAX_HOLD_S
        self.aliases: dict[str, str] = {}

    def setup(self, meta: dict[str, Any]) -> None:
        log(f"deploying {self.d.stack.name} (patroni, synchronous, {len(NODES)} nodes)")
        meta["nodes"], meta["timings"] = list(NODES), OURS
        self.d.up(failoverMode="patroni", synchronous="true")
        patroni.wait_whole(self.d, 180)
        with self.d.client() as http:
            self.seed_ids = [self.d.write(http, f"chaos-patroni-{self.run_id}-seed")]

    def teardown(self, meta: dict[str, Any], ok: bool) -> None:
        ours, theirs = (
            meta["series"].get(s, {}).get("median") for s in (SERIES_SYNC, SERIES_DEFAULTS)
        )
        meta["defaults_ratio"] = round(theirs / ours, 1) if ours and theirs else None
        left = self.d.teardown()
        if any(left.values()):
            log(f"left behind: {left}")

    def cells(self) -> Iterator[Cell]:
        o = self.opts
        if not self.only or o.quick:
            for _ in range(o.switchovers):
                yield Cell("replica", SWITCHOVER, "sync", SERIES_SWITCHOVER)
            for _ in range(o.kills):
                yield Cell("leader", "kill", "sync", SERIES_SYNC)
            self.patch_config({"synchronous_mode": False})
            for _ in range(o.async_kills):
                yield Cell("leader", "kill", "async", SERIES_ASYNC)
            self.patch_config({"synchronous_mode": True, **PATRONI_DEFAULTS})
            self.max_hold = DEFAULTS_MAX_HOLD_S
            for _ in range(o.default_kills):
                yield Cell("leader", "kill", "sync, defaults", SERIES_DEFAULTS)
            self.max_hold = MAX_HOLD_S
            self.patch_config(dict(OURS))
        if not o.no_matrix or self.only:
            for c in self.only or parse_cells(",".join(KNOWN), KNOWN):
                yield Cell(c.target, c.fault, "sync")

    def patch_config(self, settings: dict[str, object]) -> None:
        status, body = patroni.request(self.d, patroni.leader(self.d), "PATCH", "/config", settings)
        if status != 200:
            raise RuntimeError(f"PATCH /config {settings} answered {status}: {body}")
        # Each node picks the change up on its next HA loop: up to loop_wait away, which is
        # Patroni's default's 10 s when switching back from them.
        time.sleep(2 * PATRONI_DEFAULTS["loop_wait"])

    def resolve(self, cell: Cell) -> list[str]:
        """Containers the target names at the moment of the fault."""
        leader = patroni.leader(self.d)
        if cell.target == "leader":
            names = [leader]
        elif cell.target == backup.TARGET:
            names = [backup.TARGET]
        elif cell.target == "replica":
            members = patroni.members(self.d)
            sync = [m["name"] for m in members if m.get("role") == "sync_standby"]
            names = sync[:1] or [n for n in patroni.pg_nodes(self.d) if n != leader][:1]
        else:
            names = patroni.etcd_members(self.d)[: int(cell.target.removeprefix("etcd"))]
        if cell.fault == SWITCHOVER:
            return []  # nothing is broken: the switchover target is resolved in inject
        # A partitioned node rejoins under its role name, which HAProxy and Patroni use.
        self.aliases = {self.d.container_name(n): n for n in names}
        return list(self.aliases)

    def wait_whole(self) -> None:
        patroni.wait_whole(self.d, 180)
        wait_until(self.etcd_healthy, 120, "every etcd member healthy")

    def etcd_healthy(self) -> bool:
        states = [
            self.d.container(m).attrs["State"].get("Health", {})
            for m in patroni.etcd_members(self.d)
        ]
        return all(s.get("Status") == "healthy" for s in states)

    def ledger_container(self) -> str:
        # A leader, waited for: on a starved host it can lapse again after the cell's whole.
        return self.d.container_name(patroni.wait_leader(self.d, 120))

    def before_fault(self, run: CellRun) -> None:
        leader = patroni.leader(self.d)
        run.own["leader_before"] = leader
        run.own["lag_bytes"] = int(self.d.sql(leader, LAG_SQL, db="postgres") or 0)
        sampler = Sampler(self.d, time.monotonic())
        sampler.start()
        self.samplers[run.tag] = sampler

    def inject(self, run: CellRun) -> None:
        own = run.own
        if run.cell.fault == SWITCHOVER:
            target = [m["name"] for m in patroni.members(self.d) if m.get("role") == "sync_standby"]
            started = time.monotonic()
            self.d.up(primary=(target or [n for n in NODES if n != own["leader_before"]])[0])
            own["pulumi_up_s"] = round(time.monotonic() - started, 2)
            return
        network = self.network() if run.cell.fault == faults.PARTITION else None
        for c in run.containers:
            faults.inject(c, run.cell.fault, network)

    def network(self) -> Any:
        return self.docker.networks.get(self.d.outputs[out.NETWORK])

    def hold(self, run: CellRun) -> None:
        if run.cell.fault == SWITCHOVER:
            return
        least = PARTITION_HOLD_S if run.cell.fault == faults.PARTITION else self.phases.hold
        writes = run.load.of_kind("write") if run.load else []
        while time.monotonic() - run.t_fault < self.max_hold:
            held = time.monotonic() - run.t_fault
            if run.load is not None:
                writes = run.load.of_kind("write")
            if held >= least and first_write_after(writes, run.t_fault, run.t_done) is not None:
                break
            time.sleep(0.25)

    def lift(self, run: CellRun) -> None:
        network = self.network() if run.cell.fault == faults.PARTITION else None
        for c in run.containers:
            faults.lift(c, network, self.aliases.get(str(c.name), ""))

    def path_ok(self, run: CellRun, http: httpx.Client, probe: str) -> bool:
        try:
            body = {"name": probe, "price": "1", "stock": 0}
            return http.post("/products", json=body).status_code == 201
        except httpx.HTTPError:
            return False

    def checks(self, run: CellRun) -> dict[str, Any]:
        own = run.own
        sampler = self.samplers.pop(run.tag, None)
        if sampler is not None:
            sampler.halt.set()
            sampler.join()
            brain = split_brain_samples(sampler.samples)
            own.update(
                split_brain=bool(brain), split_brain_at_s=brain[:5], samples=len(sampler.samples)
            )
        own["leader_after"] = patroni.leader(self.d)
        return own

    def series_value(self, record: dict[str, Any]) -> float | None:
        w = record.get("write") or {}
        if record.get("fault") == SWITCHOVER:
            value: float | None = w.get("longest_gap_without_2xx_s")
            return value
        return w.get("first_2xx_after_fault_s")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos.patroni", description=__doc__)
    common_args(parser)
    parser.add_argument("--kills", type=int, default=5, help="synchronous leader kills")
    parser.add_argument("--async-kills", type=int, default=3)
    parser.add_argument("--default-kills", type=int, default=2, help="with Patroni defaults")
    parser.add_argument("--switchovers", type=int, default=3)
    parser.add_argument("--no-matrix", action="store_true", help="series only")
    # --cells alone: those matrix cells, no series; with --quick: the quick series, then them.
    opts = parser.parse_args(argv)
    parse_cells(opts.cells, KNOWN)  # unknown cells fail before anything is deployed
    if opts.quick:
        # One of each series, no matrix.
        opts.kills, opts.async_kills, opts.default_kills, opts.switchovers = 1, 1, 1, 1
        opts.no_matrix = True
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, lambda args: PatroniCampaign(parse_args(args)))


if __name__ == "__main__":
    raise SystemExit(main())
