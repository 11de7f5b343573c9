"""`make chaos`: the manual-failover campaign against a deployed stack,
``python -m bench.chaos --stack <stack>`` (the runner: runner.py).

For each cell (a fault on one component) a mixed load runs through the API: writers POST
products with unique names, readers GET products by id. Targets: redis, the replica, the
primary, haproxy, the api and the backup repository; faults kill, stop and pause: 18 cells.
Recover paths: a list read from the replica, a write, a cache hit or miss, both database
paths through HAProxy, any read through the API; for the backup repository, the
primary's queued WAL archived (backup.py). Each plain fault is repeated without load for
`recover_s.quiet` (`--no-quiet` skips it).

A kill of the primary that is then restarted loses nothing even with asynchronous
replication: its own WAL was flushed at each commit. What asynchronous replication can lose
is what the replica had not received when the primary died *and the replica is promoted*,
so the matrix adds ``kill+failover`` on the primary (kill, fail over to the replica through
``pgha:primary`` and ``pulumi up``, restart the old primary, which rejoins as a replica, then
switch back). Both primary-kill cells also run with ``pgha:synchronous`` flipped; the
stack's config is restored at the end, also on failure. ``api:cut+kill`` cuts the first API
instance off from Redis alone (a DROP rule in its network namespace) for half the hold, then
kills it, under a history of PUTs and GETs of a few seed products: its checks count the
stale reads, which must be 0 (issue 21: its writes' fences outlive it).

``--throwaway`` deploys a 2-node stack of its own and destroys it after, instead of
``--stack``. Results: ``bench/results/chaos-<UTC timestamp>.{md,json}`` plus ``-pulumi.log``. The
products a run writes are deleted after it succeeds (``--keep-rows`` keeps them);
``--quick`` runs four cells with shorter phases, ``--cells`` any list of cells.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import docker
import httpx
from docker import DockerClient

from bench.chaos import backup, faults
from bench.chaos.cli import common_args, launch, parse_cells, phases
from bench.chaos.runner import Campaign, Cell, CellRun, Phases
from bench.chaos.stack import Pulumi, wait_whole
from bench.common import RESULTS_DIR, log
from pgha_testkit import ledger
from pgha_testkit.deployment import Deployment
from pgha_testkit.history import HistoryLoad, stale_reads
from pgha_testkit.instance import cut_off
from pgha_testkit.nodes import docker_client
from pgha_testkit.stack import Outputs, StackError, load_outputs

FAILOVER = "kill+failover"
# The API instance is cut off from Redis (and only from Redis) under load, then killed: the
# fences of the writes it acknowledged meanwhile must outlive it (issue 21).
CUT_KILL = "cut+kill"
TARGETS = ("redis", "replica", "primary", "haproxy", "api", backup.TARGET)
KNOWN = (
    *(f"{t}:{f}" for t in TARGETS for f in faults.FAULTS),
    f"primary:{FAILOVER}",
    f"api:{CUT_KILL}",
)
QUICK_CELLS = ("redis:kill", "replica:stop", "primary:pause", "api:kill")
SEED_PRODUCTS = 20
THROWAWAY_NODES = ("pg-0", "pg-1")
NORMAL = Phases(before=6.0, hold=6.0, after=10.0)
QUICK = Phases(before=3.0, hold=4.0, after=6.0)


def load_stack(name: str) -> Outputs:
    # No secrets: chaos needs endpoints and container names, never a password.
    try:
        stack = load_outputs(name, with_secrets=False)
    except StackError as exc:
        raise SystemExit(str(exc)) from exc
    if not stack.api_url.startswith("http://127.0.0.1:"):
        # The load must only ever reach our own loopback-published API.
        raise SystemExit(f"refusing to load {stack.api_url}: chaos only targets 127.0.0.1")
    if len(stack.replicas) < 1:
        raise SystemExit("the stack has no replica")
    return stack


class Manual(Campaign):
    name = "chaos"
    module = "bench.chaos"
    quiet = True
    check_columns = (
        ("auto restarted", "auto_restarted"),
        ("failover up s", "failover_up_s"),
        ("up replaced", "up_replaced"),
        ("WAL queued at lift", "wal_ready_at_lift"),
        ("archive failures", "archive_failures"),
        ("stale reads / reads", "stale"),
        ("writes acked while cut", "writes_acked_while_cut"),
    )

    def __init__(self, opts: argparse.Namespace) -> None:
        super().__init__(phases(opts, NORMAL, QUICK))
        self.opts = opts
        # --throwaway: a stack of its own, deployed by setup and destroyed by teardown.
        self.d = Deployment.throwaway(THROWAWAY_NODES) if opts.throwaway else None
        self.stack: Outputs
        self.original: Outputs
        self.pulumi: Pulumi
        if self.d is None:
            self.use(load_stack(opts.stack))  # a stack that is not there fails before all
        self.quiet = not opts.no_quiet
        # Config keys this run has set, so they are restored even after a failed `pulumi up`.
        self.changed: set[str] = set()
        self.matrix, self.flipped = plan(opts)
        self._docker = docker_client()

    def use(self, stack: Outputs) -> None:
        self.stack = self.original = stack
        self.pulumi = Pulumi(stack.stack, RESULTS_DIR / f"chaos-{self.run_id}-pulumi.log")

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    @property
    def docker(self) -> DockerClient:
        return self._docker

    def stack_name(self) -> str:
        return self.stack.stack

    def setup(self, meta: dict[str, Any]) -> None:
        if self.d is not None:
            log(f"deploying {self.d.stack.name} ({len(THROWAWAY_NODES)} nodes)")
            self.d.up()
            self.use(load_stack(self.d.stack.name))
        s = self.stack
        log(
            f"stack {s.stack}: primary {s.primary}, replicas {list(s.replicas)}, "
            f"synchronous={s.synchronous}; {len(self.matrix)} + {len(self.flipped)} cells"
        )
        if self.flipped or any(c.fault == FAILOVER for c in self.matrix):
            # The cells run `pulumi up` for config changes; pending code changes (a rebuilt
            # image) would ride along and replace containers mid-cell, so they go first.
            log("bringing the stack up to date before any config change")
            meta["preflight_up_s"] = round(self.pulumi.up(), 1)
        wait_whole(s)
        self.seed_ids = seed(s, self.run_id)

    def cells(self) -> Iterator[Cell]:
        mode = "sync" if self.stack.synchronous else "async"
        for c in self.matrix:
            yield replace(c, mode=mode)
        if self.flipped:
            flip = "false" if self.original.synchronous else "true"
            log(f"setting pgha:synchronous={flip}")
            self.changed.add("synchronous")
            self.pulumi.up(synchronous=flip)
            self.stack = replace(self.stack, synchronous=not self.original.synchronous)
            wait_whole(self.stack)
            mode = "sync" if self.stack.synchronous else "async"
            for c in self.flipped:
                yield replace(c, mode=mode)

    def resolve(self, cell: Cell) -> list[str]:
        return [self.stack.container_of(cell.target)]

    def wait_whole(self) -> None:
        # Its own Docker client: the watcher thread runs beside the cell's calls.
        wait_whole(self.stack, client=docker.from_env(timeout=120))

    def ledger_container(self) -> str:
        return self.stack.primary_container

    def before_fault(self, run: CellRun) -> None:
        c = self.docker.containers.get(self.stack.container_of(run.cell.target))
        run.own["started_at"] = c.attrs["State"]["StartedAt"]

    def inject(self, run: CellRun) -> None:
        cell, container = run.cell, run.containers[0]
        if cell.fault == CUT_KILL:
            run.history = HistoryLoad(
                self.api_url, self.seed_ids[:4], writers=2, readers=2, pace_s=0.02
            )
            run.history.start()
            redis = self.stack.container_of("redis")
            with cut_off(self.docker.api, str(container.name), redis):
                time.sleep(self.phases.hold / 2)
                run.own["writes_acked_while_cut"] = len(run.history.history.writes)
                container.kill()
                run.own["killed_at"] = time.monotonic()
            return
        faults.inject(container, cell.fault)
        if cell.fault == FAILOVER:
            # The operator's failover: promote the replica through stack config.
            layout = self.stack
            self.changed.add("primary")
            run.own["failover_up_s"] = round(self.pulumi.up(primary=layout.replicas[0]), 2)
            run.own["up_replaced"] = self.pulumi.last_replaced
            self.stack = replace(
                layout,
                primary=layout.replicas[0],
                replicas=(layout.primary, *layout.replicas[1:]),
            )

    def lift(self, run: CellRun) -> None:
        for c in run.containers:
            c.reload()
            state = c.attrs["State"]
            # docker kill counts as a manual stop for the restart policy; a crash would not.
            restarted = state["StartedAt"] != run.own.get("started_at")
            run.own["auto_restarted"] = state["Status"] == "running" and restarted
            faults.lift(c)

    def path_ok(self, run: CellRun, http: httpx.Client, probe: str) -> bool:
        return self.path_of(run.cell.target, http, probe)

    def path_of(self, target: str, http: httpx.Client, probe: str) -> bool:
        try:
            if target == "replica":
                res = http.get("/products", params={"limit": 1})  # lists are never cached
                return res.status_code == 200 and res.headers.get("X-Read-Source") == "replica"
            if target == "primary":
                body = {"name": probe, "price": "1", "stock": 0}
                return http.post("/products", json=body).status_code == 201
            if target == "redis":
                res = http.get(f"/products/{self.seed_ids[0]}")
                return res.status_code == 200 and res.headers.get("X-Cache") in ("HIT", "MISS")
            if target == "haproxy":
                return all(self.path_of(t, http, probe) for t in ("replica", "primary"))
            return http.get(f"/products/{self.seed_ids[0]}").status_code == 200
        except httpx.HTTPError:
            return False

    def checks(self, run: CellRun) -> dict[str, Any]:
        own = run.own
        killed_at = own.pop("killed_at", float("inf"))
        own.pop("started_at", None)
        out: dict[str, Any] = {"auto_restarted": None, **own}
        if run.history is not None:
            h = run.history.history
            stale = stale_reads(h.writes, h.reads)
            out["history"] = {
                "reads": len(h.reads),
                "writes": len(h.writes),
                "stale_reads": len(stale),
                "stale_after_kill": len([x for x, _ in stale if x.started >= killed_at]),
            }
            out["stale"] = f"{len(stale)} / {len(h.reads)}"
        return out

    def after_cell(self, run: CellRun) -> None:
        if run.cell.fault != FAILOVER:
            return
        # Switch back (a planned switchover, lossless), so every cell starts from one layout.
        layout = (
            self.original
            if "synchronous" not in self.changed
            else replace(self.original, synchronous=self.stack.synchronous)
        )
        run.record["checks"]["switchback_up_s"] = round(self.pulumi.up(primary=layout.primary), 2)
        replaced = {*run.record["checks"].get("up_replaced", []), *self.pulumi.last_replaced}
        run.record["checks"]["up_replaced"] = sorted(replaced)
        self.stack = layout
        self.changed.discard("primary")
        wait_whole(self.stack)

    def teardown(self, meta: dict[str, Any], ok: bool) -> None:
        try:
            self.leave(ok and self.d is None)
        finally:
            if self.d is not None:
                log(f"teardown; left over: {self.d.teardown()}")

    def leave(self, delete_rows: bool) -> None:
        """Leaves the stack as it was found, whatever happened."""
        if not hasattr(self, "stack"):
            return  # never deployed
        restore: dict[str, str] = {}
        if "synchronous" in self.changed:
            restore["synchronous"] = "true" if self.original.synchronous else "false"
        if "primary" in self.changed:
            restore["primary"] = self.original.primary
        if restore:
            log(f"restoring {restore}")
            self.pulumi.up(**restore)
            self.stack = self.original
            wait_whole(self.stack)
        if delete_rows and not self.opts.keep_rows:
            # Straight SQL, not thousands of DELETEs through the API: these ids are known to
            # nobody else, so a body still cached expires within the TTL unasked.
            prefix = f"chaos-{self.run_id}-"
            deleted = ledger.delete_with_prefix(self.stack.primary_container, prefix)
            log(f"deleted the run's {deleted} products (--keep-rows keeps them)")


def plan(opts: argparse.Namespace) -> tuple[list[Cell], list[Cell]]:
    """Cells in the stack's current mode, and cells to repeat with `synchronous` flipped."""
    if opts.cells:
        matrix = parse_cells(opts.cells, KNOWN)
    elif opts.quick:
        matrix = parse_cells(",".join(QUICK_CELLS), KNOWN)
    else:
        matrix = [Cell(t, f) for t in TARGETS for f in faults.FAULTS]
        if not opts.no_failover:
            matrix.append(Cell("primary", FAILOVER))
        matrix.append(Cell("api", CUT_KILL))
    flipped = (
        []
        if opts.no_sync
        else [c for c in matrix if c.target == "primary" and c.fault in ("kill", FAILOVER)]
    )
    if not opts.no_sync and not flipped and not opts.cells:
        flipped = [Cell("primary", "kill")]
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


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--stack", default=os.environ.get("STACK", "dev"))
    parser.add_argument(
        "--throwaway",
        action="store_true",
        help="deploy a stack of its own (2 nodes) instead of --stack, and destroy it after",
    )
    common_args(parser)
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
        help="keep the products the run wrote (by default they are deleted after a "
        "successful run; after a failed one they stay as evidence)",
    )
    opts = parser.parse_args(argv)
    plan(opts)  # unknown cells fail before anything is touched
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, lambda args: Manual(parse_args(args)))


if __name__ == "__main__":
    raise SystemExit(main())
