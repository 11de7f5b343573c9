"""Compare bench (or chaos) reports of two code versions run on the same stack, ABBA order.

`python -m bench.compare --a A1.json A2.json --b B1.json B2.json` answers "did this change
move the figures?" the only way a shared host allows: with each side's own run-to-run
spread as the noise. For every figure's throughput (and every ratio) it prints each run,
the difference between the two sides' means, and the larger of the two sides' spreads
(max - min over its runs, relative to the overall mean). A difference no larger than that
spread is "within noise"; a larger one names the side that is faster. With as many runs on
each side, given in run order (A1 B1 B2 A2 as `--a A1 A2 --b B1 B2`), it also prints the
paired differences, each between two runs that ran back to back. It also checks that
both sides wrote the same report: the same figures, ratios and supporting ratios (for
chaos reports of any campaign, bench/chaos/report.py: each cell's recovery time, lost
writes, share of 2xx answers and the campaign's checks, and the same fields per cell).

Why not a fixed tolerance: on two cores shared with other stacks a figure moves by tens of
percent between two runs of the same code, so any fixed threshold either flags noise or
hides a regression. ABBA order keeps a drifting load from favouring one side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One compared quantity: its runs on each side, and the verdict."""

    name: str
    a: list[float]
    b: list[float]

    @property
    def diff(self) -> float:
        """(mean B - mean A) / mean of all runs."""
        return (statistics.fmean(self.b) - statistics.fmean(self.a)) / self._scale

    @property
    def paired(self) -> list[float]:
        """(B - A) / mean of the pair, run by run: in ABBA order A1 and B1 ran back to back,
        as did B2 and A2, so each pair shares the host's load of its moment."""
        if len(self.a) != len(self.b):
            return []
        return [(b - a) / (abs(a + b) / 2 or 1.0) for a, b in zip(self.a, self.b, strict=True)]

    @property
    def noise(self) -> float:
        """The larger side's spread, (max - min) / mean of all runs."""
        spreads = [max(v) - min(v) for v in (self.a, self.b) if len(v) > 1]
        return max(spreads, default=0.0) / self._scale

    @property
    def verdict(self) -> str:
        if len(self.a) < 2 and len(self.b) < 2:
            return "no spread (one run per side)"
        if abs(self.diff) <= self.noise:
            return "within noise"
        return "B higher" if self.diff > 0 else "A higher"

    @property
    def _scale(self) -> float:
        return abs(statistics.fmean(self.a + self.b)) or 1.0


def shape(report: dict[str, Any]) -> dict[str, list[str]]:
    """What a report contains, as names: what must not change between harness versions."""
    if isinstance(report.get("cells"), list):
        cells = report["cells"]
        return {
            "top level": sorted(report),
            "cell fields": sorted({key for cell in cells for key in cell}),
        }
    return {
        "figures": sorted(report.get("figures") or {}),
        "ratios": sorted(report.get("ratios") or {}),
        "info_ratios": sorted(report.get("info_ratios") or {}),
        "replication_lag": sorted((report.get("replication_lag") or {}).get("overall") or {}),
    }


# A campaign's own checks worth comparing (report.py: a cell's `checks`; reports written
# before the one runner kept them at the cell's top level, and are read the same way).
CHECKS = ("hits_resume_s", "stale_reads", "server_errors", "failed_writes", "lag_bytes")


def cell_name(cell: dict[str, Any], seen: dict[str, int]) -> str:
    """`target:fault (mode)`, numbered from its second run on (a series repeats a cell)."""
    base = cell.get("cell") or f"{cell.get('target')}:{cell.get('fault')}"
    name = f"{base} ({cell.get('mode')})" if cell.get("mode") else str(base)
    seen[name] = seen.get(name, 0) + 1
    return name if seen[name] == 1 else f"{name} #{seen[name]}"


