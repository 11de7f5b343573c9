"""The one chaos cell runner: a campaign's matrix, one fault at a time, under load.

Every campaign (manual.py, patroni.py, sentinel.py) is a `Campaign`: it names its cells
and its targets, and may override how a fault is held, what "whole again" means and
what it checks; the runner does the rest, the same way for all three:

1. the load starts (a ledger load of unique POSTs and GETs through the API, the
   campaign's history load if it has one) and runs `before` seconds;
2. the fault is injected on the containers the cell's target role names at that moment,
   held (`hold`), and lifted;
3. while the load goes on, `recover_s.traffic` is timed: from the lifted containers being
   healthy to the first success of the path that needs them; a watcher times
   `whole_after_lift_s`, until the campaign's stack is whole again;
4. after `after` seconds the load stops; every write the API acknowledged must be on
   the primary (`integrity`), and the campaign adds its own `checks`;
5. with `quiet`, the fault is repeated with no load at all, and `recover_s.quiet` is timed
   with one request at a time once the container is healthy (what traffic used to hide).

The report (report.py) is rewritten after each cell, so an aborted run leaves what it
measured. A cell after which the stack is not whole stops the run. Load goes only to
127.0.0.1 and the stack's own containers; every loop is bounded in count and in time.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
from docker import DockerClient
from docker.models.containers import Container

from bench.chaos import backup, faults
from bench.chaos.figures import summarize
from bench.chaos.report import series, write_report
from bench.common import RESULTS_DIR, log, run
from pgha_testkit import ledger
from pgha_testkit.deployment import Deployment
from pgha_testkit.env import ROOT
from pgha_testkit.history import HistoryLoad
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import WaitTimeout

# How long recover_s waits for the path before it records "never", and its resolution.
RECOVER_TIMEOUT_S = 60.0
RECOVER_POLL_S = 0.1
WHOLE_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Cell:
    target: str
    fault: str
    mode: str = ""
    # The series this cell belongs to (e.g. "leader kill, synchronous: RTO"), if any.
    series: str = ""

    @property
    def name(self) -> str:
        return f"{self.target}:{self.fault}"


@dataclass
class Phases:
    before: float
    hold: float
    after: float


@dataclass
class CellRun:
    """One cell as the campaign's hooks see it while it runs."""

    cell: Cell
    tag: str
    record: dict[str, Any]
    load: Load | None = None
    history: HistoryLoad | None = None
    containers: list[Container] = field(default_factory=list)
    t_fault: float = 0.0
    t_done: float = 0.0
    t_lift: float = 0.0
    # The campaign's own figures while the cell runs (its `checks` hands them over).
    own: dict[str, Any] = field(default_factory=dict)
    # A backup repository cell: the primary's archiving, which recover_s waits for.
    archive: backup.Archive | None = None


class Campaign:
    """What a campaign configures; the defaults fit a plain kill, stop or pause."""

    name = "chaos"  # the report's file stem
    module = "bench.chaos"
    load_spec: LoadSpec | None = LoadSpec()
    quiet = False  # repeat each plain fault without load (recover_s.quiet)
    # (column header, key in the cell's `checks`) for the report's checks table.
    check_columns: tuple[tuple[str, str], ...] = ()

    def __init__(self, phases: Phases) -> None:
        self.phases = phases
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.seed_ids: list[int] = []

    # --- what each campaign must say -------------------------------------------------
    @property
    def api_url(self) -> str:
        raise NotImplementedError

    @property
    def docker(self) -> DockerClient:
        raise NotImplementedError

    def cells(self) -> Iterator[Cell]:
        """The cells in order; a generator may change the stack's config between them."""
        raise NotImplementedError

    def resolve(self, cell: Cell) -> list[str]:
        """The containers the cell's target names at the moment of the fault."""
        raise NotImplementedError

    def wait_whole(self) -> None:
        raise NotImplementedError

    def ledger_container(self) -> str:
        """Where every acknowledged write must be once the cell is over (the primary)."""
        raise NotImplementedError

    # --- what a campaign may change --------------------------------------------------
    def setup(self, meta: dict[str, Any]) -> None:
        """Before the first cell: the stack is deployed, whole and seeded."""

    def teardown(self, meta: dict[str, Any], ok: bool) -> None:
        """After the last cell, also after a failure: leave the stack as agreed."""

    def begin(self, run: CellRun) -> None:
        """Before the load's `before` phase (e.g. a history load of the campaign's own)."""

    def before_fault(self, run: CellRun) -> None:
        """Right before the fault (e.g. the replication lag, a sampler)."""

    def inject(self, run: CellRun) -> None:
        for c in run.containers:
            faults.inject(c, run.cell.fault)

    def hold(self, run: CellRun) -> None:
        time.sleep(max(0.0, run.t_fault + self.phases.hold - time.monotonic()))

    def lift(self, run: CellRun) -> None:
        for c in run.containers:
            faults.lift(c)

    def path_ok(self, run: CellRun, http: httpx.Client, probe: str) -> bool:
        """Whether the request that needs the cell's target is served right now."""
        try:
            return http.get(f"/products/{self.seed_ids[0]}").status_code == 200
        except httpx.HTTPError:
            return False

    def recover_timeout(self, cell: Cell) -> float:
        """How long recover_s waits for the path before it records "never"."""
        return RECOVER_TIMEOUT_S

    def quiet_applies(self, cell: Cell) -> bool:
        # Not the backup repository: with no load the archiver has nothing new to push.
        return cell.fault in faults.FAULTS and cell.target != backup.TARGET

    def checks(self, run: CellRun) -> dict[str, Any]:
        """The campaign's own figures for the cell, once its load has stopped."""
        return {}

    def after_cell(self, run: CellRun) -> None:
        """After the cell's figures (e.g. switch a failed-over primary back)."""

    def series_value(self, record: dict[str, Any]) -> float | None:
        """The figure a series of this campaign's cells summarizes."""
        return (record.get("write") or {}).get("first_2xx_after_fault_s")

    def stack_name(self) -> str:
        raise NotImplementedError


