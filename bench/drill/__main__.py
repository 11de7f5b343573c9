"""`python -m bench.drill [--quick] [--mode manual|patroni]` (what `make drill` runs)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.common import log
from bench.drill import ledger, report, steps
from pgha_testkit import backup
from pgha_testkit.deployment import Deployment
from pgha_testkit.env import ROOT

SEED = 1000


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.drill", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="pgbench scale 1, short windows")
    parser.add_argument("--mode", choices=["manual", "patroni"], default="manual")
    parser.add_argument("--scale", type=int, default=None, help="pgbench scale (default 70)")
    parser.add_argument("--nodes", default="pg-0 pg-1", help="the PostgreSQL nodes")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    nodes = args.nodes.split()
    scale = args.scale or (1 if args.quick else 70)
    window = 10.0 if args.quick else 30.0
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    rep: dict[str, Any] = {
        "meta": {
            "run_id": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "command": "make drill " + " ".join(argv),
            "git_commit": commit,
            "mode": args.mode,
            "nodes": nodes,
            "loadavg_start": round(os.getloadavg()[0], 2),
        },
        "errors": [],
    }
    stacks: list[Deployment] = []

    def phase(name: str, body: Callable[[], None]) -> bool:
        log(f"drill: {name}")
        try:
            body()
            return True
        except Exception as exc:  # noqa: BLE001 - a drill reports a failed phase and goes on
            traceback.print_exc()
            rep["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            return False

    source = steps.deploy(nodes, args.mode)
    stacks.append(source)
    writer: ledger.Ledger | None = None
    probe: ledger.Probe | None = None
    try:
        primary = steps.leader(source, args.mode)
        rep["fill"] = steps.fill(source, primary, scale)
        ids = steps.seed(source, primary, SEED)
        writer = ledger.Ledger(source.api, prefix=f"ledger{int(time.time())}")
        probe = ledger.Probe(source.api, ids)
        writer.start()
        probe.start()
        run_backup_phases(rep, source, writer, probe, window)
        target_s = run_pitr(rep, source, writer, primary, nodes, args.mode, stacks, phase)
        if args.mode == "patroni":
            phase("replica from the repository", lambda: run_replicas(rep, source, primary))
        else:
            rep["replica"] = {"note": "failoverMode patroni only (create_replica_methods)"}
        phase("total loss", lambda: run_total_loss(rep, source, writer, nodes, args.mode, stacks))
        rep["pitr"]["target_epoch"] = target_s
    finally:
        for running in (writer, probe):
            if running:
                running.stop()
        for dep in reversed(stacks):
            steps.destroy(dep)
        rep["meta"]["loadavg_end"] = round(os.getloadavg()[0], 2)
        path = report.write(rep)
        log(f"drill report: {path} and {path.with_suffix('.md')}")
    return 1 if rep["errors"] else 0


def run_backup_phases(
    rep: dict[str, Any],
    source: Deployment,
    writer: ledger.Ledger,
    probe: ledger.Probe,
    window: float,
) -> None:
    """The API's p99 over a window without a backup, then during a full backup."""
    start = time.time()
    time.sleep(window)
    end = time.time()
    rep["baseline"] = {
        "window_s": round(end - start, 1),
        "api_get_p99_ms": ledger.p99(probe.latencies(start, end)),
        "api_post_p99_ms": ledger.p99(writer.latencies(start, end)),
    }
    taken = steps.full_backup(source)
    rep["backup"] = {
        "seconds": taken["seconds"],
        "api_get_p99_ms": ledger.p99(probe.latencies(taken["start"], taken["end"])),
        "api_post_p99_ms": ledger.p99(writer.latencies(taken["start"], taken["end"])),
        "label": (taken.get("last_backup") or {}).get("label"),
    }


def run_pitr(
    rep: dict[str, Any],
    source: Deployment,
    writer: ledger.Ledger,
    primary: str,
    nodes: list[str],
    mode: str,
    stacks: list[Deployment],
    phase: Callable[[str, Callable[[], None]], bool],
) -> float:
    """The operator's `DELETE FROM products` at T, and a restore to T - 1 s: exactness of
    the ledger and every deleted row back, in one restored stack."""
    time.sleep(5)
    # Whole seconds: the target is RFC 3339 to the second, and at least 1 s before T.
    target = float(int(time.time()) - 1)
    time.sleep(max(0.0, target + 1.2 - time.time()))
    deleted = int(
        source.sql(
            primary, "with d as (delete from pgha.products returning 1) select count(*) from d"
        )
    )
    rep["operator_error"] = {"deleted_at": time.time(), "deleted_rows": deleted}
    # Commits after the target must reach the archive for recovery to stop at it.
    time.sleep(3)
    code, text = backup.pgbackrest(source, "backup", "check")
    if code != 0:
        rep["errors"].append(f"pgbackrest check: {text}")
    entries = list(writer.entries)
    rep["pitr"] = {"target": steps.rfc3339(target)}

    def body() -> None:
        restored, timings = steps.restore(source, steps.rfc3339(target), nodes, mode)
        stacks.append(restored)
        first = nodes[0]
        present = steps.names(restored, first, writer.prefix)
        rep["pitr"].update(timings)
        rep["pitr"]["exactness"] = ledger.exactness(entries, present, target)
        seeds = int(
            restored.sql(first, "select count(*) from pgha.products where name like 'seed-%'")
        )
        rep["operator_error"].update({"seeded": SEED, "restored": seeds, "missing": SEED - seeds})
        steps.destroy(restored)
        stacks.remove(restored)

    phase("point-in-time restore to just before the DELETE", body)
    return target


def run_replicas(rep: dict[str, Any], source: Deployment, primary: str) -> None:
    """One replica rebuilt from the repository, then (repository stopped, so that method
    fails at once) by pg_basebackup, on the same database."""
    replica = next(n for n in source.replicas + [source.primary] if n != primary)
    result: dict[str, Any] = {"pgbackrest": steps.rebuild_replica(source, replica)}
    repo = source.container("backup")
    repo.stop(timeout=10)
    try:
        result["basebackup"] = steps.rebuild_replica(source, replica)
    finally:
        repo.start()
    rep["replica"] = result


def run_total_loss(
    rep: dict[str, Any],
    source: Deployment,
    writer: ledger.Ledger,
    nodes: list[str],
    mode: str,
    stacks: list[Deployment],
) -> None:
    """Every node and its volume gone with the ledger still writing; restore `latest`."""
    deleted_at = (rep.get("operator_error") or {}).get("deleted_at")
    time.sleep(5)
    loss = steps.lose_every_node(source, nodes)
    time.sleep(2)
    writer.stop()
    restored, timings = steps.restore(source, "latest", nodes, mode)
    stacks.append(restored)
    present = steps.names(restored, nodes[0], writer.prefix)
    rep["rpo"] = {
        # Only what existed at the loss: the operator-error phase deleted every earlier row.
        **ledger.rpo(list(writer.entries), present, loss, since=deleted_at),
        "up_s": timings["up_s"],
        "loss_to_writable_s": None
        if timings["writable_s"] is None
        else round(timings["writable_s"] + (timings["up_started"] - loss), 1),
    }
    steps.destroy(restored)
    stacks.remove(restored)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
