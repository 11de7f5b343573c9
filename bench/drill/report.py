"""The drill's report: `bench/results/drill-<run id>.json` and `.md`, like `make bench`.

Goals (issue 22) are printed beside each figure and never asserted: a drill on a shared
2-core host reports what it saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pgha_testkit.env import ROOT

RESULTS = ROOT / "bench" / "results"

# (figure path in the report, label, goal text, check on the value or None)
GOALS: list[tuple[str, str, str, Any]] = [
    ("backup.seconds", "full backup", "<= 120 s", lambda v: v <= 120),
    ("backup.api_get_p99_ms", "API GET p99 during the backup, ms", "report", None),
    ("baseline.api_get_p99_ms", "API GET p99 without a backup, ms", "report", None),
    ("backup.api_post_p99_ms", "API POST p99 during the backup, ms", "report", None),
    ("baseline.api_post_p99_ms", "API POST p99 without a backup, ms", "report", None),
    (
        "pitr.writable_s",
        "PITR: primary writable after `up` starts, s",
        "<= 180 s",
        lambda v: v <= 180,
    ),
    (
        "pitr.all_streaming_s",
        "PITR: every replica streaming after `up` starts, s",
        "<= 300 s",
        lambda v: v <= 300,
    ),
    (
        "pitr.exactness.lost",
        "PITR: ledger rows acknowledged by the target, missing",
        "0",
        lambda v: v == 0,
    ),
    (
        "pitr.exactness.phantom",
        "PITR: ledger rows sent after the target, present",
        "0",
        lambda v: v == 0,
    ),
    (
        "operator_error.missing",
        "operator error: seeded rows missing after the restore",
        "0",
        lambda v: v == 0,
    ),
    (
        "rpo.acked_lost",
        "total loss: acknowledged writes lost",
        "only the last archive_timeout",
        None,
    ),
    ("rpo.lost_window_s", "total loss: window of the lost writes, s", "<= 60 s", lambda v: v <= 60),
    ("rpo.loss_to_writable_s", "total loss: loss to writable, s", "report", None),
    (
        "replica.pgbackrest.to_streaming_s",
        "replica from the repository: to streaming, s",
        "report",
        None,
    ),
    (
        "replica.basebackup.to_streaming_s",
        "replica by pg_basebackup: to streaming, s",
        "report",
        None,
    ),
    (
        "replica.pgbackrest.primary_sent_bytes",
        "replica from the repository: bytes the leader sent",
        "report",
        None,
    ),
    (
        "replica.basebackup.primary_sent_bytes",
        "replica by pg_basebackup: bytes the leader sent",
        "report",
        None,
    ),
]


def lookup(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def goal_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for path, label, goal, check in GOALS:
        value = lookup(report, path)
        met = None if value is None or check is None else bool(check(value))
        rows.append({"figure": path, "label": label, "value": value, "goal": goal, "met": met})
    return rows


def markdown(report: dict[str, Any]) -> str:
    meta, fill = report["meta"], report.get("fill", {})
    lines = [
        f"# Backup and restore drill `{meta['run_id']}`",
        "",
        f"`{meta['command']}` at {meta['git_commit']}, failoverMode {meta['mode']}, "
        f"nodes {' '.join(meta['nodes'])}, pgbench scale {fill.get('scale', '?')} "
        f"({fill.get('db_bytes', 0) / 1e6:,.0f} MB), load average "
        f"{meta['loadavg_start']} at the start and {meta['loadavg_end']} at the end.",
        "",
        "| figure | value | goal | met |",
        "|---|---:|---|---|",
    ]
    for row in report["goals"]:
        met = {True: "yes", False: "**no**", None: ""}[row["met"]]
        value = "n/a" if row["value"] is None else f"{row['value']:,}"
        lines.append(f"| {row['label']} | {value} | {row['goal']} | {met} |")
    if report.get("errors"):
        lines += ["", "Errors:", "", *[f"- {e}" for e in report["errors"]]]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any]) -> Path:
    report["goals"] = goal_rows(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"drill-{report['meta']['run_id']}.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    path.with_suffix(".md").write_text(markdown(report))
    return path
