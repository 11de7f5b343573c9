"""The patroni chaos report: per-cell figures from a load's events and node samples.

Pure functions, unit-tested on made-up timelines (tests/unit/bench), so that what the
report calls an RTO, an outage or a split brain is pinned down apart from any Docker run.
`bench/patroni_chaos.py` collects the inputs; the JSON is the whole record, the markdown
the tables people read.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.chaos_report import longest_gap_without_2xx
from pgha_testkit.load import Event


@dataclass(frozen=True)
class NodeState:
    # HAProxy can reach it: running, not paused, on the stack network.
    reachable: bool
    # pg_is_in_recovery() = false; None when it did not answer.
    writable: bool | None


# (seconds since the fault, node -> state)
Sample = tuple[float, Mapping[str, NodeState]]


def first_write_after(
    events: Sequence[Event], t_fault: float, t_done: float | None = None
) -> float | None:
    """Seconds from the fault to the end of the first 2xx write that started once the fault
    was in place (`t_done`: the Docker call returned): the RTO as a client sees it.

    A write started earlier proves nothing: under load `docker kill` itself took long
    enough for writes sent during the call to succeed 0.03 s "after" the fault.
    """
    since = t_fault if t_done is None else t_done
    ends = [e.end for e in events if e.kind == "write" and e.ok and e.start >= since]
    return round(min(ends) - t_fault, 2) if ends else None


def write_outage(events: Sequence[Event]) -> float:
    """Longest time without a 2xx write, over the whole cell."""
    return longest_gap_without_2xx([e for e in events if e.kind == "write"])


def split_brain_samples(samples: Sequence[Sample]) -> list[float]:
    """When two nodes that HAProxy could both reach were writable at once.

    A writable node that is cut off (disconnected, paused) is not a split brain by the
    issue's definition: no client can reach it, and it must only stop writing within ttl.
    """
    return [
        t
        for t, states in samples
        if sum(1 for s in states.values() if s.reachable and s.writable is True) > 1
    ]


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and max of the observed values; missing ones are counted, not guessed."""
    seen = [v for v in values if v is not None]
    return {
        "runs": len(values),
        "missing": len(values) - len(seen),
        "median": round(statistics.median(seen), 2) if seen else None,
        "max": round(max(seen), 2) if seen else None,
        "values": list(values),
    }


def _fmt(value: object) -> str:
    return "-" if value is None else str(value)


CELL_COLUMNS = (
    ("cell", "cell"),
    ("mode", "mode"),
    ("first 2xx write after fault (s)", "first_write_s"),
    ("longest write outage (s)", "write_outage_s"),
    ("failed writes", "failed_writes"),
    ("failed reads", "failed_reads"),
    ("lost acked writes", "lost"),
    ("lag at fault (bytes)", "lag_bytes"),
    ("split brain", "split_brain"),
    ("leader after", "leader_after"),
)


def markdown(meta: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "# pgha patroni chaos report",
        "",
        f"- started: {meta.get('started_at')}; commit {meta.get('git_commit')}",
        f"- command: `{meta.get('command')}`",
        f"- nodes: {meta.get('nodes')}; host: {meta.get('host')}",
        "",
    ]
    series = meta.get("series", {})
    if series:
        lines += ["## Series", "", "| series | runs | median (s) | max (s) | lost acked writes |"]
        lines += ["|---|---|---|---|---|"]
        for name, s in series.items():
            lines.append(
                f"| {name} | {s['runs']} | {_fmt(s['median'])} | {_fmt(s['max'])} "
                f"| {_fmt(s.get('lost'))} |"
            )
        if meta.get("defaults_ratio") is not None:
            lines += ["", f"Patroni defaults / pgha timings, median RTO: {meta['defaults_ratio']}x"]
        lines.append("")
    lines += ["## Cells", "", "| " + " | ".join(h for h, _ in CELL_COLUMNS) + " |"]
    lines.append("|" + "---|" * len(CELL_COLUMNS))
    for cell in cells:
        lines.append("| " + " | ".join(_fmt(cell.get(k)) for _, k in CELL_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_report(stem: Path, meta: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "cells": cells}, indent=2))
    stem.with_suffix(".md").write_text(markdown(meta, cells))
