#!/usr/bin/env python3
"""Renders the figures README.md and docs/ show from the reports in bench/results/published/.

Why: figures copied into prose by hand go stale and drift apart. Each table this script
writes sits between two marker comments in its page; the reports are the one source.
`make docs-build` (and so `make test`) runs it with `--check`, which fails when a page
no longer matches the reports; `make docs-figures` rewrites the pages.

To publish a newer bench run: copy its `bench/results/<run id>.json` into
bench/results/published/ as `bench-<run id>.json` (the newest one is rendered), then run
`make docs-figures`. Recovery figures live in bench/results/published/recovery.json; the
newest `drill-<run id>.json` (`make drill`) is rendered in docs/backups.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "bench" / "results" / "published"

# The bench figures the main table shows, in order, with the label a reader sees.
BENCH_ROWS: list[tuple[str, str]] = [
    ("api_hit", "API GET, cache hit (HTTP frontend)"),
    ("twin_hit", "API twin GET, cache hit (one instance, own port)"),
    ("api_miss", "API GET, cache miss → replica (frontend)"),
    ("twin_miss", "API twin GET, cache miss (own port)"),
    ("api_post", "API POST (frontend)"),
    ("api_put", "API PUT (frontend)"),
    ("bare", "anchor: bare uvicorn + Starlette JSON"),
    ("bare_query", "anchor: bare Starlette + psycopg SELECT"),
    ("bare_insert", "anchor: bare INSERT"),
    ("bare_update", "anchor: bare UPDATE"),
    ("twin_post_haproxy", "API twin POST, via HAProxy"),
    ("twin_post_direct", "API twin POST, straight to the primary"),
]
# The few bench figures the README's headline shows.
HEADLINE_ROWS = ("api_hit", "api_miss", "api_post", "api_put")


def latest_bench() -> dict[str, Any]:
    # Run ids are UTC timestamps, so the newest report sorts last.
    reports = sorted(PUBLISHED.glob("bench-*.json"))
    if not reports:
        raise SystemExit(f"no bench-*.json in {PUBLISHED}")
    data: dict[str, Any] = json.loads(reports[-1].read_text())
    return data


def recovery() -> list[dict[str, Any]]:
    data = json.loads((PUBLISHED / "recovery.json").read_text())
    figures: list[dict[str, Any]] = data["figures"]
    return figures


def run_date(run_id: str) -> str:
    """`20261130T085413Z` -> `2026-11-30 08:54 UTC`."""
    m = re.fullmatch(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)\d\dZ", run_id)
    return f"{m[1]}-{m[2]}-{m[3]} {m[4]}:{m[5]} UTC" if m else run_id


def num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def p50(value: float | None) -> str:
    # Three significant figures, as the reports print them.
    return "n/a" if value is None else f"{value:.3g}"


def bench_source(report: dict[str, Any]) -> str:
    meta = report["meta"]
    load = meta.get("host", {})
    return (
        f"Run `{meta['run_id']}` ({run_date(meta['run_id'])}): `{meta['command']}` at "
        f"{meta.get('git_commit', '?')}, {meta.get('api_instances', '?')} API instances × "
        f"{meta.get('api_workers', '?')} worker, wrk `{meta.get('wrk', '?')}`, "
        f"{meta.get('rounds', '?')} rounds, load average {load.get('loadavg_start', ['?'])[0]} "
        f"at the start and {load.get('loadavg_end', ['?'])[0]} at the end, on 2 shared cores."
    )


def render_bench_latest(link: str) -> list[str]:
    report = latest_bench()
    figures = report["figures"]
    lines = [
        bench_source(report),
        "",
        "| figure | req/s | p50 ms | server CPU µs/req | CPU-ms / 1k along the path |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in BENCH_ROWS:
        f = figures.get(key)
        if f is None:
            continue
        path = (f.get("path_cpu_ms_per_1k") or {}).get("total")
        lines.append(
            f"| {label} | {num(f.get('rate'))} | {p50(f.get('p50_ms'))} "
            f"| {num(f.get('server_cpu_us_per_req'))} | {num(path)} |"
        )
    lines += ["", "| ratio | value | goal | met |", "|---|---:|---|---|"]
    for name, r in report["ratios"].items():
        if r.get("value") is None:
            continue
        met = {True: "yes", False: "**no**", None: "n/a"}[r.get("met")]
        lines.append(f"| `{name}` | {r['value']:g} | {r['goal']} | {met} |")
    return lines


def render_recovery(link: str) -> list[str]:
    lines = ["| what | result | runs | date | report |", "|---|---|---:|---|---|"]
    for f in recovery():
        reports = ", ".join(f"`{r}`" for r in f["reports"])
        lines.append(
            f"| [{f['what']}]({link}{f['page']}) | {f['result']} | {f['runs']} "
            f"| {f['date']} | {reports} |"
        )
    return lines


def render_readme(link: str) -> list[str]:
    report = latest_bench()
    figures = report["figures"]
    ratios = report["ratios"]
    meta = report["meta"]
    cells = []
    for key in HEADLINE_ROWS:
        f = figures[key]
        label = dict(BENCH_ROWS)[key].split(" (")[0]
        cells.append(f"{label}: {num(f['rate'])} req/s (p50 {p50(f['p50_ms'])} ms)")
    hit = ratios.get("hit_vs_bare", {}).get("value")
    lag = ratios.get("replication_lag_p99_ms", {}).get("value")
    lines = [
        f"Bench, {run_date(meta['run_id'])} (run `{meta['run_id']}`, 2 API instances on a "
        f"quiet 2-core host; [all figures and goals]({link}benchmarking.md)):",
        "",
        *[f"- {c}" for c in cells],
        f"- cache hit ÷ bare uvicorn + Starlette: {num(hit, 2)}; replication lag p99: "
        f"{num(lag, 0)} ms",
        "",
        "Recovery, under load, with every acknowledged write checked afterwards:",
        "",
        *render_recovery(link),
    ]
    return lines


def latest_drill() -> dict[str, Any]:
    reports = sorted(PUBLISHED.glob("drill-*.json"))
    if not reports:
        raise SystemExit(f"no drill-*.json in {PUBLISHED}")
    data: dict[str, Any] = json.loads(reports[-1].read_text())
    return data


def render_drill(link: str) -> list[str]:
    """`make drill`'s figures (bench/drill/report.py), each against its goal."""
    report = latest_drill()
    meta, fill = report["meta"], report["fill"]
    lines = [
        f"Drill `{meta['run_id']}` ({run_date(meta['run_id'])}): `{meta['command']}` at "
        f"{meta['git_commit']}, failoverMode {meta['mode']}, {len(meta['nodes'])} nodes, "
        f"pgbench scale {fill['scale']} ({fill['db_bytes'] / 1e6:,.0f} MB), load average "
        f"{meta['loadavg_start']} at the start and {meta['loadavg_end']} at the end, "
        "on 2 shared cores.",
        "",
        "| figure | value | goal | met |",
        "|---|---:|---|---|",
    ]
    for row in report["goals"]:
        if row["value"] is None:
            continue
        met = {True: "yes", False: "**no**", None: ""}[row["met"]]
        lines.append(f"| {row['label']} | {row['value']:,} | {row['goal']} | {met} |")
    return lines