def chaos_quantities(report: dict[str, Any]) -> dict[str, float]:
    """A chaos report's numbers per cell (every campaign): recovery, lost writes, answered
    shares, the first answer after the fault was lifted, the longest gap without one, and
    the campaign's own checks."""
    values: dict[str, float] = {}
    seen: dict[str, int] = {}
    for cell in report.get("cells") or []:
        if "error" in cell:
            continue
        name = cell_name(cell, seen)
        recover = (cell.get("recover_s") or {}).get("traffic")
        if isinstance(recover, int | float):
            values[f"{name} recover s"] = float(recover)
        if isinstance(cell.get("whole_after_lift_s"), int | float):
            values[f"{name} whole after lift s"] = float(cell["whole_after_lift_s"])
        if isinstance(cell.get("integrity"), dict):
            values[f"{name} lost writes"] = float(cell["integrity"].get("lost", 0))
        for path in ("write", "read"):
            load = cell.get(path) or {}
            if load.get("requests"):
                values[f"{name} {path} 2xx share"] = load["ok"] / load["requests"]
            for key, label in (
                ("first_2xx_after_lift_s", "first 2xx after lift s"),
                ("longest_gap_without_2xx_s", "longest gap s"),
            ):
                if isinstance(load.get(key), int | float):
                    values[f"{name} {path} {label}"] = float(load[key])
        checks = cell.get("checks") or cell
        for key in CHECKS:
            if isinstance(checks.get(key), int | float) and not isinstance(checks[key], bool):
                values[f"{name} {key}"] = float(checks[key])
    return values


def quantities(report: dict[str, Any]) -> dict[str, float]:
    """Every number worth comparing: each figure's rate, each ratio's value (bench), or
    each cell's recovery and integrity (chaos)."""
    if isinstance(report.get("cells"), list):
        return chaos_quantities(report)
    values: dict[str, float] = {}
    for name, figure in (report.get("figures") or {}).items():
        if isinstance(figure, dict) and isinstance(figure.get("rate"), int | float):
            values[f"{name} ({figure.get('rate_unit', 'rate')})"] = float(figure["rate"])
    for group in ("ratios", "info_ratios"):
        for name, entry in (report.get(group) or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("value"), int | float):
                values[name] = float(entry["value"])
    return values


def compare(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> list[Row]:
    """Rows for the quantities present in every report of both sides."""
    sides = [[quantities(r) for r in side] for side in (a, b)]
    common = set.intersection(*(set(q) for side in sides for q in side))
    order = list(quantities(a[0]))
    return [
        Row(name, [q[name] for q in sides[0]], [q[name] for q in sides[1]])
        for name in order
        if name in common
    ]


def shape_differences(reports: Sequence[dict[str, Any]]) -> list[str]:
    """Lines naming what any report has that the first does not, or lacks."""
    first = shape(reports[0])
    lines = []
    for index, report in enumerate(reports[1:], start=2):
        for part, names in shape(report).items():
            missing = sorted(set(first[part]) - set(names))
            extra = sorted(set(names) - set(first[part]))
            if missing or extra:
                lines.append(f"report {index} {part}: missing {missing}, extra {extra}")
    return lines


def markdown(rows: Sequence[Row], a_label: str, b_label: str, shapes: Sequence[str]) -> str:
    def runs(values: Sequence[float]) -> str:
        return ", ".join(f"{v:,.3g}" if abs(v) < 10 else f"{v:,.0f}" for v in values)

    out = [
        f"A = {a_label}; B = {b_label}. Difference = (mean B - mean A) / mean; noise = the "
        "larger side's (max - min) / mean.",
        "",
        "Report shape: " + ("identical" if not shapes else "; ".join(shapes)),
        "",
        "| quantity | A runs | B runs | difference | noise | verdict | paired (B-A) |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for row in rows:
        out.append(
            f"| {row.name} | {runs(row.a)} | {runs(row.b)} | {row.diff:+.1%} | {row.noise:.1%} "
            f"| {row.verdict} | {', '.join(f'{d:+.1%}' for d in row.paired)} |"
        )
    within = sum(1 for row in rows if row.verdict == "within noise")
    out += ["", f"{within} of {len(rows)} quantities within noise."]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--a", nargs="+", type=Path, required=True, help="reports of version A")
    p.add_argument("--b", nargs="+", type=Path, required=True, help="reports of version B")
    p.add_argument("--a-label", default="A")
    p.add_argument("--b-label", default="B")
    args = p.parse_args(argv)
    a = [json.loads(path.read_text()) for path in args.a]
    b = [json.loads(path.read_text()) for path in args.b]
    failed = [
        str(path) for path, r in zip([*args.a, *args.b], [*a, *b], strict=True) if r.get("error")
    ]
    if failed:
        print(f"reports that ended in an error (not comparable): {failed}", file=sys.stderr)
        return 2
    sys.stdout.write(
        markdown(compare(a, b), args.a_label, args.b_label, shape_differences([*a, *b]))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
