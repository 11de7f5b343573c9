"""Fault matrix against a deployed pgha stack: ``python -m bench.chaos --stack <stack>``.

What ``make chaos`` runs. For each cell (a fault on one component) a mixed load runs through
the API: writers POST products with unique names, readers GET products by id. The fault is
injected with the Docker API, held, lifted, and the load goes on for a while. Per cell:

* errors by status code (or transport error), for writes and reads;
* the longest error streak: from the start of the first failing request to the end of the
  last one with no success in between (seconds), for writes and reads;
* how long after the fault is lifted the first 2xx completes;
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
stack's config is restored at the end, also on failure.

Load goes only to 127.0.0.1 and the stack's own containers. Every loop is bounded in count
and in time. Results: ``bench/results/chaos-<UTC timestamp>.{md,json}``, rewritten after each
cell, so an aborted run still leaves what it measured, plus ``-pulumi.log``. Figures, never
assertions. The products a run writes are deleted after it succeeds (``--keep-rows`` keeps
them); ``--quick`` runs four cells with shorter phases, ``--cells`` any list of cells.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

TARGETS = ("redis", "replica", "primary", "haproxy", "api")
FAULTS = ("kill", "stop", "pause")
FAILOVER = "kill+failover"
QUICK_CELLS = (("redis", "kill"), ("replica", "stop"), ("primary", "pause"), ("api", "kill"))

WRITERS = 2
READERS = 2
# A 2 s client timeout turns a frozen dependency into a visible error quickly, while staying
# above the API's own 1.5 s pool wait, so its 503s are seen as 503s, not as timeouts.
REQUEST_TIMEOUT_S = 2.0
# Pacing per thread: ~40 requests/s each keeps two cores free enough for the stack itself.
PACE_S = 0.025
ERROR_BACKOFF_S = 0.05
MAX_REQUESTS_PER_THREAD = 5000
SEED_PRODUCTS = 20
WHOLE_TIMEOUT_S = 180.0
PULUMI_TIMEOUT_S = 900.0
# A line of `pulumi up` output for a replaced container, e.g. "+- ...:Container api replaced".
REPLACED = re.compile(r"\+-\s+\S+:Container (\S+) replaced")


def log(message: str) -> None:
    sys.stderr.write(f"chaos {time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()


# --- the stack ------------------------------------------------------------------------


def pulumi_env() -> dict[str, str]:
    """What `source scripts/env.sh` sets, for a run outside `make chaos`."""
    env = dict(os.environ)
    env.setdefault("PULUMI_BACKEND_URL", f"file://{ROOT}/.pulumi-state")
    env.setdefault("PULUMI_CONFIG_PASSPHRASE", "pgha-dev-stack-only")
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    env.setdefault("PULUMI_DIY_BACKEND_NO_LEGACY_WARNING", "true")
    env["PATH"] = f"{ROOT}/.tools/bin:{ROOT}/.venv/bin:{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}/infra:{env.get('PYTHONPATH', '')}"
    return env


@dataclass
class Stack:
    name: str
    api_url: str
    containers: dict[str, str]
    primary: str
    replicas: list[str]
    synchronous: bool

    def container_of(self, target: str) -> str:
        if target == "primary":
            return self.containers[self.primary]
        if target == "replica":
            return self.containers[self.replicas[0]]
        return self.containers[target]


def load_stack(name: str) -> Stack:
    # No --show-secrets: chaos needs endpoints and container names, never a password.
    proc = subprocess.run(
        ["pulumi", "stack", "output", "--stack", name, "--json"],
        cwd=ROOT,
        env=pulumi_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"cannot read outputs of stack {name!r}: {proc.stderr.strip()}")
    outs = json.loads(proc.stdout)
    api_url = outs["api_url"]
    if not api_url.startswith("http://127.0.0.1:"):
        # The load must only ever reach our own loopback-published API.
        raise SystemExit(f"refusing to load {api_url}: chaos only targets 127.0.0.1")
    return Stack(
        name=name,
        api_url=api_url,
        containers=dict(outs["containers"]),
        primary=outs["primary"],
        replicas=list(outs["replicas"]),
        synchronous=bool(outs["synchronous"]),
    )


class Pulumi:
    """Config changes through the CLI, as an operator would make them; output to a log."""

    def __init__(self, stack: str, log_path: Path) -> None:
        self.stack = stack
        self.log_path = log_path
        # Containers the last `up` replaced: a config change replaces none, so any name here
        # means code changed under the run and rode along (the cell is then not clean).
        self.last_replaced: list[str] = []

    def _run(self, *args: str) -> str:
        proc = subprocess.run(
            ["pulumi", *args, "--stack", self.stack],
            cwd=ROOT,
            env=pulumi_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=PULUMI_TIMEOUT_S,
            check=False,
        )
        with self.log_path.open("a") as out:
            out.write(f"\n$ pulumi {' '.join(args)}\n{proc.stdout}")
        if proc.returncode != 0:
            raise RuntimeError(
                f"pulumi {args[0]} failed (exit {proc.returncode}); see {self.log_path}"
            )
        return proc.stdout

    def up(self, **config: str) -> float:
        """Sets pgha:<key> values and runs `pulumi up`; returns its duration."""
        started = time.monotonic()
        for key, value in config.items():
            self._run("config", "set", f"pgha:{key}", value)
        output = self._run("up", "--yes", "--skip-preview")
        self.last_replaced = sorted(set(REPLACED.findall(output)))
        return time.monotonic() - started


# --- docker: faults, health, SQL ------------------------------------------------------


class Cluster:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.docker = docker.from_env(timeout=120)

    def container(self, name: str) -> Any:
        return self.docker.containers.get(name)

    def exec(self, container: str, cmd: list[str]) -> tuple[int, str]:
        code, output = self.container(container).exec_run(cmd, user="postgres")
        return code, output.decode(errors="replace").strip()

    def sql(self, node: str, query: str, db: str = "pgha") -> str:
        code, text = self.exec(
            self.stack.containers[node],
            ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", query],
        )
        if code != 0:
            raise RuntimeError(f"psql on {node} failed: {text}")
        return text

    def role(self, node: str) -> str:
        try:
            code, text = self.exec(self.stack.containers[node], ["pgha-ctl", "role"])
        except docker.errors.APIError:
            return "down"
        return text if code == 0 else "down"

    def problems(self, api: httpx.Client) -> list[str]:
        """Why the stack is not whole yet; empty when it is.

        "Whole" is functional: Docker's health may still say "starting" for a while after a
        restart (the API's check runs every 10 s), so the checks below ask the services.
        """
        found = []
        for role, name in self.stack.containers.items():
            state = self.container(name).attrs["State"]
            health = (state.get("Health") or {}).get("Status")
            if state["Status"] != "running" or health == "unhealthy":
                found.append(f"{role} {state['Status']}/{health}")
        if found:
            return found
        if self.role(self.stack.primary) != "primary":
            return [f"{self.stack.primary} is not primary"]
        for node in self.stack.replicas:
            if self.role(node) != "replica":
                return [f"{node} is not a replica"]
        streaming = self.sql(
            self.stack.primary,
            "select application_name from pg_stat_replication where state = 'streaming'",
            db="postgres",
        ).split()
        missing = {n.replace("-", "_") for n in self.stack.replicas} - set(streaming)
        if missing:
            return [f"not streaming: {sorted(missing)}"]
        try:
            ready = api.get("/ready")
            # /ready is 200 with Redis down (it only degrades), so each check is read.
            checks = ready.json().get("checks", {}) if ready.status_code == 200 else {}
        except (httpx.HTTPError, ValueError) as exc:
            return [f"api: {type(exc).__name__}"]
        down = sorted(k for k, v in checks.items() if not v.get("ok"))
        if ready.status_code != 200 or down:
            return [f"api not ready: {down or ready.status_code}"]
        return []

    def wait_whole(self, timeout: float = WHOLE_TIMEOUT_S) -> float:
        """Blocks until the stack is whole; returns how long that took."""
        started = time.monotonic()
        last: list[str] = []
        with httpx.Client(base_url=self.stack.api_url, timeout=REQUEST_TIMEOUT_S) as api:
            while time.monotonic() - started < timeout:
                try:
                    last = self.problems(api)
                except (docker.errors.APIError, RuntimeError) as exc:
                    last = [str(exc)[:200]]
                if not last:
                    return time.monotonic() - started
                time.sleep(0.5)
        raise RuntimeError(f"stack not whole after {timeout:.0f}s: {last}")


def inject(container: Any, fault: str) -> None:
    if fault in ("kill", FAILOVER):
        container.kill()
    elif fault == "stop":
        container.stop(timeout=10)
    elif fault == "pause":
        container.pause()
    else:
        raise ValueError(fault)


def lift(container: Any, fault: str) -> None:
    container.reload()
    status = container.attrs["State"]["Status"]
    if status == "paused":
        container.unpause()
    elif status != "running":
        container.start()


# --- load -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    kind: str
    start: float
    end: float
    status: str

    @property
    def ok(self) -> bool:
        return self.status.startswith("2")


@dataclass
class Load:
    """Writers and readers against the API, bounded by a stop event, a count and a deadline."""

    api_url: str
    tag: str
    seed_ids: list[int]
    deadline_s: float
    events: list[Event] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)
    attempted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._readable: list[int] = list(self.seed_ids)

    def start(self) -> None:
        workers: list[Callable[[int], None]] = [self._writer] * WRITERS + [self._reader] * READERS
        for n, target in enumerate(workers):
            thread = threading.Thread(target=target, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_S * 3)

    def _record(self, kind: str, start: float, status: str) -> None:
        with self._lock:
            self.events.append(Event(kind, start, time.monotonic(), status))

    def _loop(self, step: Callable[[httpx.Client, int], str], kind: str) -> None:
        deadline = time.monotonic() + self.deadline_s
        with httpx.Client(base_url=self.api_url, timeout=REQUEST_TIMEOUT_S) as http:
            for seq in range(MAX_REQUESTS_PER_THREAD):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                started = time.monotonic()
                try:
                    status = step(http, seq)
                except httpx.TimeoutException:
                    status = "timeout"
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self._record(kind, started, status)
                time.sleep(PACE_S if status.startswith("2") else ERROR_BACKOFF_S)

    def _writer(self, n: int) -> None:
        def step(http: httpx.Client, seq: int) -> str:
            name = f"{self.tag}-w{n}-{seq}"
            with self._lock:
                self.attempted.append(name)
            res = http.post("/products", json={"name": name, "price": "1.00", "stock": seq})
            if res.status_code == 201:
                pid = res.json()["id"]
                with self._lock:
                    self.acked[name] = pid
                    self._readable.append(pid)
            return str(res.status_code)

        self._loop(step, "write")

    def _reader(self, n: int) -> None:
        rng = random.Random(n)

        def step(http: httpx.Client, _: int) -> str:
            with self._lock:
                pid = rng.choice(self._readable) if self._readable else None
            if pid is None:
                return str(http.get("/products", params={"limit": 5}).status_code)
            # Every id here was acknowledged: a 404 is as much an error as a 503.
            return str(http.get(f"/products/{pid}").status_code)

        self._loop(step, "read")


def longest_error_streak(events: Sequence[Event]) -> float:
    longest, streak_start = 0.0, None
    for event in sorted(events, key=lambda e: e.end):
        if event.ok:
            streak_start = None
            continue
        if streak_start is None:
            streak_start = event.start
        longest = max(longest, event.end - streak_start)
    return round(longest, 2)


def longest_gap_without_2xx(events: Sequence[Event]) -> float:
    """Longest time between two successful completions: the outage as a client feels it.

    Unlike the error streak it also covers time spent waiting, e.g. on a paused component
    whose backlog is answered once it is unpaused.
    """
    ends = sorted(e.end for e in events if e.ok)
    return round(max((b - a for a, b in zip(ends, ends[1:], strict=False)), default=0.0), 2)


def summarize(events: Sequence[Event], kind: str, t_fault: float, t_lift: float) -> dict[str, Any]:
    mine = [e for e in events if e.kind == kind]
    errors = Counter(e.status for e in mine if not e.ok)
    resumed = [e.end - t_lift for e in mine if e.ok and e.start >= t_lift]
    before = [e for e in mine if e.end < t_fault]
    return {
        "requests": len(mine),
        "ok": sum(e.ok for e in mine),
        "errors": dict(sorted(errors.items())),
        "errors_before_fault": sum(not e.ok for e in before),
        "errors_after_lift": sum(not e.ok for e in mine if e.start >= t_lift),
        "longest_error_streak_s": longest_error_streak(mine),
        "longest_gap_without_2xx_s": longest_gap_without_2xx(mine),
        "first_2xx_after_lift_s": round(min(resumed), 2) if resumed else None,
    }


# --- one cell -------------------------------------------------------------------------


@dataclass
class Durations:
    before: float
    hold: float
    after: float


@dataclass
class Run:
    stack: Stack
    cluster: Cluster
    pulumi: Pulumi
    durations: Durations
    run_id: str
    seed_ids: list[int]
    cells: list[dict[str, Any]] = field(default_factory=list)
    # Config keys this run has set, so they are restored even after a failed `pulumi up`.
    changed: set[str] = field(default_factory=set)


def integrity(run: Run, tag: str, load: Load) -> dict[str, Any]:
    """Every acknowledged write must be on the primary, under the id the API returned."""
    prefix = f"{tag}-"
    rows = run.cluster.sql(
        run.stack.primary,
        f"select id, name from pgha.products where left(name, {len(prefix)}) = '{prefix}'",
    )
    present: dict[str, list[int]] = {}
    for line in rows.splitlines():
        pid, name = line.split("|", 1)
        present.setdefault(name, []).append(int(pid))
    lost = sorted(name for name, pid in load.acked.items() if pid not in present.get(name, []))
    unacked = set(load.attempted) - set(load.acked)
    return {
        "acked": len(load.acked),
        "attempted": len(load.attempted),
        "lost": len(lost),
        "lost_names": lost[:50],
        "duplicated": sum(len(ids) > 1 for ids in present.values()),
        "indeterminate_committed": len(unacked & set(present)),
        "unknown_rows": len(set(present) - set(load.attempted)),
    }


def watch_whole(stack: Stack, since: float, result: dict[str, Any]) -> None:
    try:
        Cluster(stack).wait_whole()
        result["s"] = round(time.monotonic() - since, 2)
    except Exception as exc:  # noqa: BLE001 (reported by the cell, which then aborts the run)
        result["error"] = str(exc)[:300]


def run_cell(run: Run, target: str, fault: str) -> dict[str, Any]:
    stack, d = run.stack, run.durations
    mode = "sync" if stack.synchronous else "async"
    tag = f"chaos-{run.run_id}-{target}-{fault.replace('+', '-')}-{mode}"
    layout = (stack.primary, list(stack.replicas))
    container = run.cluster.container(stack.container_of(target))
    started_at = container.attrs["State"]["StartedAt"]
    cell: dict[str, Any] = {"target": target, "fault": fault, "mode": mode, "tag": tag}
    log(f"{target} {fault} ({mode}): {d.before:.0f}+{d.hold:.0f}+{d.after:.0f}s")

    load = Load(stack.api_url, tag, run.seed_ids, deadline_s=d.before + d.hold + d.after + 600)
    t0 = time.monotonic()
    lifted = False
    load.start()
    try:
        time.sleep(d.before)
        t_fault = time.monotonic()
        inject(container, fault)
        cell["inject_s"] = round(time.monotonic() - t_fault, 2)
        if fault == FAILOVER:
            # The operator's failover: promote the replica through stack config.
            new_primary = stack.replicas[0]
            run.changed.add("primary")
            cell["failover_up_s"] = round(run.pulumi.up(primary=new_primary), 2)
            cell["up_replaced"] = run.pulumi.last_replaced
            stack.primary = new_primary
            stack.replicas = [layout[0], *stack.replicas[1:]]
        time.sleep(max(0.0, t_fault + d.hold - time.monotonic()))
        container.reload()
        state = container.attrs["State"]
        # docker kill counts as a manual stop for the restart policy, but a crash would not.
        cell["auto_restarted"] = state["Status"] == "running" and state["StartedAt"] != started_at
        t_lift = time.monotonic()
        lift(container, fault)
        lifted = True
        cell["lift_s"] = round(time.monotonic() - t_lift, 2)
        # Recovery is timed while the load goes on, by a watcher with its own Docker client.
        whole: dict[str, Any] = {}
        watcher = threading.Thread(target=watch_whole, args=(stack, t_lift, whole), daemon=True)
        watcher.start()
        time.sleep(max(0.0, t_lift + d.after - time.monotonic()))
        watcher.join(WHOLE_TIMEOUT_S + 30)
    finally:
        load.stop()
        if not lifted:
            lift(container, fault)  # never leave a component down behind an aborted cell
    if "s" not in whole:
        raise RuntimeError(whole.get("error", "the stack did not become whole"))
    cell["whole_after_lift_s"] = whole["s"]
    if fault == FAILOVER:
        # Switch back (a planned switchover, lossless), so every cell starts from one layout.
        cell["switchback_up_s"] = round(run.pulumi.up(primary=layout[0]), 2)
        cell["up_replaced"] = sorted({*cell["up_replaced"], *run.pulumi.last_replaced})
        stack.primary, stack.replicas = layout[0], layout[1]
        run.changed.discard("primary")
        run.cluster.wait_whole()
    cell["write"] = summarize(load.events, "write", t_fault, t_lift)
    cell["read"] = summarize(load.events, "read", t_fault, t_lift)
    cell["integrity"] = integrity(run, tag, load)
    cell["elapsed_s"] = round(time.monotonic() - t0, 1)
    log(
        f"  writes {cell['write']['ok']}/{cell['write']['requests']} ok, reads "
        f"{cell['read']['ok']}/{cell['read']['requests']} ok, lost {cell['integrity']['lost']}"
        f" of {cell['integrity']['acked']} acked, whole {cell['whole_after_lift_s']}s after lift"
    )
    return cell


# --- report ---------------------------------------------------------------------------


def fmt_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{code}×{n}" for code, n in errors.items()) or "0"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(meta: dict[str, Any], cells: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"# pgha chaos run {meta['run_id']}",
        "",
        f"Stack `{meta['stack']}`, command `{meta['command']}`, started {meta['started']}.",
        f"Load: {WRITERS} writers + {READERS} readers through the API, client timeout "
        f"{REQUEST_TIMEOUT_S:.0f} s; phases {meta['durations']['before']:.0f} s before the fault, "
        f"held {meta['durations']['hold']:.0f} s, {meta['durations']['after']:.0f} s after it is "
        "lifted.",
        "",
        "Streak: longest run of failed requests with no success in between (first failing start "
        "to last failing end). No-2xx gap: longest time between two successful completions. "
        "Resume: first 2xx completed after the fault was lifted. Whole: "
        "until every container runs, every replica streams and /ready reports each check ok. Lost: "
        "acknowledged (201) writes missing from the primary. Indet.: writes that failed for the "
        "client but committed.",
        "",
        "| target | fault | mode | write errors | read errors | streak w/r s | no-2xx gap w/r s "
        "| resume w/r s | whole s | acked | lost | indet. | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        if "error" in c:
            lines.append(f"| {c['target']} | {c['fault']} | {c['mode']} | aborted: {c['error']} |")
            continue
        w, r, i = c["write"], c["read"], c["integrity"]
        notes = []
        if c.get("auto_restarted"):
            notes.append("Docker restarted it")
        if "failover_up_s" in c:
            notes.append(f"failover up {c['failover_up_s']:.0f} s")
        if i["duplicated"]:
            notes.append(f"{i['duplicated']} duplicated")
        if c.get("up_replaced"):
            notes.append(f"NOT CLEAN: pulumi up also replaced {', '.join(c['up_replaced'])}")
        lines.append(
            f"| {c['target']} | {c['fault']} | {c['mode']} | {fmt_errors(w['errors'])} "
            f"| {fmt_errors(r['errors'])} "
            f"| {fmt_s(w['longest_error_streak_s'])} / {fmt_s(r['longest_error_streak_s'])} "
            f"| {fmt_s(w['longest_gap_without_2xx_s'])} / {fmt_s(r['longest_gap_without_2xx_s'])} "
            f"| {fmt_s(w['first_2xx_after_lift_s'])} / {fmt_s(r['first_2xx_after_lift_s'])} "
            f"| {fmt_s(c['whole_after_lift_s'])} | {i['acked']} | **{i['lost']}** "
            f"| {i['indeterminate_committed']} | {'; '.join(notes)} |"
        )
    lost = sum(c.get("integrity", {}).get("lost", 0) for c in cells)
    lines += ["", f"Lost acknowledged writes in total: **{lost}**.", ""]
    return "\n".join(lines)


def write_report(path: Path, meta: dict[str, Any], cells: Sequence[dict[str, Any]]) -> None:
    path.with_suffix(".json").write_text(json.dumps({**meta, "cells": list(cells)}, indent=2))
    path.with_suffix(".md").write_text(markdown(meta, cells))


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
        f"(targets {', '.join(TARGETS)}; faults {', '.join((*FAULTS, FAILOVER))})",
    )
    parser.add_argument("--no-sync", action="store_true", help="skip the synchronous-mode cells")
    parser.add_argument("--no-failover", action="store_true", help="skip kill+failover cells")
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
            if len(c) != 2 or c[0] not in TARGETS or c[1] not in (*FAULTS, FAILOVER)
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
    flipped = (
        []
        if opts.no_sync
        else [c for c in matrix if c[0] == "primary" and c[1] in ("kill", FAILOVER)]
    )
    if not opts.no_sync and not flipped and not opts.cells:
        flipped = [("primary", "kill")]
    return matrix, flipped


def seed(stack: Stack, run_id: str) -> list[int]:
    """Products every reader can hit from the first second, cache hits included."""
    with httpx.Client(base_url=stack.api_url, timeout=10) as http:
        ids = []
        for i in range(SEED_PRODUCTS):
            name = f"chaos-{run_id}-seed-{i}"
            res = http.post("/products", json={"name": name, "price": "1", "stock": i})
            res.raise_for_status()
            ids.append(res.json()["id"])
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
    cluster = Cluster(stack)
    run = Run(
        stack=stack,
        cluster=cluster,
        pulumi=Pulumi(stack.name, RESULTS / f"chaos-{run_id}-pulumi.log"),
        durations=durations,
        run_id=run_id,
        seed_ids=[],
    )
    meta = {
        "run_id": run_id,
        "stack": stack.name,
        "command": " ".join(
            ["python -m bench.chaos", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started": started.isoformat(timespec="seconds"),
        "durations": asdict(durations),
        "load": {"writers": WRITERS, "readers": READERS, "timeout_s": REQUEST_TIMEOUT_S},
    }
    original = {"primary": stack.primary, "synchronous": stack.synchronous}
    log(
        f"stack {stack.name}: primary {stack.primary}, replicas {stack.replicas}, "
        f"synchronous={stack.synchronous}; {len(matrix)} + {len(flipped)} cells"
    )
    if flipped or any(f == FAILOVER for _, f in matrix):
        # The cells run `pulumi up` for config changes; pending code changes (a rebuilt image)
        # would ride along and replace containers mid-cell, so they are applied first.
        log("bringing the stack up to date before any config change")
        meta["preflight_up_s"] = round(run.pulumi.up(), 1)
    cluster.wait_whole()
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
            flip = "false" if original["synchronous"] else "true"
            log(f"setting pgha:synchronous={flip}")
            run.changed.add("synchronous")
            run.pulumi.up(synchronous=flip)
            stack.synchronous = not original["synchronous"]
            cluster.wait_whole()
            do(flipped)
    except Exception as exc:
        log(f"aborted: {exc}")
        run.cells.append({"target": "-", "fault": "-", "mode": "-", "error": str(exc)[:300]})
        write_report(report, meta, run.cells)
        raise
    finally:
        # Leave the stack as it was found, whatever happened above.
        restore = {}
        if "synchronous" in run.changed:
            restore["synchronous"] = "true" if original["synchronous"] else "false"
        if "primary" in run.changed:
            restore["primary"] = str(original["primary"])
        if restore:
            log(f"restoring {restore}")
            run.pulumi.up(**restore)
            stack.synchronous, stack.primary = original["synchronous"], original["primary"]
            cluster.wait_whole()
    if not opts.keep_rows:
        # Straight SQL, not 15k DELETEs through the API: these ids are known to nobody else,
        # so a body of one still cached expires within the TTL without ever being asked for.
        prefix = f"chaos-{run_id}-"
        deleted = cluster.sql(
            stack.primary,
            f"with d as (delete from pgha.products where left(name, {len(prefix)}) = '{prefix}'"
            " returning 1) select count(*) from d",
        )
        log(f"deleted the run's {deleted} products (--keep-rows keeps them)")
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_report(report, meta, run.cells)
    print(markdown(meta, run.cells))
    log(f"report: {report.with_suffix('.md')} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
