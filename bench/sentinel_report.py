"""The sentinel chaos report: per-cell figures from a `History`, and its markdown/JSON.

Pure functions of reads, statuses and cell dicts, so they are unit-tested on made-up
timelines (tests/unit/bench/test_sentinel_report.py). The JSON is the whole record; the
markdown is the table people read.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pgha_testkit.history import Read

# A pause between two cache hits shorter than this is the load's own rhythm (a product
# just written is a MISS until refilled), not an interruption of the cache.
HIT_GAP_S = 1.0
# How far before the fault the last hit is looked for, so the gap it opens is measured.
LOOKBACK_S = 5.0


def hits_resume_s(reads: Sequence[Read], t_fault: float) -> float | None:
    """Seconds from the fault to the first HIT that ends the longest run without hits
    (longer than HIT_GAP_S) reaching past the fault; 0.0 if hits never paused that long,
    None if no HIT came after the fault at all."""
    hits = sorted(
        r.started for r in reads if r.cache == "HIT" and r.started >= t_fault - LOOKBACK_S
    )
    before = [h for h in hits if h <= t_fault]
    # The run without hits that the fault may have opened starts at the last hit before it.
    prev = before[-1] if before else t_fault
    longest, resumed = 0.0, None
    for hit in (h for h in hits if h > t_fault):
        if hit - prev > longest:
            longest, resumed = hit - prev, hit
        prev = hit
    if resumed is None:
        return None
    return 0.0 if longest <= HIT_GAP_S else round(resumed - t_fault, 2)


def server_errors(statuses: Mapping[int, int]) -> int:
    """5xx answers, plus requests that got no answer at all (status -1: timeout, reset)."""
    return sum(n for code, n in statuses.items() if code >= 500 or code < 0)


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and max of a series; a run with no value (None) is counted as missing."""
    known = [v for v in values if v is not None]
    return {
        "runs": len(values),
        "missing": len(values) - len(known),
        "median": round(statistics.median(known), 2) if known else None,
        "max": round(max(known), 2) if known else None,
    }


COLUMNS = (
    ("cell", "cell"),
    ("5xx", "server_errors"),
    ("stale", "stale_reads"),
    ("hits resume (s after fault)", "hits_resume_s"),
    ("failover", "failover"),
    ("primary before → after", "primaries"),
    ("reads (HIT/MISS/BYPASS)", "caches"),
    ("writes", "writes"),
    ("write stall p50/p99/max (s)", "stall"),
    ("failed writes", "failed_writes"),
    ("held (s)", "held_s"),
)


def _cell_value(cell: Mapping[str, Any], key: str) -> str:
    if key == "primaries":
        return f"{cell.get('primary_before')} → {cell.get('primary_after')}"
    if key == "caches":
        c = cell.get("reads_by_cache", {})
        return f"{c.get('HIT', 0)}/{c.get('MISS', 0)}/{c.get('BYPASS', 0)}"
    if key == "failover":
        return "yes" if cell.get("failover") else "no"
    if key == "stall":
        st = cell.get("write_stall_s") or {}
        return "/".join("-" if st.get(q) is None else f"{st[q]:.2f}" for q in ("p50", "p99", "max"))
    value = cell.get(key)
    return "never" if value is None and key == "hits_resume_s" else str(value)


def markdown(meta: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        f"# Sentinel chaos {meta.get('run_id')}",
        "",
        f"`{meta.get('command')}` on stack `{meta.get('stack')}`; load average "
        f"{meta.get('loadavg_start')} at start, {meta.get('loadavg_end')} at the end. "
        f"down-after-milliseconds {meta.get('down_after_ms')}: the hits-resume goal is "
        f"{meta.get('goal_hits_resume_s')} s after a primary kill.",
        "",
        "| " + " | ".join(h for h, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for cell in cells:
        if "error" in cell:
            lines.append(f"| {cell.get('cell')} | error: {cell['error']} |")
            continue
        lines.append("| " + " | ".join(_cell_value(cell, k) for _, k in COLUMNS) + " |")
        if "not_whole" in cell:
            lines.append(f"| ↳ not whole again: {cell['not_whole']} |")
    for name, figures in meta.get("series", {}).items():
        lines += ["", f"{name}: {json.dumps(figures)}"]
    return "\n".join(lines) + "\n"


def write_report(stem: Path, meta: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "cells": cells}, indent=2))
    stem.with_suffix(".md").write_text(markdown(meta, cells))
