"""The cell runner's order of steps and the one shape of a cell, on a campaign that breaks
nothing (no container, no load): what every campaign's report rests on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from bench.chaos.report import series
from bench.chaos.runner import Campaign, Cell, CellRun, Phases, run_cell

CELL_KEYS = {
    "cell", "target", "fault", "mode", "tag", "targets", "inject_s", "held_s", "recover_s",
    "whole_after_lift_s", "write", "read", "integrity", "checks", "elapsed_s",
}  # fmt: skip


class Nothing(Campaign):
    """A campaign whose every hook only records that it ran."""

    name = "nothing"
    load_spec = None

    def __init__(self, whole: bool = True) -> None:
        super().__init__(Phases(before=0.0, hold=0.0, after=0.0))
        self.steps: list[str] = []
        self.whole = whole

    @property
    def api_url(self) -> str:
        return "http://127.0.0.1:9"  # never asked: path_ok answers without a request

    def cells(self) -> Iterator[Cell]:
        yield Cell("leader", "kill", "sync")

    def resolve(self, cell: Cell) -> list[str]:
        self.steps.append("resolve")
        return []

    def begin(self, run: CellRun) -> None:
        self.steps.append("begin")

    def before_fault(self, run: CellRun) -> None:
        self.steps.append("before_fault")

    def inject(self, run: CellRun) -> None:
        self.steps.append("inject")

    def hold(self, run: CellRun) -> None:
        self.steps.append("hold")

    def lift(self, run: CellRun) -> None:
        self.steps.append("lift")

    def path_ok(self, run: CellRun, http: httpx.Client, probe: str) -> bool:
        return True

    def wait_whole(self) -> None:
        if not self.whole:
            raise RuntimeError("etcd-1 unhealthy")

    def checks(self, run: CellRun) -> dict[str, Any]:
        self.steps.append("checks")
        return {"leader_after": "pg-1"}

    def after_cell(self, run: CellRun) -> None:
        self.steps.append("after_cell")


def test_a_cell_runs_its_hooks_in_order_and_has_the_one_shape() -> None:
    campaign = Nothing()
    record = run_cell(campaign, Cell("leader", "kill", "sync"), 0)
    assert campaign.steps == [
        "begin", "before_fault", "resolve", "inject", "hold", "lift", "checks", "after_cell",
    ]  # fmt: skip
    assert set(record) == CELL_KEYS
    assert record["cell"] == "leader:kill"
    assert record["recover_s"]["traffic"] is not None
    assert record["write"] is None and record["integrity"] is None  # no ledger load
    assert record["checks"] == {"leader_after": "pg-1"}


def test_a_stack_that_does_not_become_whole_is_recorded_and_not_checked() -> None:
    record = run_cell(Nothing(whole=False), Cell("etcd2", "kill"), 3)
    assert record["not_whole"] == "etcd-1 unhealthy"
    assert record["whole_after_lift_s"] is None
    assert record["tag"].endswith("-3-etcd2-kill")


def test_series_summarize_their_own_cells_only() -> None:
    records: list[dict[str, Any]] = [
        {"series": "kill", "write": {"first_2xx_after_fault_s": 6.0}, "integrity": {"lost": 0}},
        {"series": "kill", "write": {"first_2xx_after_fault_s": 8.0}, "integrity": {"lost": 1}},
        {"write": {"first_2xx_after_fault_s": 99.0}, "integrity": {"lost": 0}},
    ]
    got = series(Nothing().series_value, records)
    assert list(got) == ["kill"]
    assert (got["kill"]["median"], got["kill"]["max"], got["kill"]["lost"]) == (7.0, 8.0, 1)
