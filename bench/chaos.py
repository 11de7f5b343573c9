"""Fault matrix against a deployed pgha stack: ``python -m bench.chaos --stack <stack>``.

What ``make chaos`` runs. For each cell (a fault on one component) a mixed load runs through
the API: writers POST products with unique names, readers GET products by id. The fault is
injected with the Docker API, held, lifted, and the load goes on for a while. Per cell:

* errors by status code (or transport error), for writes and reads;
* the longest error streak: from the start of the first failing request to the end of the
  last one with no success in between (seconds), for writes and reads;
* how long after the fault is lifted the first 2xx completes;
* ``recover_s``: from the moment the fault is lifted and the container is healthy to the
  first success of the path that needs it (a list read from the replica, a write, a cache
  hit or miss, both database paths through HAProxy, any read through the API), under the
  load (``traffic``) and again without it (``quiet``: the fault is repeated with no load,
  and one request at a time is sent only once the container is healthy). The goal is 2 s;
  the report lists every cell above it;
* how long until the stack is whole again (every container up, every replica streaming
  from the primary, the API ready);
* a Jepsen-style integrity check: every name the API acknowledged with 201 must be on the
  primary under the id it returned (``lost`` otherwise); names written more than once
  (``duplicated``) and writes that failed for the client but did commit (``indeterminate``,
  the expected outcome of a broken connection during COMMIT) are counted too.

Faults: ``kill`` (SIGKILL; Docker does not restart a container killed through its API, but
if it ever does, the cell records ``auto_restarted``), ``stop`` (graceful) and ``pause``
(frozen: connections hang instead of being refused). Targets: redis, the replica, the
primary, haproxy and the api: 15 cells. Lifting means ``docker start`` or ``unpause``; the
next cell starts only once the stack is whole again.

A kill of the primary that is then restarted loses nothing even with asynchronous
replication: its own WAL was flushed at each commit. What asynchronous replication can lose
is what the replica had not received when the primary died *and the replica is promoted*,
so the matrix adds ``kill+failover`` on the primary (kill, fail over to the replica through
``pgha:primary`` and ``pulumi up``, restart the old primary, which rejoins as a replica, then
switch back). Both primary-kill cells also run with ``pgha:synchronous`` flipped; the
stack's config is restored at the end, also on failure. ``api:cut+kill`` cuts the first API
instance off from Redis alone (a DROP rule in its network namespace) for half the hold, then
kills it, under a history of PUTs and GETs of a few seed products: the cell's ``history``
counts the stale reads, which must be 0 (issue 21: its writes' fences outlive it).

Load goes only to 127.0.0.1 and the stack's own containers. Every loop is bounded in count
and in time. Results: ``bench/results/chaos-<UTC timestamp>.{md,json}``, rewritten after each
cell, so an aborted run still leaves what it measured, plus ``-pulumi.log``. Figures, never
assertions. The products a run writes are deleted after it succeeds (``--keep-rows`` keeps
them); ``--quick`` runs four cells with shorter phases, ``--cells`` any list of cells.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
from docker.models.containers import Container

from bench.chaos_report import markdown, summarize, write_report
from bench.chaos_stack import (
    CUT_KILL,
    FAILOVER,
    WHOLE_TIMEOUT_S,
    Pulumi,
    inject,
    lift,
    wait_whole,
    watch_whole,
)
from bench.common import RESULTS_DIR as RESULTS
from pgha_testkit import ledger
from pgha_testkit.history import HistoryLoad, stale_reads
from pgha_testkit.instance import cut_off
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.nodes import docker_client
from pgha_testkit.poll import NotYet, wait_until
from pgha_testkit.stack import Outputs, StackError, load_outputs

TARGETS = ("redis", "replica", "primary", "haproxy", "api")
FAULTS = ("kill", "stop", "pause")
QUICK_CELLS = (("redis", "kill"), ("replica", "stop"), ("primary", "pause"), ("api", "kill"))
# The load of every cell: the harness defaults (2 writers, 2 readers, 2 s client timeout,
# paced for a 2-core host); the deadline is set per cell from its phases.
LOAD = LoadSpec()
SEED_PRODUCTS = 20
# How long recover_s waits for the path before it records "never", and its resolution.
RECOVER_TIMEOUT_S = 60.0
RECOVER_POLL_S = 0.1


def log(message: str) -> None:
    sys.stderr.write(f"chaos {time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()


def load_stack(name: str) -> Outputs:
    # No secrets: chaos needs endpoints and container names, never a password.
    try:
        stack = load_outputs(name, with_secrets=False)
    except StackError as exc:
        raise SystemExit(str(exc)) from exc
    if not stack.api_url.startswith("http://127.0.0.1:"):
        # The load must only ever reach our own loopback-published API.
        raise SystemExit(f"refusing to load {stack.api_url}: chaos only targets 127.0.0.1")
    return stack


# --- one cell -------------------------------------------------------------------------


@dataclass
class Durations:
    before: float
    hold: float
    after: float


@dataclass
class Run:
    # Replaced (never mutated) when a cell or a config flip changes the layout.
    stack: Outputs
    pulumi: Pulumi
    durations: Durations
    run_id: str
    seed_ids: list[int]
    cells: list[dict[str, Any]] = field(default_factory=list)
    # Config keys this run has set, so they are restored even after a failed `pulumi up`.
    changed: set[str] = field(default_factory=set)
    # Repeat each fault without load to time recovery with no traffic (--no-quiet skips it).
    quiet: bool = True


def healthy_at(container: Container) -> float:
    """Blocks until the container runs and Docker calls it healthy; returns when that was."""

    def healthy() -> bool:
        container.reload()
        state = container.attrs["State"]
        health = (state.get("Health") or {}).get("Status")
        if state["Status"] != "running" or health not in ("healthy", None):
            raise NotYet(f"{state['Status']}/{health}")
        return True

    wait_until(healthy, WHOLE_TIMEOUT_S, f"{container.name} healthy", interval=RECOVER_POLL_S)
    return time.monotonic()


def path_ok(http: httpx.Client, target: str, seed_id: int, name: str) -> bool:
    """Whether the request that needs `target` is served as it should be right now."""
    try:
        if target == "replica":
            res = http.get("/products", params={"limit": 1})  # lists are never cached
            return res.status_code == 200 and res.headers.get("X-Read-Source") == "replica"
        if target == "primary":
            body = {"name": name, "price": "1", "stock": 0}
            return http.post("/products", json=body).status_code == 201
        if target == "redis":
            res = http.get(f"/products/{seed_id}")
            return res.status_code == 200 and res.headers.get("X-Cache") in ("HIT", "MISS")
        if target == "haproxy":
            return all(path_ok(http, t, seed_id, name) for t in ("replica", "primary"))
        return http.get(f"/products/{seed_id}").status_code == 200
    except httpx.HTTPError:
        return False


def time_to_recover(run: Run, container: Container, target: str, name: str) -> float | None:
    """Seconds from "healthy" to the first success of the path that needs the target, with
    one request at a time; None if it never succeeds within RECOVER_TIMEOUT_S."""
    t_healthy = healthy_at(container)
    with httpx.Client(base_url=run.stack.api_url, timeout=LOAD.timeout_s) as http:
        for n in itertools.count():
            if path_ok(http, target, run.seed_ids[0], f"{name}-{n}"):
                return round(time.monotonic() - t_healthy, 2)
            if time.monotonic() - t_healthy > RECOVER_TIMEOUT_S:
                return None
            time.sleep(RECOVER_POLL_S)
    raise AssertionError("unreachable")


def quiet_recovery(run: Run, target: str, fault: str, name: str) -> float | None:
    """The cell's fault once more, with no load at all: nothing sees the outage, and the
    first request comes once the container is healthy (the case traffic used to hide)."""
    container = docker_client().containers.get(run.stack.container_of(target))
    inject(container, fault)
    try:
        time.sleep(run.durations.hold)
    finally:
        lift(container)
    recovered = time_to_recover(run, container, target, name)
    wait_whole(run.stack)
    return recovered


def cut_then_kill(run: Run, container: Container, cell: dict[str, Any]) -> HistoryLoad:
    """The CUT_KILL fault: a history of PUTs and GETs of the seed products starts, the API
    instance loses Redis alone for half the hold (its writes' fences cannot reach Redis
    from it), and is killed while still cut off. Returns the running history."""
    history = HistoryLoad(run.stack.api_url, run.seed_ids[:4], writers=2, readers=2, pace_s=0.02)
    history.start()
    redis = run.stack.container_of("redis")
    with cut_off(docker_client().api, container.name, redis):
        time.sleep(run.durations.hold / 2)
        acked_before = len(history.history.writes)
        container.kill()
        cell["killed_at"] = time.monotonic()
    cell["writes_acked_while_cut"] = acked_before
    return history


def run_cell(run: Run, target: str, fault: str) -> dict[str, Any]:
    layout, d = run.stack, run.durations  # the layout every cell starts and ends with
    mode = "sync" if layout.synchronous else "async"
    # The cell's index too: a cell run twice must not count the first one's rows as its own.
    tag = f"chaos-{run.run_id}-{len(run.cells)}-{target}-{fault.replace('+', '-')}-{mode}"
    container = docker_client().containers.get(layout.container_of(target))
    started_at = container.attrs["State"]["StartedAt"]
    cell: dict[str, Any] = {"target": target, "fault": fault, "mode": mode, "tag": tag}
    log(f"{target} {fault} ({mode}): {d.before:.0f}+{d.hold:.0f}+{d.after:.0f}s")

    spec = replace(LOAD, deadline_s=d.before + d.hold + d.after + 600)
    load = Load(layout.api_url, tag, spec, seed_ids=run.seed_ids)
    t0 = time.monotonic()
    lifted = False
    whole: dict[str, float | str] = {}
    history: HistoryLoad | None = None
    load.start()
    try:
        time.sleep(d.before)
        t_fault = time.monotonic()
        if fault == CUT_KILL:
            history = cut_then_kill(run, container, cell)
        else:
            inject(container, fault)
        cell["inject_s"] = round(time.monotonic() - t_fault, 2)
        if fault == FAILOVER:
            # The operator's failover: promote the replica through stack config.
            new_primary = layout.replicas[0]
            run.changed.add("primary")
            cell["failover_up_s"] = round(run.pulumi.up(primary=new_primary), 2)
            cell["up_replaced"] = run.pulumi.last_replaced
            run.stack = replace(
                layout, primary=new_primary, replicas=(layout.primary, *layout.replicas[1:])
            )
        time.sleep(max(0.0, t_fault + d.hold - time.monotonic()))
        container.reload()
        state = container.attrs["State"]
        # docker kill counts as a manual stop for the restart policy, but a crash would not.
        cell["auto_restarted"] = state["Status"] == "running" and state["StartedAt"] != started_at
        t_lift = time.monotonic()
        lift(container)
        lifted = True
        cell["lift_s"] = round(time.monotonic() - t_lift, 2)
        # Recovery is timed while the load goes on, by a watcher with its own Docker client.
        watcher = threading.Thread(target=watch_whole, args=(run.stack, t_lift, whole), daemon=True)
        watcher.start()
        probe_name = f"chaos-{run.run_id}-recover-{target}-{fault.replace('+', '-')}-{mode}"
        recover = {"traffic": time_to_recover(run, container, target, probe_name)}
        cell["recover_s"] = recover
        time.sleep(max(0.0, t_lift + d.after - time.monotonic()))
        watcher.join(WHOLE_TIMEOUT_S + 30)
    finally:
        load.stop()
        if history is not None:
            history.stop()
        if not lifted:
            lift(container)  # never leave a component down behind an aborted cell
    if "s" not in whole:
        raise RuntimeError(str(whole.get("error", "the stack did not become whole")))
    cell["whole_after_lift_s"] = whole["s"]
    if fault == FAILOVER:
        # Switch back (a planned switchover, lossless), so every cell starts from one layout.
        cell["switchback_up_s"] = round(run.pulumi.up(primary=layout.primary), 2)
        cell["up_replaced"] = sorted({*cell["up_replaced"], *run.pulumi.last_replaced})
        run.stack = layout
        run.changed.discard("primary")
        wait_whole(run.stack)
    if history is not None:
        stale = stale_reads(history.history.writes, history.history.reads)
        cell["history"] = {
            "reads": len(history.history.reads),
            "writes": len(history.history.writes),
            "stale_reads": len(stale),
            "stale_after_kill": len([r for r, _ in stale if r.started >= cell["killed_at"]]),
        }
        cell.pop("killed_at")
    cell["write"] = summarize(load.events, "write", t_fault, t_lift)
    cell["read"] = summarize(load.events, "read", t_fault, t_lift)
    # Every acknowledged write must be on the primary, under the id the API returned.
    cell["integrity"] = ledger.check(load.ledger, run.stack.primary_container, f"{tag}-").as_dict()
    if run.quiet and fault not in (FAILOVER, CUT_KILL):
        recover["quiet"] = quiet_recovery(run, target, fault, f"{probe_name}-quiet")
    cell["elapsed_s"] = round(time.monotonic() - t0, 1)
    log(
        f"  writes {cell['write']['ok']}/{cell['write']['requests']} ok, reads "
        f"{cell['read']['ok']}/{cell['read']['requests']} ok, lost {cell['integrity']['lost']}"
        f" of {cell['integrity']['acked']} acked, whole {cell['whole_after_lift_s']}s after lift"
    )
    return cell


# --- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stack", default=os.environ.get("STACK", "dev"))
    parser.add_argument("--quick", action="store_true", help="a few cells, shorter phases")
    parser.add_argument(
        "--cells",
        help="comma-separated target:fault cells, e.g. primary:kill,redis:pause "
        f"(targets {', '.join(TARGETS)}; faults {', '.join((*FAULTS, FAILOVER))}; "
        f"api:{CUT_KILL})",
    )
    parser.add_argument("--no-sync", action="store_true", help="skip the synchronous-mode cells")
    parser.add_argument("--no-failover", action="store_true", help="skip kill+failover cells")
    parser.add_argument(
        "--no-quiet",
        action="store_true",
        help="skip the repeat of each fault without load (recover_s.quiet)",
    )
    parser.add_argument(
        "--keep-rows",
        action="store_true",
        help="keep the products the run wrote (by default "
        "they are deleted after a successful run; after a failed one they stay as evidence)",
    )
    parser.add_argument("--before", type=float, help="seconds of load before the fault")
    parser.add_argument("--hold", type=float, help="seconds the fault is held")
    parser.add_argument("--after", type=float, help="seconds of load after the fault is lifted")
    return parser.parse_args(argv)


def plan(opts: argparse.Namespace) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Cells in the stack's current mode, and cells to repeat with `synchronous` flipped."""
    if opts.cells:
        cells = [tuple(c.split(":", 1)) for c in opts.cells.split(",") if c]
        bad = [
            c
            for c in cells
            if len(c) != 2
            or c[0] not in TARGETS
            or c[1] not in (*FAULTS, FAILOVER, CUT_KILL)
            or (c[1] == CUT_KILL and c[0] != "api")
        ]
        if bad:
            raise SystemExit(f"unknown cells: {bad}")
        matrix = [(t, f) for t, f in cells]
    elif opts.quick:
        matrix = list(QUICK_CELLS)
    else:
        matrix = [(t, f) for t in TARGETS for f in FAULTS]
        if not opts.no_failover:
            matrix.append(("primary", FAILOVER))
        matrix.append(("api", CUT_KILL))
    flipped = (
        []
        if opts.no_sync
        else [c for c in matrix if c[0] == "primary" and c[1] in ("kill", FAILOVER)]
    )
    if not opts.no_sync and not flipped and not opts.cells:
        flipped = [("primary", "kill")]
    return matrix, flipped


