"""`make chaos-sentinel`: cacheMode sentinel broken on purpose, under a Jepsen-style history.

What it runs against: a throwaway stack `e2e-<random>` in cacheMode sentinel (Redis primary,
replica, 3 Sentinels; pgha_testkit's `Deployment`, as the e2e suites use), destroyed at
the end; or, with `--stack`, an already deployed sentinel-mode stack of your own, left up.
Why a throwaway by default: the cells kill and freeze cache nodes and Sentinels, and a
failover moves the primary; nobody's dev stack should be left like that.

Every cell runs under the same load (pgha_testkit.history.HistoryLoad): writers PUT
increasing versions of a set of products, readers GET them. Cells: kill, stop and pause
of the Redis primary, of the replica and of one Sentinel; two Sentinels killed (nothing
else); and two Sentinels killed, then the primary, where no failover can happen (2 of 3
Sentinels must agree). The primary kill runs `--kill-runs` times (10: issue 21's goal is 0
stale reads in all of them).
Per cell:
- `server_errors`: API 5xx plus requests with no answer (the goal is 0);
- `stale_reads`: reads that started after a PUT of the product returned and saw an older
  version (the goal is 0);
- `hits_resume_s`: seconds from the fault to the first X-Cache: HIT after the longest
  run without hits (0.0: hits never paused over a second); the goal after a primary kill
  is down-after-milliseconds + 5 s;
- `write_stall_s`: p50, p99 and max of the PUTs' latency from the fault on, and
  `failed_writes`: PUTs sent from the fault on that did not answer 200;
- `failover`: whether the Sentinels named another primary by the time the cache was whole;
- `not_whole`: set if the cache did not become whole within 180 s of the lift (the run
  stops there and leaves the stack as it is).
Reports: bench/results/sentinel-chaos-<time>.json and .md. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pulumi import automation as auto

from bench.common import RESULTS_DIR, log
from bench.sentinel_report import hits_resume_s, server_errors, summary, write_report
from infra.sentinel_cfg import SentinelTimings
from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment
from pgha_testkit.env import ROOT, pulumi_env
from pgha_testkit.history import HistoryLoad, stale_reads
from pgha_testkit.poll import wait_until
from pgha_testkit.stack import NAMESPACE

FAULTS = ("kill", "stop", "pause")
MATRIX = tuple(f"{t}:{f}" for t in ("primary", "replica", "sentinel") for f in FAULTS) + (
    "sentinels2:kill",
    "sentinels2+primary:kill",
)
PRODUCTS = 20
# Writers pace slower than readers, so most reads find a filled entry and a pause of the
# hits is the cache's doing, not the load's; each product is still written every ~2 s.
WRITE_PACE_S = 0.2
READ_PACE_S = 0.02
BEFORE_S = 3.0
AFTER_S = 4.0
# A fault with no failover expected is held this long: past down-after-milliseconds, so
# a Sentinel that wrongly calls the primary down would have done so by then.
HOLD_S = 10.0
MAX_HOLD_S = 90.0


def resolve(d: Deployment, target: str, primary: str) -> list[str]:
    """Containers a target names at the moment of the fault (aliases like `redis-0`)."""
    replica = next(n for n in sentinel.NODES if n != primary)
    return {
        "primary": [primary],
        "replica": [replica],
        "sentinel": sentinel.SENTINELS[:1],
        "sentinels2": sentinel.SENTINELS[:2],
        "sentinels2+primary": [*sentinel.SENTINELS[:2], primary],
    }[target]


def inject(d: Deployment, names: Sequence[str], fault: str) -> None:
    for name in names:
        c = d.container(name)
        if fault == "kill":
            c.kill()
        elif fault == "stop":
            c.stop(timeout=10)
        else:
            c.pause()


def hold(d: Deployment, load: HistoryLoad, target: str, primary: str, t_fault: float) -> None:
    """Holds the fault: a primary fault until a Sentinel names another primary and a hit
    came after that (or MAX_HOLD_S); any other fault HOLD_S."""
    if target != "primary":
        time.sleep(HOLD_S)
        return
    survivor = sentinel.SENTINELS[-1]

    def promoted() -> bool:
        return sentinel.sentinel_primary(d, survivor) != primary

    try:
        wait_until(promoted, MAX_HOLD_S, "Sentinel to promote the replica")
    except AssertionError:
        return  # reported as no failover; the cell goes on with the lift
    seen = time.monotonic()

    def hit_after() -> bool:
        return any(r.cache == "HIT" and r.started > seen for r in list(load.history.reads))

    try:
        wait_until(hit_after, max(1.0, MAX_HOLD_S - (seen - t_fault)), "a hit after promotion")
    except AssertionError:
        return


def run_cell(d: Deployment, cell_name: str, pids: list[int]) -> dict[str, Any]:
    target, fault = cell_name.split(":")
    primary = sentinel.wait_whole(d, 180)
    names = resolve(d, target, primary)
    cell: dict[str, Any] = {"cell": cell_name, "targets": names, "primary_before": primary}
    load = HistoryLoad(
        d.api, pids, writers=2, readers=4, pace_s=READ_PACE_S, write_pace_s=WRITE_PACE_S
    )
    load.start()
    try:
        time.sleep(BEFORE_S)
        t_fault = time.monotonic()
        inject(d, names, fault)
        hold(d, load, target, primary, t_fault)
        if target == "sentinels2+primary":
            # Only one Sentinel is left: it may call the primary down, never fail it over.
            cell["survivor_sees"] = sentinel.sentinel_primary(d, sentinel.SENTINELS[-1])
        cell["held_s"] = round(time.monotonic() - t_fault, 2)
        sentinel.restart_stopped(d)
        time.sleep(AFTER_S)
    finally:
        load.stop()
        sentinel.restart_stopped(d)  # never leave a node down behind an aborted cell
    t0 = time.monotonic()
    try:
        cell["primary_after"] = sentinel.wait_whole(d, 180)
        cell["whole_after_s"] = round(time.monotonic() - t0, 2)
    except AssertionError as exc:
        # The cell's figures still count; the run stops after it (main), with the stack
        # left as it is for a look.
        cell["not_whole"] = f"{exc}"[:300]
        cell["sentinel_logs"] = {k: v[-600:] for k, v in sentinel.logs(d, 8).items()}
    cell["failover"] = cell.get("primary_after", primary) != primary
    h = load.history
    cell["server_errors"] = server_errors(h.statuses)
    cell["statuses"] = {str(k): v for k, v in sorted(h.statuses.items())}
    stale = stale_reads(h.writes, h.reads)
    cell["stale_reads"] = len(stale)
    # For diagnosis: when each stale read started relative to the fault, how it was served,
    # the version it saw and the newest one acknowledged before it started.
    cell["stale_timeline"] = [
        (round(r.started - t_fault, 2), r.cache, r.version, newest) for r, newest in stale[:20]
    ]
    cell["hits_resume_s"] = hits_resume_s(h.reads, t_fault)
    cell["reads_by_cache"] = dict(Counter(r.cache for r in h.reads))
    cell["writes"] = len(h.writes)
    # What a failover costs writes (issue 21: a fence counts once the Redis replica has it,
    # else it goes to the fence log and the write waits for a drain or a lease).
    during = [w.took for w in h.writes if w.acked >= t_fault]
    cell["write_stall_s"] = stall(during)
    cell["failed_writes"] = len([t for t in h.failed_writes if t >= t_fault])
    log(f"{cell_name}: " + ", ".join(f"{k}={cell.get(k)}" for k in REPORTED))
    return cell


REPORTED = (
    "server_errors",
    "stale_reads",
    "hits_resume_s",
    "failover",
    "write_stall_s",
    "failed_writes",
)


def stall(latencies: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max of write latencies (s), nearest rank; None without writes."""
    if not latencies:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(latencies)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"p50": rank(0.5), "p99": rank(0.99), "max": ordered[-1]}


