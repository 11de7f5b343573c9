"""Each campaign's matrix: which cells run, how often, and that unknown ones are refused."""

from __future__ import annotations

import argparse

import pytest

from bench.chaos import manual, patroni, sentinel
from bench.chaos.runner import Cell


def sentinel_opts(cells: str | None, kill_runs: int, quick: bool = False) -> argparse.Namespace:
    return argparse.Namespace(cells=cells, kill_runs=kill_runs, quick=quick)


def test_the_sentinel_plan_repeats_only_the_primary_kill() -> None:
    plan = sentinel.plan(sentinel_opts("primary:kill,replica:pause", 3))
    assert [c.name for c in plan] == ["primary:kill"] * 3 + ["replica:pause"]
    everything = sentinel.plan(sentinel_opts(None, 5))
    assert len(everything) == len(sentinel.KNOWN) + 4
    assert Cell("sentinels2+primary", "kill") in everything


def test_quick_sentinel_runs_one_primary_kill() -> None:
    opts = sentinel.parse_args(["--quick"])
    assert [c.name for c in sentinel.plan(opts)] == ["primary:kill", "replica:pause"]


@pytest.mark.parametrize("module", [sentinel, patroni, manual])
def test_unknown_cells_are_refused_before_anything_is_touched(module: object) -> None:
    with pytest.raises(SystemExit):
        module.parse_args(["--cells", "nothing:kill"])  # type: ignore[attr-defined]


def manual_opts(**kw: object) -> argparse.Namespace:
    base = {"cells": None, "quick": False, "no_sync": False, "no_failover": False}
    return argparse.Namespace(**{**base, **kw})


def test_the_manual_matrix_has_every_target_and_fault_with_the_backup_repository() -> None:
    matrix, flipped = manual.plan(manual_opts())
    names = [c.name for c in matrix]
    assert {"backup:kill", "backup:stop", "backup:pause"} <= set(names)
    assert names[-2:] == ["primary:kill+failover", "api:cut+kill"]
    assert [c.name for c in flipped] == ["primary:kill", "primary:kill+failover"]


def test_quick_manual_flips_synchronous_for_one_primary_kill() -> None:
    matrix, flipped = manual.plan(manual_opts(quick=True))
    assert [c.name for c in matrix] == list(manual.QUICK_CELLS)
    assert [c.name for c in flipped] == ["primary:kill"]


def test_patroni_knows_the_backup_repository_and_the_partition() -> None:
    assert {"backup:kill", "backup:stop", "backup:pause", "leader:partition"} <= set(patroni.KNOWN)
    opts = patroni.parse_args(["--quick"])
    assert (opts.kills, opts.switchovers, opts.no_matrix) == (1, 1, True)