def seed(stack: Outputs, run_id: str) -> list[int]:
    """Products every reader can hit from the first second, cache hits included."""
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        ids: list[int] = []
        for i in range(SEED_PRODUCTS):
            name = f"chaos-{run_id}-seed-{i}"
            res = http.post("/products", json={"name": name, "price": "1", "stock": i})
            res.raise_for_status()
            ids.append(int(res.json()["id"]))
            http.get(f"/products/{ids[-1]}")
    return ids


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    quick = opts.quick
    durations = Durations(
        before=opts.before if opts.before is not None else (3.0 if quick else 6.0),
        hold=opts.hold if opts.hold is not None else (4.0 if quick else 6.0),
        after=opts.after if opts.after is not None else (6.0 if quick else 10.0),
    )
    matrix, flipped = plan(opts)
    stack = load_stack(opts.stack)
    if len(stack.replicas) < 1:
        raise SystemExit("the stack has no replica")
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = RESULTS / f"chaos-{run_id}"
    run = Run(
        stack=stack,
        pulumi=Pulumi(stack.stack, RESULTS / f"chaos-{run_id}-pulumi.log"),
        durations=durations,
        run_id=run_id,
        seed_ids=[],
        quiet=not opts.no_quiet,
    )
    meta: dict[str, Any] = {
        "run_id": run_id,
        "stack": stack.stack,
        "command": " ".join(
            ["python -m bench.chaos", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started": started.isoformat(timespec="seconds"),
        "durations": asdict(durations),
        "load": {"writers": LOAD.writers, "readers": LOAD.readers, "timeout_s": LOAD.timeout_s},
    }
    original = stack  # the layout and mode to leave behind, whatever happens
    log(
        f"stack {stack.stack}: primary {stack.primary}, replicas {list(stack.replicas)}, "
        f"synchronous={stack.synchronous}; {len(matrix)} + {len(flipped)} cells"
    )
    if flipped or any(f == FAILOVER for _, f in matrix):
        # The cells run `pulumi up` for config changes; pending code changes (a rebuilt image)
        # would ride along and replace containers mid-cell, so they are applied first.
        log("bringing the stack up to date before any config change")
        meta["preflight_up_s"] = round(run.pulumi.up(), 1)
    wait_whole(run.stack)
    run.seed_ids = seed(stack, run_id)

    def do(cells: Sequence[tuple[str, str]]) -> None:
        for target, fault in cells:
            try:
                run.cells.append(run_cell(run, target, fault))
            finally:
                write_report(report, meta, run.cells)

    try:
        do(matrix)
        if flipped:
            flip = "false" if original.synchronous else "true"
            log(f"setting pgha:synchronous={flip}")
            run.changed.add("synchronous")
            run.pulumi.up(synchronous=flip)
            run.stack = replace(run.stack, synchronous=not original.synchronous)
            wait_whole(run.stack)
            do(flipped)
    except Exception as exc:
        log(f"aborted: {exc}")
        run.cells.append({"target": "-", "fault": "-", "mode": "-", "error": str(exc)[:300]})
        write_report(report, meta, run.cells)
        raise
    finally:
        # Leave the stack as it was found, whatever happened above.
        restore: dict[str, str] = {}
        if "synchronous" in run.changed:
            restore["synchronous"] = "true" if original.synchronous else "false"
        if "primary" in run.changed:
            restore["primary"] = original.primary
        if restore:
            log(f"restoring {restore}")
            run.pulumi.up(**restore)
            run.stack = original
            wait_whole(run.stack)
    if not opts.keep_rows:
        # Straight SQL, not 15k DELETEs through the API: these ids are known to nobody else,
        # so a body of one still cached expires within the TTL without ever being asked for.
        deleted = ledger.delete_with_prefix(run.stack.primary_container, f"chaos-{run_id}-")
        log(f"deleted the run's {deleted} products (--keep-rows keeps them)")
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_report(report, meta, run.cells)
    print(markdown(meta, run.cells))
    log(f"report: {report.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
