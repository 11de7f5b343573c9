"""`make chaos-sentinel`: cacheMode sentinel broken on purpose, under a Jepsen-style history
(the runner: runner.py).

What it runs against: a throwaway stack `e2e-<random>` in cacheMode sentinel (Redis primary,
replica, 3 Sentinels; pgha_testkit's `Deployment`, as the e2e suites use), destroyed at
the end; or, with `--stack`, an already deployed sentinel-mode stack of your own, left up.
Why a throwaway by default: the cells kill and freeze cache nodes and Sentinels, and a
failover moves the primary; nobody's dev stack should be left like that.

Every cell runs under a history load (pgha_testkit.history.HistoryLoad), not the ledger
load: writers PUT increasing versions of a set of products, readers GET them. Cells: kill,
stop and pause of the Redis primary, of the replica and of one Sentinel; two Sentinels
killed (nothing else); and two Sentinels killed, then the primary, where no failover can
happen (2 of 3 Sentinels must agree). The primary kill runs `--kill-runs` times (10:
issue 21's goal is 0 stale reads in all of them). A primary fault is held until a Sentinel
names another primary and a hit came after that; any other fault `hold` seconds.
Checks per cell:
- `server_errors`: API 5xx plus requests with no answer (the goal is 0);
- `stale_reads`: reads that started after a PUT of the product returned and saw an older
  version (the goal is 0);
- `hits_resume_s`: seconds from the fault to the first X-Cache: HIT after the longest
  run without hits (0.0: hits never paused over a second); the goal after a primary kill
  is down-after-milliseconds + 5 s;
- `write_stall_s`: p50, p99 and max of the PUTs' latency from the fault on, and
  `failed_writes`: PUTs sent from the fault on that did not answer 200;
- `failover`: whether the Sentinels named another primary by the time the cache was whole.
Reports: bench/results/sentinel-chaos-<time>.json and .md. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from pulumi import automation as auto

from bench.chaos import faults
from bench.chaos.cli import common_args, launch, parse_cells, phases
from bench.chaos.figures import hits_resume_s, server_errors, stall
from bench.chaos.runner import Cell, CellRun, OnDeployment, Phases
from bench.common import log
from infra.sentinel_cfg import SentinelTimings
from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment
from pgha_testkit.env import ROOT, pulumi_env
from pgha_testkit.history import HistoryLoad, stale_reads
from pgha_testkit.poll import wait_until
from pgha_testkit.stack import NAMESPACE

KNOWN = (
    *(f"{t}:{f}" for t in ("primary", "replica", "sentinel") for f in faults.FAULTS),
    "sentinels2:kill",
    "sentinels2+primary:kill",
)
QUICK_CELLS = "primary:kill,replica:pause"
PRODUCTS = 20
# Writers pace slower than readers, so most reads find a filled entry and a pause of the
# hits is the cache's doing, not the load's; each product is still written every ~2 s.
WRITE_PACE_S = 0.2
READ_PACE_S = 0.02
# A fault with no failover expected is held `hold`: past down-after-milliseconds, so a
# Sentinel that wrongly calls the primary down would have done so by then.
PHASES = Phases(before=3.0, hold=10.0, after=4.0)
MAX_HOLD_S = 90.0
SERIES_KILL = "primary:kill hits_resume_s"


class SentinelCampaign(OnDeployment):
    name = "sentinel-chaos"
    module = "bench.chaos.sentinel"
    load_spec = None  # the history load below is the cell's only load
    check_columns = (
        ("5xx", "server_errors"),
        ("stale", "stale_reads"),
        ("hits resume (s after fault)", "hits_resume_s"),
        ("failover", "failover"),
        ("primary before", "primary_before"),
        ("primary after", "primary_after"),
        ("reads HIT/MISS/BYPASS", "caches"),
        ("writes", "writes"),
        ("write stall p50/p99/max (s)", "write_stall_s"),
        ("failed writes", "failed_writes"),
    )

    def __init__(self, opts: argparse.Namespace) -> None:
        d, self.owned = deployment_of(opts.stack)
        super().__init__(phases(opts, PHASES, PHASES), d)
        self.opts = opts
        self.plan = plan(opts)
        self.primary = ""

    def setup(self, meta: dict[str, Any]) -> None:
        if self.owned:
            log(f"deploying {self.d.stack.name} (cacheMode sentinel)")
            self.d.up(cacheMode="sentinel")
            self.d.wait_streaming()
        meta["down_after_ms"] = down_after_ms(self.d)
        meta["goal_hits_resume_s"] = meta["down_after_ms"] / 1000 + 5
        meta["history_load"] = {
            "products": PRODUCTS,
            "writers": 2,
            "readers": 4,
            "write_pace_s": WRITE_PACE_S,
        }
        sentinel.wait_whole(self.d, 180)
        with self.d.client() as http:
            name = f"sentinel-chaos-{self.run_id}"
            self.seed_ids = [self.d.write(http, f"{name}-{i}") for i in range(PRODUCTS)]

    def teardown(self, meta: dict[str, Any], ok: bool) -> None:
        if self.owned:
            log(f"teardown; left over: {self.d.teardown()}")

    def cells(self) -> Iterator[Cell]:
        for c in self.plan:
            yield Cell(c.target, c.fault, "", SERIES_KILL if c.name == "primary:kill" else "")

    def begin(self, run: CellRun) -> None:
        self.primary = sentinel.wait_whole(self.d, 180)
        run.history = HistoryLoad(
            self.d.api,
            self.seed_ids,
            writers=2,
            readers=4,
            pace_s=READ_PACE_S,
            write_pace_s=WRITE_PACE_S,
        )
        run.history.start()

    def resolve(self, cell: Cell) -> list[str]:
        """Containers a target names at the moment of the fault."""
        replica = next(n for n in sentinel.NODES if n != self.primary)
        roles = {
            "primary": [self.primary],
            "replica": [replica],
            "sentinel": sentinel.SENTINELS[:1],
            "sentinels2": sentinel.SENTINELS[:2],
            "sentinels2+primary": [*sentinel.SENTINELS[:2], self.primary],
        }[cell.target]
        return [self.d.container_name(r) for r in roles]

    def hold(self, run: CellRun) -> None:
        """A primary fault until a Sentinel names another primary and a hit came after that
        (or MAX_HOLD_S); any other fault `hold` seconds."""
        if run.cell.target != "primary":
            super().hold(run)
            if run.cell.target == "sentinels2+primary":
                # Only one Sentinel is left: it may call the primary down, never fail over.
                survivor = sentinel.sentinel_primary(self.d, sentinel.SENTINELS[-1])
                run.record["survivor_sees"] = survivor
            return
        survivor = sentinel.SENTINELS[-1]
        old = self.primary

        def promoted() -> bool:
            return sentinel.sentinel_primary(self.d, survivor) != old

        try:
            wait_until(promoted, MAX_HOLD_S, "Sentinel to promote the replica")
        except AssertionError:
            return  # reported as no failover; the cell goes on with the lift
        seen = time.monotonic()
        history = run.history

        def hit_after() -> bool:
            reads = list(history.history.reads) if history else []
            return any(r.cache == "HIT" and r.started > seen for r in reads)

        left = max(1.0, MAX_HOLD_S - (seen - run.t_fault))
        try:
            wait_until(hit_after, left, "a hit after promotion")
        except AssertionError:
            return

    def lift(self, run: CellRun) -> None:
        sentinel.restart_stopped(self.d)

    def wait_whole(self) -> None:
        self.primary_after = sentinel.wait_whole(self.d, 180)

    def ledger_container(self) -> str:
        raise NotImplementedError("no ledger load in this campaign")

    def path_ok(self, run: CellRun, http: httpx.Client, probe: str) -> bool:
        """A read through the cache: a hit or a miss that filled it."""
        try:
            res = http.get(f"/products/{self.seed_ids[0]}")
            return res.status_code == 200 and res.headers.get("X-Cache") in ("HIT", "MISS")
        except httpx.HTTPError:
            return False

    def checks(self, run: CellRun) -> dict[str, Any]:
        assert run.history is not None
        h, t_fault = run.history.history, run.t_fault
        after = getattr(self, "primary_after", None) if "not_whole" not in run.record else None
        stale = stale_reads(h.writes, h.reads)
        caches = Counter(r.cache for r in h.reads)
        return {
            "primary_before": self.primary,
            "primary_after": after,
            "failover": (after or self.primary) != self.primary,
            "survivor_sees": run.record.pop("survivor_sees", None),
            "server_errors": server_errors(h.statuses),
            "statuses": {str(k): v for k, v in sorted(h.statuses.items())},
            "stale_reads": len(stale),
            # For diagnosis: when each stale read started relative to the fault, how it was
            # served, the version it saw and the newest one acknowledged before it started.
            "stale_timeline": [
                (round(r.started - t_fault, 2), r.cache, r.version, newest)
                for r, newest in stale[:20]
            ],
            "hits_resume_s": hits_resume_s(h.reads, t_fault),
            "reads_by_cache": dict(caches),
            "caches": f"{caches['HIT']}/{caches['MISS']}/{caches['BYPASS']}",
            "writes": len(h.writes),
            # What a failover costs writes (issue 21: a fence counts once the Redis replica
            # has it, else it goes to the fence log and the write waits for a drain).
            "write_stall_s": stall([w.took for w in h.writes if w.acked >= t_fault]),
            "failed_writes": len([t for t in h.failed_writes if t >= t_fault]),
        }

    def series_value(self, record: dict[str, Any]) -> float | None:
        value: float | None = (record.get("checks") or {}).get("hits_resume_s")
        return value


def plan(opts: argparse.Namespace) -> list[Cell]:
    """The cells in order, with the primary kill repeated `--kill-runs` times."""
    text = opts.cells or (QUICK_CELLS if opts.quick else ",".join(KNOWN))
    out: list[Cell] = []
    for c in parse_cells(text, KNOWN):
        out += [c] * (opts.kill_runs if c.name == "primary:kill" else 1)
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos.sentinel", description=__doc__)
    p.add_argument("--stack", help="a deployed cacheMode sentinel stack (default: a throwaway)")
    common_args(p)
    p.add_argument("--kill-runs", type=int, default=10, help="runs of primary:kill (10)")
    opts = p.parse_args(argv)
    if opts.quick and "--kill-runs" not in argv:
        opts.kill_runs = 1
    plan(opts)  # unknown cells fail before anything is deployed
    return opts


def deployment_of(stack_name: str | None) -> tuple[Deployment, bool]:
    """The stack to break, and whether this run made it (and so destroys it)."""
    if stack_name is None:
        return Deployment.throwaway(["pg-0", "pg-1"]), True  # deployed by setup
    stack = auto.select_stack(
        stack_name=stack_name,
        work_dir=str(ROOT),
        opts=auto.LocalWorkspaceOptions(env_vars=pulumi_env()),
    )
    d = Deployment(stack)
    d.refresh_outputs()
    return d, False


def down_after_ms(d: Deployment) -> int:
    try:
        return int(d.stack.get_config(f"{NAMESPACE}:sentinelDownAfterMs").value)
    except auto.CommandError:
        return SentinelTimings().down_after_ms


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, lambda args: SentinelCampaign(parse_args(args)))


if __name__ == "__main__":
    raise SystemExit(main())