class OnDeployment(Campaign):
    """A campaign on a pgha_testkit `Deployment` (a throwaway stack, or one of yours)."""

    def __init__(self, phases: Phases, d: Deployment) -> None:
        super().__init__(phases)
        self.d = d

    @property
    def api_url(self) -> str:
        return self.d.api

    @property
    def docker(self) -> DockerClient:
        return self.d.docker

    def stack_name(self) -> str:
        return self.d.stack.name


def time_to_recover(campaign: Campaign, run: CellRun, probe: str) -> float | None:
    """Seconds from "healthy" to the first success of the path that needs the target, with
    one request at a time; None if it never succeeds within RECOVER_TIMEOUT_S, or if a
    container never becomes healthy (the watcher then says why the stack is not whole)."""
    try:
        healthy = [faults.healthy_at(c, RECOVER_POLL_S) for c in run.containers]
    except WaitTimeout as exc:
        log(f"  {exc}")
        return None
    t_healthy = max(healthy) if healthy else time.monotonic()
    load = campaign.load_spec or LoadSpec()
    archive = run.archive
    timeout = backup.RECOVER_TIMEOUT_S if archive else campaign.recover_timeout(run.cell)
    with httpx.Client(base_url=campaign.api_url, timeout=load.timeout_s) as http:
        for n in itertools.count():
            if archive.caught_up() if archive else campaign.path_ok(run, http, f"{probe}-{n}"):
                return round(time.monotonic() - t_healthy, 2)
            if time.monotonic() - t_healthy > timeout:
                return None
            time.sleep(RECOVER_POLL_S)
    raise AssertionError("unreachable")


def watch_whole(campaign: Campaign, since: float, result: dict[str, float | str]) -> None:
    """Thread body: times the stack's return to whole from `since`."""
    try:
        campaign.wait_whole()
        result["s"] = round(time.monotonic() - since, 2)
    except Exception as exc:  # noqa: BLE001 (reported by the cell, which then stops the run)
        result["error"] = str(exc)[:300]


def quiet_recovery(campaign: Campaign, cell: Cell, probe: str) -> float | None:
    """The cell's fault once more, with no load at all: nothing sees the outage, and the
    first request comes once the container is healthy."""
    quiet = CellRun(cell, probe, {})
    quiet.containers = [campaign.docker.containers.get(n) for n in campaign.resolve(cell)]
    quiet.t_fault = time.monotonic()
    campaign.inject(quiet)
    try:
        time.sleep(campaign.phases.hold)
    finally:
        campaign.lift(quiet)
    recovered = time_to_recover(campaign, quiet, probe)
    campaign.wait_whole()
    return recovered


