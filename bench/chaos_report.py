"""The chaos report: per-cell outage figures from the load's events, and its markdown/JSON.

Pure functions of `Event`s and cell dicts, so they are unit-tested on made-up timelines
(tests/unit/bench). The JSON is the whole record; the markdown is the table people read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pgha_testkit.load import Event


def longest_error_streak(events: Sequence[Event]) -> float:
    """Longest run of failures with no success in between: first failing start to last
    failing end, in order of completion."""
    longest = 0.0
    streak_start: float | None = None
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
    """One kind's (`write` or `read`) figures for a cell whose fault ran t_fault..t_lift."""
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


RECOVER_GOAL_S = 2.0


def slow_recoveries(cells: Sequence[dict[str, Any]], goal: float = RECOVER_GOAL_S) -> list[str]:
    """Every cell (and phase, traffic or quiet) whose path needed longer than `goal` after
    its container was healthy, or never recovered (None)."""
    slow = []
    for c in cells:
        for phase, value in (c.get("recover_s") or {}).items():
            if value is None or value > goal:
                took = "never" if value is None else f"{value:.2f} s"
                slow.append(f"{c['target']} {c['fault']} ({c['mode']}, {phase}): {took}")
    return slow


def recovery_section(cells: Sequence[dict[str, Any]]) -> list[str]:
    measured = [c for c in cells if c.get("recover_s")]
    if not measured:
        return []

    def fmt(value: float | None, present: bool) -> str:
        return "-" if not present else "never" if value is None else f"{value:.2f}"

    lines = [
        f"Recover: from the moment the fault is lifted and the container is healthy to the "
        f"first success of the path that needs it, under the load and with no traffic at all "
        f"(goal {RECOVER_GOAL_S:.0f} s).",
        "",
        "| target | fault | mode | recover traffic s | recover quiet s |",
        "|---|---|---|---|---|",
    ]
    for c in measured:
        r = c["recover_s"]
        lines.append(
            f"| {c['target']} | {c['fault']} | {c['mode']} "
            f"| {fmt(r.get('traffic'), 'traffic' in r)} | {fmt(r.get('quiet'), 'quiet' in r)} |"
        )
    slow = "; ".join(slow_recoveries(measured)) or "none"
    lines += ["", f"Above the {RECOVER_GOAL_S:.0f} s goal: {slow}.", ""]
    return lines


def fmt_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{code}×{n}" for code, n in errors.items()) or "0"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(meta: dict[str, Any], cells: Sequence[dict[str, Any]]) -> str:
    load, d = meta["load"], meta["durations"]
    lines = [
        f"# pgha chaos run {meta['run_id']}",
        "",
        f"Stack `{meta['stack']}`, command `{meta['command']}`, started {meta['started']}.",
        f"Load: {load['writers']} writers + {load['readers']} readers through the API, client "
        f"timeout {load['timeout_s']:.0f} s; phases {d['before']:.0f} s before the fault, "
        f"held {d['hold']:.0f} s, {d['after']:.0f} s after it is lifted.",
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
        if "history" in c:
            h = c["history"]
            notes.append(
                f"**{h['stale_reads']} stale reads** of {h['reads']} ({h['stale_after_kill']} "
                f"after the kill), {c['writes_acked_while_cut']} writes acked while cut off"
            )
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
    lines += recovery_section(cells)
    return "\n".join(lines)


def write_report(path: Path, meta: dict[str, Any], cells: Sequence[dict[str, Any]]) -> None:
    path.with_suffix(".json").write_text(json.dumps({**meta, "cells": list(cells)}, indent=2))
    path.with_suffix(".md").write_text(markdown(meta, cells))