def plan(opts: argparse.Namespace) -> list[str]:
    """The cells in order, with the primary kill repeated `--kill-runs` times."""
    cells = [c for c in opts.cells.split(",") if c] if opts.cells else list(MATRIX)
    unknown = [c for c in cells if c not in MATRIX]
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; known: {', '.join(MATRIX)}")
    out: list[str] = []
    for c in cells:
        out += [c] * (opts.kill_runs if c == "primary:kill" else 1)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.sentinel_chaos", description=__doc__)
    p.add_argument("--stack", help="a deployed cacheMode sentinel stack (default: a throwaway)")
    p.add_argument("--cells", help=f"comma-separated cells (default all: {', '.join(MATRIX)})")
    p.add_argument("--kill-runs", type=int, default=10, help="runs of primary:kill (10)")
    return p.parse_args(argv)


def deployment_of(stack_name: str | None) -> tuple[Deployment, bool]:
    """The stack to break, and whether this run made it (and so destroys it)."""
    if stack_name is None:
        d = Deployment.throwaway(["pg-0", "pg-1"])
        d.up(cacheMode="sentinel")
        d.wait_streaming()
        return d, True
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
    opts = parse_args(argv)
    cells_to_run = plan(opts)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = RESULTS_DIR / f"sentinel-chaos-{run_id}"
    d, owned = deployment_of(opts.stack)
    cells: list[dict[str, Any]] = []
    meta: dict[str, Any] = {
        "run_id": run_id,
        "stack": d.stack.name,
        "command": " ".join(["python -m bench.sentinel_chaos", *(argv or sys.argv[1:])]),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "load": {"products": PRODUCTS, "writers": 2, "readers": 4, "write_pace_s": WRITE_PACE_S},
        "series": {},
    }
    try:
        meta["down_after_ms"] = down_after_ms(d)
        meta["goal_hits_resume_s"] = meta["down_after_ms"] / 1000 + 5
        sentinel.wait_whole(d, 180)
        with d.client() as http:
            pids = [d.write(http, f"sentinel-chaos-{run_id}-{i}") for i in range(PRODUCTS)]
        for name in cells_to_run:
            try:
                cells.append(run_cell(d, name, pids))
            except Exception as exc:  # noqa: BLE001 (recorded; the run stops after it)
                cells.append({"cell": name, "error": str(exc)[:300]})
                raise
            finally:
                write_report(stem, meta, cells)
            if "not_whole" in cells[-1]:
                log(f"{name}: the cache did not become whole again; stopping the run")
                break
    finally:
        kills = [c for c in cells if c.get("cell") == "primary:kill" and "error" not in c]
        meta["series"]["primary:kill hits_resume_s"] = summary([c["hits_resume_s"] for c in kills])
        meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        write_report(stem, meta, cells)
        if owned:
            log(f"teardown; left over: {d.teardown()}")
    log(f"report: {stem.with_suffix('.md')}")
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
