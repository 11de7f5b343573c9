"""`make chaos-patroni`: failoverMode patroni broken on purpose, on a throwaway 3-node stack.

What it starts: a stack `e2e-<random>` in failoverMode patroni, three PostgreSQL nodes,
synchronous mode on (pgha_testkit's `Deployment`, as the e2e suites use), destroyed at
the end. Why a throwaway: the cells kill, pause and cut off nodes and swap Patroni's
timings live; nobody's dev stack should be left like that.

Everything runs under the same mixed load through the API (2 writers, 2 readers), with
a Jepsen-style ledger of acknowledged writes checked on the leader after each cell:
- series: leader kill x5 in synchronous mode (the RTO goal: median <= 10 s, max <= 15 s,
  0 lost); x3 asynchronous (lost writes and the lag at the kill, not hidden); x2 with
  Patroni's default timings PATCHed in live (ttl 30, loop_wait 10, retry_timeout 10),
  for the ratio; switchover by config (`pgha:primary`) x3;
- the matrix: kill, stop and pause of the leader, a replica, one etcd member and two,
  plus the leader's partition (`docker network disconnect`), each with its write
  outage, lost writes and a split-brain flag from node samples every 0.25 s.
Reports: bench/results/chaos-patroni-<time>.json and .md. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, log, run, utc_now
from bench.patroni_report import (
    NodeState,
    Sample,
    first_write_after,
    split_brain_samples,
    summary,
    write_outage,
    write_report,
)
from infra import outputs as out
from infra.patroni_cfg import LOOP_WAIT_S, RETRY_TIMEOUT_S, TTL_S
from pgha_testkit import patroni
from pgha_testkit.deployment import Deployment
from pgha_testkit.env import ROOT
from pgha_testkit.ledger import Ledger, check
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import wait_until

NODES = ("pg-0", "pg-1", "pg-2")
MATRIX = tuple(
    (target, fault)
    for target in ("leader", "replica", "etcd1", "etcd2")
    for fault in ("kill", "stop", "pause")
) + (("leader", "partition"),)
# Patroni's documented defaults, against ours (infra/patroni_cfg.py).
PATRONI_DEFAULTS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
OURS = {"ttl": TTL_S, "loop_wait": LOOP_WAIT_S, "retry_timeout": RETRY_TIMEOUT_S}
# A fault is held at least this long (a partition: three ttls, as the e2e test), and
# past the first write that succeeds after it, up to max_hold.
MIN_HOLD_S = 10.0
PARTITION_HOLD_S = 3.0 * TTL_S
SAMPLE_EVERY_S = 0.25
LAG_SQL = (
    "select coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::bigint"
    " from pg_stat_replication"
)


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


def resolve(d: Deployment, target: str) -> list[str]:
    """The container roles a target names, at the moment of the fault."""
    leader = patroni.leader(d)
    if target == "leader":
        return [leader]
    if target == "replica":
        members = patroni.members(d)
        sync = [m["name"] for m in members if m.get("role") == "sync_standby"]
        return sync[:1] or [n for n in patroni.pg_nodes(d) if n != leader][:1]
    etcd = patroni.etcd_members(d)
    return etcd[: int(target.removeprefix("etcd"))]


def inject(d: Deployment, roles: Sequence[str], fault: str, lift: bool = False) -> None:
    network = d.docker.networks.get(d.outputs[out.NETWORK])
    for role in roles:
        c = d.container(role)
        if fault == "partition":
            if lift:
                network.connect(c, aliases=[role])
            else:
                network.disconnect(c)
        elif fault == "pause":
            c.unpause() if lift else c.pause()
        elif lift:
            c.start()
        elif fault == "kill":
            c.kill()
        else:
            c.stop()


def wait_etcd_healthy(d: Deployment, timeout: float = 120) -> None:
    def healthy() -> bool:
        states = [d.container(m).attrs["State"].get("Health", {}) for m in patroni.etcd_members(d)]
        return all(s.get("Status") == "healthy" for s in states)

    wait_until(healthy, timeout, "every etcd member healthy")


def run_cell(
    d: Deployment, target: str, fault: str, *, mode: str, max_hold: float = 60.0
) -> dict[str, Any]:
    """One fault under load: inject, hold, lift, wait for the whole cluster, measure."""
    tag = f"pc-{target}-{fault}-{time.monotonic_ns()}"
    ledger = Ledger()
    cell: dict[str, Any] = {"cell": f"{target}:{fault}", "mode": mode}
    load = Load(d.api, tag, LoadSpec(writers=2, readers=2), ledger=ledger)
    with load:
        time.sleep(2)
        roles = resolve(d, target)
        leader = patroni.leader(d)
        cell["targets"] = roles
        cell["leader_before"] = leader
        cell["lag_bytes"] = int(d.sql(leader, LAG_SQL, db="postgres") or 0)
        t_fault = time.monotonic()
        sampler = Sampler(d, t_fault)
        sampler.start()
        inject(d, roles, fault)
        t_done = time.monotonic()
        hold = PARTITION_HOLD_S if fault == "partition" else MIN_HOLD_S
        while time.monotonic() - t_fault < max_hold:
            held = time.monotonic() - t_fault
            resumed = first_write_after(load.of_kind("write"), t_fault, t_done)
            if held >= hold and resumed is not None:
                break
            time.sleep(0.25)
        cell["held_s"] = round(time.monotonic() - t_fault, 2)
        inject(d, roles, fault, lift=True)
        try:
            patroni.wait_whole(d, 180)
            wait_etcd_healthy(d)
            cell["recovered"] = True
        except Exception as exc:  # noqa: BLE001 (reported in the cell; the run stops)
            cell["recovered"] = False
            cell["error"] = str(exc)[:300]
        time.sleep(2)
        sampler.halt.set()
        sampler.join()
    events = load.events
    writes = [e for e in events if e.kind == "write"]
    cell["first_write_s"] = first_write_after(writes, t_fault, t_done)
    cell["fault_call_s"] = round(t_done - t_fault, 2)
    cell["write_outage_s"] = write_outage(events)
    cell["failed_writes"] = sum(not e.ok for e in writes)
    cell["failed_reads"] = sum(not e.ok for e in events if e.kind == "read")
    brain = split_brain_samples(sampler.samples)
    cell["split_brain"] = bool(brain)
    cell["split_brain_at_s"] = brain[:5]
    cell["samples"] = len(sampler.samples)
    leader_after = patroni.leader(d)
    cell["leader_after"] = leader_after
    if leader_after:
        result = check(ledger, d.container_name(leader_after), tag, client=d.docker)
        cell.update({"acked": result.acked, "lost": result.lost})
    log(f"{cell['cell']} ({mode}): " + ", ".join(f"{k}={cell.get(k)}" for k in REPORTED))
    return cell


REPORTED = ("first_write_s", "write_outage_s", "failed_writes", "lost", "split_brain")


def patch_config(d: Deployment, settings: dict[str, object]) -> None:
    status, body = patroni.request(d, patroni.leader(d), "PATCH", "/config", settings)
    if status != 200:
        raise RuntimeError(f"PATCH /config {settings} answered {status}: {body}")
    # Each node picks the change up on its next HA loop: up to loop_wait away, which is
    # Patroni's default's 10 s when switching back from them.
    time.sleep(2 * PATRONI_DEFAULTS["loop_wait"])


def switchover_cell(d: Deployment) -> dict[str, Any]:
    """`pgha:primary` set to the synchronous standby, by `pulumi up`, under load."""
    target = resolve(d, "replica")[0]
    tag = f"pc-switchover-{time.monotonic_ns()}"
    ledger = Ledger()
    load = Load(d.api, tag, LoadSpec(writers=2, readers=2), ledger=ledger)
    with load:
        time.sleep(2)
        started = time.monotonic()
        d.up(primary=target)
        took = time.monotonic() - started
        patroni.wait_whole(d, 180)
        time.sleep(2)
    writes = load.of_kind("write")
    result = check(ledger, d.container_name(patroni.leader(d)), tag, client=d.docker)
    cell = {
        "cell": f"switchover:{target}",
        "mode": "sync",
        "pulumi_up_s": round(took, 2),
        "write_outage_s": write_outage(load.events),
        "failed_writes": sum(not e.ok for e in writes),
        "failed_reads": sum(not e.ok for e in load.events if e.kind == "read"),
        "acked": result.acked,
        "lost": result.lost,
        "leader_after": patroni.leader(d),
    }
    log(f"switchover to {target}: " + ", ".join(f"{k}={cell.get(k)}" for k in cell))
    return cell


def lost_total(cells: Sequence[dict[str, Any]]) -> int | None:
    lost = [c.get("lost") for c in cells]
    return None if any(v is None for v in lost) else sum(int(v or 0) for v in lost)


def run_series(
    d: Deployment,
    opts: argparse.Namespace,
    meta: dict[str, Any],
    cells: list[dict[str, Any]],
    stem: Path,
) -> None:
    """Switchovers, then leader kills: synchronous, asynchronous, with Patroni's defaults."""

    def series(name: str, batch: list[dict[str, Any]], key: str = "first_write_s") -> None:
        cells.extend(batch)
        meta["series"][name] = {**summary([c.get(key) for c in batch]), "lost": lost_total(batch)}
        write_report(stem, meta, cells)

    series(
        "switchover by config: write outage",
        [switchover_cell(d) for _ in range(opts.switchovers)],
        key="write_outage_s",
    )
    series(
        "leader kill, synchronous: RTO",
        [run_cell(d, "leader", "kill", mode="sync") for _ in range(opts.kills)],
    )
    patch_config(d, {"synchronous_mode": False})
    series(
        "leader kill, asynchronous: RTO",
        [run_cell(d, "leader", "kill", mode="async") for _ in range(opts.async_kills)],
    )
    patch_config(d, {"synchronous_mode": True, **PATRONI_DEFAULTS})
    series(
        "leader kill, Patroni defaults: RTO",
        [
            run_cell(d, "leader", "kill", mode="sync, defaults", max_hold=150)
            for _ in range(opts.default_kills)
        ],
    )
    patch_config(d, dict(OURS))
    ours = meta["series"]["leader kill, synchronous: RTO"]["median"]
    theirs = meta["series"]["leader kill, Patroni defaults: RTO"]["median"]
    meta["defaults_ratio"] = round(theirs / ours, 1) if ours and theirs else None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.patroni_chaos", description=__doc__)
    parser.add_argument("--kills", type=int, default=5, help="synchronous leader kills")
    parser.add_argument("--async-kills", type=int, default=3)
    parser.add_argument("--default-kills", type=int, default=2, help="with Patroni defaults")
    parser.add_argument("--switchovers", type=int, default=3)
    parser.add_argument("--no-matrix", action="store_true", help="series only")
    parser.add_argument("--quick", action="store_true", help="one of each series, no matrix")
    parser.add_argument(
        "--cells", help="only these matrix cells, no series: e.g. leader:pause,etcd2:kill"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    cells_only = [tuple(c.split(":", 1)) for c in (opts.cells or "").split(",") if c]
    unknown = [c for c in cells_only if c not in MATRIX]
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; known: {MATRIX}")
    if opts.quick:
        opts.kills, opts.async_kills, opts.default_kills, opts.switchovers = 1, 1, 1, 1
        opts.no_matrix = True
    stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
    stem = RESULTS_DIR / f"chaos-patroni-{stamp}"
    git = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], timeout=30, check=False)
    meta: dict[str, Any] = {
        "started_at": utc_now().isoformat(),
        "command": " ".join(["python", "-m", "bench.patroni_chaos", *argv]),
        "git_commit": git.stdout.strip() or None,
        "nodes": list(NODES),
        "host": {"cores": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
        "timings": OURS,
        "series": {},
    }
    cells: list[dict[str, Any]] = []
    d = Deployment.throwaway(NODES)
    try:
        log(f"deploying {d.stack.name} (patroni, synchronous, {len(NODES)} nodes)")
        d.up(failoverMode="patroni", synchronous="true")
        patroni.wait_whole(d, 180)
        meta["stack"] = d.stack.name

        if not cells_only:
            run_series(d, opts, meta, cells, stem)
        if not opts.no_matrix:
            for target, fault in cells_only or MATRIX:
                cell = run_cell(d, target, fault, mode="sync")
                cells.append(cell)
                write_report(stem, meta, cells)
                if not cell.get("recovered"):
                    log(f"the cluster did not recover after {target}:{fault}; stopping")
                    break
    finally:
        meta["finished_at"] = utc_now().isoformat()
        # Other stacks on a 2-core host stretch every timing: say how busy it was.
        meta["host"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        write_report(stem, meta, cells)
        log(f"report: {stem}.md")
        left = d.teardown()
        if any(left.values()):
            log(f"left behind: {left}")
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
