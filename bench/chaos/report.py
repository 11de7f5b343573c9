"""The one chaos report of every campaign: `{meta, cells}` as JSON, and its markdown.

Every cell has the same keys whatever the campaign: `cell`, `target`, `fault`, `mode`,
`targets`, `held_s`, `recover_s` (`traffic`, and `quiet` where measured), `whole_after_lift_s`,
`write` and `read` (figures.summarize, None without a ledger load), `integrity` (the
ledger check, None without one) and `checks`, the campaign's own figures, whose columns
the campaign names. The JSON is the whole record; the markdown the tables people read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.chaos.figures import RECOVER_GOAL_S, slow_recoveries, summary

Columns = Sequence[tuple[str, str]]


def fmt_errors(errors: Mapping[str, int]) -> str:
    return ", ".join(f"{code}×{n}" for code, n in errors.items()) or "0"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return "/".join(fmt(v) for v in value.values())
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _recover(r: Mapping[str, Any], phase: str) -> str:
    if phase not in r:
        return "-"
    return "never" if r[phase] is None else f"{r[phase]:.2f}"


def cell_row(c: Mapping[str, Any]) -> str:
    w, r, i = c.get("write") or {}, c.get("read") or {}, c.get("integrity") or {}
    notes = []
    if i.get("duplicated"):
        notes.append(f"{i['duplicated']} duplicated")
    if "not_whole" in c:
        notes.append(f"NOT WHOLE: {c['not_whole']}")
    notes += list(c.get("notes") or [])
    rec = c.get("recover_s") or {}

    def pair(key: str) -> str:
        return f"{fmt_s(w.get(key))} / {fmt_s(r.get(key))}"

    return (
        f"| {c['cell']} | {c.get('mode') or '-'} | {fmt_s(c.get('held_s'))} "
        f"| {fmt_errors(w['errors']) if w else '-'} | {fmt_errors(r['errors']) if r else '-'} "
        f"| {pair('longest_gap_without_2xx_s')} | {fmt_s(w.get('first_2xx_after_fault_s'))} "
        f"| {pair('first_2xx_after_lift_s')} "
        f"| {_recover(rec, 'traffic')} / {_recover(rec, 'quiet')} "
        f"| {fmt_s(c.get('whole_after_lift_s'))} | {fmt(i.get('acked'))} "
        f"| **{fmt(i.get('lost'))}** | {fmt(i.get('indeterminate_committed'))} "
        f"| {'; '.join(notes)} |"
    )


def markdown(
    meta: Mapping[str, Any], cells: Sequence[Mapping[str, Any]], checks: Columns = ()
) -> str:
    p, load, host = meta.get("phases") or {}, meta.get("load"), meta.get("host") or {}
    lines = [
        f"# pgha chaos: {meta.get('campaign')} {meta.get('run_id')}",
        "",
        f"Stack `{meta.get('stack')}`, command `{meta.get('command')}` "
        f"at {meta.get('git_commit')}, "
        f"started {meta.get('started')}; load average {host.get('loadavg_start')} at the start, "
        f"{host.get('loadavg_end')} at the end.",
        f"Phases: {p.get('before')} s of load before the fault, held {p.get('hold')} s (or as "
        f"the campaign says), {p.get('after')} s after it is lifted. Ledger load: {load}.",
        "",
        "No-2xx gap: longest time between two successful completions. Write RTO: first 2xx "
        "write sent after the fault was in place, from the fault. Resume: first 2xx after "
        "the lift. Recover: from the lifted container being healthy to the first success of "
        f"the path that needs it, under load and with no traffic (goal {RECOVER_GOAL_S:.0f} s). "
        "Whole: after the lift, until the campaign's stack is whole. Lost: acknowledged "
        "writes missing from the primary. Indet.: writes that failed for the client but "
        "committed.",
        "",
        "| cell | mode | held s | write errors | read errors | no-2xx gap w/r s | write RTO s "
        "| resume w/r s | recover traffic/quiet s | whole s | acked | lost | indet. | notes |",
        "|" + "---|" * 14,
    ]
    for c in cells:
        if "error" in c:
            lines.append(f"| {c.get('cell')} | {c.get('mode') or '-'} | aborted: {c['error']} |")
            continue
        lines.append(cell_row(c))
    measured = [c for c in cells if "error" not in c]
    lost = sum((c.get("integrity") or {}).get("lost", 0) for c in measured)
    slow = "; ".join(slow_recoveries(measured)) or "none"
    lines += [
        "",
        f"Lost acknowledged writes in total: **{lost}**. "
        f"Recover above the {RECOVER_GOAL_S:.0f} s goal: {slow}.",
    ]
    if checks and measured:
        lines += ["", "## Checks", "", "| cell | " + " | ".join(h for h, _ in checks) + " |"]
        lines.append("|" + "---|" * (len(checks) + 1))
        for c in measured:
            own = c.get("checks") or {}
            row = " | ".join(fmt(own.get(k)) for _, k in checks)
            lines.append(f"| {c['cell']} | {row} |")
    series = meta.get("series") or {}
    if series:
        lines += ["", "## Series", "", "| series | runs | median s | max s | lost |"]
        lines.append("|---|---|---|---|---|")
        for name, s in series.items():
            figures = " | ".join(fmt(s[k]) for k in ("runs", "median", "max", "lost"))
            lines.append(f"| {name} | {figures} |")
    for key, value in (meta.get("notes") or {}).items():
        lines += ["", f"{key}: {value}"]
    return "\n".join(lines) + "\n"


def lost_total(records: Sequence[dict[str, Any]]) -> int | None:
    lost = [(r.get("integrity") or {}).get("lost") for r in records]
    return None if any(v is None for v in lost) else sum(int(v or 0) for v in lost)


def series(
    value_of: Callable[[dict[str, Any]], float | None], records: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Each named series' summary (median, max) and its lost writes."""
    names = dict.fromkeys(r["series"] for r in records if r.get("series"))
    out = {}
    for name in names:
        mine = [r for r in records if r.get("series") == name]
        out[name] = {
            **summary([value_of(r) for r in mine]),
            "lost": lost_total(mine),
        }
    return out


def write_report(
    stem: Path, meta: Mapping[str, Any], cells: Sequence[Mapping[str, Any]], checks: Columns = ()
) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "cells": list(cells)}, indent=2, default=str)
    )
    stem.with_suffix(".md").write_text(markdown(meta, cells, checks))