# page -> [(block name, renderer, link prefix from that page to docs/)]
Renderer = Callable[[str], list[str]]
BLOCKS: dict[str, list[tuple[str, Renderer, str]]] = {
    "README.md": [("headline", render_readme, "docs/")],
    "docs/backups.md": [("drill", render_drill, "")],
    "docs/benchmarking.md": [
        ("bench-latest", render_bench_latest, ""),
        ("recovery", render_recovery, ""),
    ],
}


def begin(name: str) -> str:
    return f"<!-- BEGIN generated by scripts/docs_figures.py: {name} -->"


def end(name: str) -> str:
    return f"<!-- END generated: {name} -->"


def render_page(text: str, blocks: list[tuple[str, Renderer, str]]) -> str:
    for name, renderer, link in blocks:
        pattern = re.compile(re.escape(begin(name)) + r"\n.*?" + re.escape(end(name)), re.S)
        found = pattern.search(text)
        if not found:
            raise SystemExit(f"marker pair for {name!r} missing")
        body = "\n".join([begin(name), "", *renderer(link), "", end(name)])
        text = text[: found.start()] + body + text[found.end() :]
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a page is out of date")
    args = parser.parse_args()
    stale = []
    for page, blocks in BLOCKS.items():
        path = ROOT / page
        old = path.read_text()
        new = render_page(old, blocks)
        if new != old:
            stale.append(page)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(
            f"out of date with bench/results/published: {', '.join(stale)}; "
            "run `make docs-figures`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