def run_cell(campaign: Campaign, cell: Cell, index: int) -> dict[str, Any]:
    """One fault under load: inject, hold, lift, time recovery, check, measure."""
    p = campaign.phases
    slug = f"{cell.target}-{cell.fault}".replace("+", "-").replace(":", "-")
    # The cell's index too: a cell run twice must not count the first one's rows as its own.
    tag = f"{campaign.name}-{campaign.run_id}-{index}-{slug}"
    record: dict[str, Any] = {
        "cell": cell.name,
        "target": cell.target,
        "fault": cell.fault,
        "mode": cell.mode,
        "tag": tag,
    }
    log(f"{cell.name} ({cell.mode}): {p.before:.0f}+{p.hold:.0f}+{p.after:.0f}s")
    run = CellRun(cell, tag, record)
    if campaign.load_spec is not None:
        spec = replace(campaign.load_spec, deadline_s=p.before + p.hold + p.after + 600)
        run.load = Load(campaign.api_url, tag, spec, seed_ids=campaign.seed_ids)
    whole: dict[str, float | str] = {}
    lifted = False
    t0 = time.monotonic()
    campaign.begin(run)
    if run.load is not None:
        run.load.start()
    try:
        time.sleep(p.before)
        campaign.before_fault(run)
        names = campaign.resolve(cell)
        record["targets"] = names
        run.containers = [campaign.docker.containers.get(n) for n in names]
        if cell.target == backup.TARGET:
            run.archive = backup.Archive(campaign.ledger_container(), campaign.docker)
            run.archive.start()
        run.t_fault = time.monotonic()
        campaign.inject(run)
        run.t_done = time.monotonic()
        record["inject_s"] = round(run.t_done - run.t_fault, 2)
        if run.archive is not None:
            run.archive.queue()  # at least one segment the repository must take once back
        campaign.hold(run)
        record["held_s"] = round(time.monotonic() - run.t_fault, 2)
        if run.archive is not None:
            run.archive.lifted()
        run.t_lift = time.monotonic()
        campaign.lift(run)
        lifted = True
        # Recovery is timed while the load goes on; the watcher times the whole stack.
        watcher = threading.Thread(target=watch_whole, args=(campaign, run.t_lift, whole))
        watcher.daemon = True
        watcher.start()
        record["recover_s"] = {"traffic": time_to_recover(campaign, run, f"{tag}-recover")}
        time.sleep(max(0.0, run.t_lift + p.after - time.monotonic()))
        watcher.join(WHOLE_TIMEOUT_S + 30)
    finally:
        if run.load is not None:
            run.load.stop()
        if run.history is not None:
            run.history.stop()
        if not lifted:
            campaign.lift(run)  # never leave a component down behind an aborted cell
    record["whole_after_lift_s"] = whole.get("s")
    if "s" not in whole:
        record["not_whole"] = str(whole.get("error", "the stack did not become whole"))
    events = run.load.events if run.load is not None else []
    for kind in ("write", "read"):
        record[kind] = (
            summarize(events, kind, run.t_fault, run.t_lift, run.t_done) if run.load else None
        )
    record["integrity"] = (
        ledger.check(
            run.load.ledger, campaign.ledger_container(), f"{tag}-", client=campaign.docker
        ).as_dict()
        if run.load is not None and "not_whole" not in record
        else None
    )
    record["checks"] = {
        **campaign.checks(run),
        **(run.archive.figures() if run.archive is not None else {}),
    }
    campaign.after_cell(run)
    if campaign.quiet and campaign.quiet_applies(cell) and "not_whole" not in record:
        record["recover_s"]["quiet"] = quiet_recovery(campaign, cell, f"{tag}-quiet")
    record["elapsed_s"] = round(time.monotonic() - t0, 1)
    i, w = record["integrity"] or {}, record["write"] or {}
    log(
        f"  writes {w.get('ok')}/{w.get('requests')} ok, lost {i.get('lost')} of "
        f"{i.get('acked')} acked, recover {record['recover_s']}, whole "
        f"{record['whole_after_lift_s']}s after lift, checks {record['checks']}"
    )
    return record


def run_campaign(campaign: Campaign, argv: Sequence[str]) -> int:
    """Every cell of the campaign, the report rewritten after each; returns 0 once done."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / f"{campaign.name}-{campaign.run_id}"
    git = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], timeout=30, check=False)
    spec = campaign.load_spec
    meta: dict[str, Any] = {
        "campaign": campaign.name,
        "run_id": campaign.run_id,
        "command": " ".join(["python -m", campaign.module, *argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git.stdout.strip() or None,
        # Other stacks on a 2-core host stretch every timing: say how busy it was.
        "host": {"cores": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
        "phases": asdict(campaign.phases),
        "load": None
        if spec is None
        else {"writers": spec.writers, "readers": spec.readers, "timeout_s": spec.timeout_s},
        "series": {},
    }
    records: list[dict[str, Any]] = []
    ok = False
    try:
        campaign.setup(meta)
        meta["stack"] = campaign.stack_name()
        for index, cell in enumerate(campaign.cells()):
            try:
                record = run_cell(campaign, cell, index)
            except Exception as exc:
                log(f"aborted in {cell.name}: {type(exc).__name__}: {exc}")
                records.append(
                    {
                        "cell": cell.name,
                        "mode": cell.mode,
                        "error": f"{type(exc).__name__}: {exc}"[:300],
                    }
                )
                raise
            if cell.series:
                record["series"] = cell.series
            records.append(record)
            meta["series"] = series(campaign.series_value, records)
            write_report(stem, meta, records, campaign.check_columns)
            if "not_whole" in record:
                log(f"{cell.name}: the stack did not become whole again; stopping the run")
                break
        ok = True
    finally:
        meta["series"] = series(campaign.series_value, records)
        try:
            campaign.teardown(meta, ok)
        finally:
            meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
            meta["host"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
            write_report(stem, meta, records, campaign.check_columns)
            log(f"report: {stem.with_suffix('.md')} and .json")
    print(stem.with_suffix(".md").read_text())
    return 0
