"""The command line every chaos campaign shares: its common options, phases, cells, and
the step from parsed arguments to a finished run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bench.chaos.runner import Campaign, Cell, Phases, run_campaign


def common_args(parser: argparse.ArgumentParser) -> None:
    """The options every campaign takes."""
    parser.add_argument("--quick", action="store_true", help="a few cells, shorter phases")
    parser.add_argument("--cells", help="comma-separated target:fault cells (see --help)")
    parser.add_argument("--before", type=float, help="seconds of load before the fault")
    parser.add_argument("--hold", type=float, help="seconds the fault is held")
    parser.add_argument("--after", type=float, help="seconds of load after the fault is lifted")


def phases(opts: argparse.Namespace, normal: Phases, quick: Phases) -> Phases:
    base = quick if opts.quick else normal
    return Phases(
        before=base.before if opts.before is None else opts.before,
        hold=base.hold if opts.hold is None else opts.hold,
        after=base.after if opts.after is None else opts.after,
    )


def parse_cells(text: str | None, known: Sequence[str]) -> list[Cell]:
    """`target:fault,...` checked against the campaign's known cells."""
    names = [c for c in (text or "").split(",") if c]
    unknown = [c for c in names if c not in known]
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; known: {', '.join(known)}")
    return [Cell(*c.split(":", 1)) for c in names]


def launch(argv: Sequence[str] | None, make: Callable[[list[str]], Campaign]) -> int:
    """Runs the campaign `make` builds from the command line (sys.argv without `argv`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_campaign(make(args), args)
