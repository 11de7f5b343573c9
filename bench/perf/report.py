"""The benchmark report: goals, the `Report` record, ratios, and its JSON, markdown and PNG.

Goals live here and only here; the README and the markdown show them, nothing asserts
them. Everything but the chart is a pure function of a `Report`, so rendering is
unit-tested on a fixed one (tests/unit/bench).
"""

from __future__ import annotations

import json
import operator
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import BenchError, ratio
from bench.perf.footprint import cpu_table, memory_table
from bench.perf.tools import http_failures

MATPLOTLIB_PIN = "matplotlib==3.11.2"

# name -> (comparison, goal, what it is)
GOALS: dict[str, tuple[str, float, str]] = {
    "hit_vs_bare": (">=", 0.7, "API cache-hit req/s / bare uvicorn+Starlette JSON req/s"),
    "hit_vs_bare_direct": (
        ">=",
        0.85,
        "one API instance's cache-hit req/s on its own port / bare uvicorn+Starlette JSON req/s",
    ),
    "hit_vs_miss_p50": ("<=", 0.5, "p50 of a cache hit / p50 of a miss served by the replica"),
    "miss_vs_bare_query": (
        ">=",
        0.9,
        "API cache-miss req/s / bare Starlette+psycopg SELECT req/s (both via HAProxy replicas)",
    ),
    "miss_vs_bare_query_direct": (
        ">=",
        0.9,
        "one API instance's cache-miss req/s on its own port / bare Starlette+psycopg SELECT",
    ),
    "post_vs_bare_insert": (">=", 0.8, "API POST req/s / bare Starlette+psycopg INSERT req/s"),
    "put_vs_bare_update": (">=", 0.8, "API PUT req/s / bare Starlette+psycopg UPDATE req/s"),
    "api_haproxy_write_overhead": (
        "<=",
        0.10,
        "1 - POST req/s of an API twin writing via HAProxy / of one writing to the primary",
    ),
    "haproxy_write_overhead": (
        "<=",
        0.15,
        "pgbench, not the API's path (5 round trips per transaction through the hop): "
        "1 - write TPS via HAProxy / TPS directly to the primary",
    ),
    "replication_lag_p99_ms": ("<", 100.0, "p99 of replay_lag sampled during write runs, ms"),
}

# Supporting ratios without a goal: they explain the goal ratios on a noisy shared host.
INFO_RATIOS: dict[str, str] = {
    "hit_vs_bare_cpu": "bare CPU per request / API hit CPU per request (server containers)",
    "hit_vs_miss_p50_c1": "hit p50 / miss p50 with one connection (service time, no queueing)",
    "miss_vs_bare_query_cpu": "bare SELECT anchor CPU per request / API miss CPU per request",
    "post_vs_bare_insert_cpu": "bare INSERT anchor CPU per request / API POST CPU per request",
    "haproxy_read_share": "pgbench -S TPS via HAProxy replicas / TPS direct to the replica",
}

# Order and labels of the figures in the report and the chart.
FIGURES: list[tuple[str, str]] = [
    ("api_hit", "API GET, cache hit"),
    ("api_miss", "API GET, cache miss -> replica"),
    ("twin_hit", "API twin GET, cache hit, own port (no HTTP frontend)"),
    ("twin_miss", "API twin GET, cache miss, own port (no HTTP frontend)"),
    ("api_hit_c1", "API GET, cache hit, 1 connection"),
    ("api_miss_c1", "API GET, cache miss, 1 connection"),
    ("api_post", "API POST (-> HAProxy primary)"),
    ("api_put", "API PUT (-> HAProxy primary)"),
    ("bare", "bare uvicorn+Starlette JSON"),
    ("bare_query", "bare Starlette+psycopg SELECT (-> HAProxy replicas)"),
    ("bare_insert", "bare Starlette+psycopg INSERT (-> HAProxy primary)"),
    ("bare_update", "bare Starlette+psycopg UPDATE (-> HAProxy primary)"),
    ("twin_post_haproxy", "API twin POST, write DSN via HAProxy primary"),
    ("twin_post_direct", "API twin POST, write DSN straight to the primary"),
    ("redis_get", "redis-benchmark GET"),
    ("pg_select_replica", "pgbench -S, replica direct"),
    ("pg_select_haproxy", "pgbench -S, via HAProxy replicas"),
    ("pg_write_direct", "pgbench write, primary direct"),
    ("pg_write_haproxy", "pgbench write, via HAProxy primary"),
]
LABELS = dict(FIGURES)
COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


@dataclass
class Report:
    meta: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    replication_lag: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, Any] = field(default_factory=dict)
    info_ratios: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def ensure_matplotlib() -> None:
    # Checked before any load: a missing chart library must not waste a two-minute run.
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise BenchError(
            f"matplotlib is missing: {sys.executable} -m pip install {MATPLOTLIB_PIN}"
        ) from exc


def overhead(via: float | None, direct: float | None) -> float | None:
    """1 - via / direct: the share of the direct rate that the extra hop costs."""
    share = ratio(via, direct)
    return None if share is None else 1 - share


def evaluate(report: Report) -> None:
    """Fills `ratios` (each against its goal) and `info_ratios` from figures and lag."""
    f = report.figures

    def get(key: str, metric: str) -> float | None:
        value = f.get(key, {}).get(metric)
        return None if value is None else float(value)

    values = {
        "hit_vs_bare": ratio(get("api_hit", "rate"), get("bare", "rate")),
        "hit_vs_bare_direct": ratio(get("twin_hit", "rate"), get("bare", "rate")),
        "hit_vs_miss_p50": ratio(get("api_hit", "p50_ms"), get("api_miss", "p50_ms")),
        "miss_vs_bare_query": ratio(get("api_miss", "rate"), get("bare_query", "rate")),
        "miss_vs_bare_query_direct": ratio(get("twin_miss", "rate"), get("bare_query", "rate")),
        "post_vs_bare_insert": ratio(get("api_post", "rate"), get("bare_insert", "rate")),
        "put_vs_bare_update": ratio(get("api_put", "rate"), get("bare_update", "rate")),
        "api_haproxy_write_overhead": overhead(
            get("twin_post_haproxy", "rate"), get("twin_post_direct", "rate")
        ),
        "haproxy_write_overhead": overhead(
            get("pg_write_haproxy", "rate"), get("pg_write_direct", "rate")
        ),
        "replication_lag_p99_ms": report.replication_lag.get("overall", {}).get("p99_ms"),
    }
    info = {
        "hit_vs_bare_cpu": ratio(
            get("bare", "server_cpu_us_per_req"), get("api_hit", "server_cpu_us_per_req")
        ),
        "hit_vs_miss_p50_c1": ratio(get("api_hit_c1", "p50_ms"), get("api_miss_c1", "p50_ms")),
        "miss_vs_bare_query_cpu": ratio(
            get("bare_query", "server_cpu_us_per_req"), get("api_miss", "server_cpu_us_per_req")
        ),
        "post_vs_bare_insert_cpu": ratio(
            get("bare_insert", "server_cpu_us_per_req"), get("api_post", "server_cpu_us_per_req")
        ),
        "haproxy_read_share": ratio(
            get("pg_select_haproxy", "rate"), get("pg_select_replica", "rate")
        ),
    }
    for name, value in info.items():
        report.info_ratios[name] = {
            "value": None if value is None else round(value, 4),
            "meaning": INFO_RATIOS[name],
        }
    for name, value in values.items():
        op, goal, meaning = GOALS[name]
        met = None if value is None else bool(COMPARE[op](value, goal))
        report.ratios[name] = {
            "value": None if value is None else round(value, 4),
            "goal": f"{op} {goal:g}",
            "met": met,
            "meaning": meaning,
        }


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _figure_notes(fig: dict[str, Any]) -> list[str]:
    notes = []
    if fig.get("kind") == "http":
        notes.append(f"{fig['requests']:,} requests")
        xc = fig["x_cache"]
        if xc["hit"] or xc["miss"] or xc["bypass"]:
            notes.append(f"X-Cache HIT {xc['hit']:,} / MISS {xc['miss']:,} / BYPASS {xc['bypass']}")
        bad = http_failures(fig)
        if bad:
            notes.append(f"{bad} errors/non-2xx")
    if "server_cpu_us_per_req" in fig:
        notes.append(
            f"server CPU {fig['server_cpu_us_per_req']:.0f} us/req "
            f"({fig['server_cpu_cores']:.2f} cores busy)"
        )
    rounds = fig.get("rounds_tps") or fig.get("rounds_rate") or []
    if len(rounds) > 1:
        notes.append(f"rounds {', '.join(f'{x:,.0f}' for x in rounds)}")
    return notes


def render_markdown(report: Report) -> str:
    m = report.meta
    host = m.get("host", {})
    lines = [
        f"# pgha bench {m.get('run_id', '')}",
        "",
        f"- command: `{m.get('command')}` (stack `{m.get('stack')}`, commit "
        f"`{m.get('git_commit')}`{' + local changes' if m.get('git_dirty') else ''})",
        f"- host: {host.get('cores')} cores; load average {host.get('loadavg_start')} at start, "
        f"{host.get('loadavg_end')} at end",
        f"- API: {m.get('api_instances', 1)} instance(s) behind HAProxy (`pgha:apiReplicas` "
        f"{m.get('api_replicas_config') or 'unset, default 2'}), each with "
        f"{m.get('api_workers')} uvicorn worker(s) (`pgha:apiWorkers` "
        f"{m.get('api_workers_config') or 'unset, default 1'}); primary `{m.get('primary')}`, "
        f"replicas {m.get('replicas')}",
        f"- wrk {m.get('wrk')}; pgbench {m.get('pgbench')}",
        "",
    ]
    if report.error:
        lines += [f"**The run failed:** {report.error}", ""]
    lines += [
        "## Figures",
        "",
        "| figure | throughput | p50 ms | p99 ms | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for key, label in FIGURES:
        fig = report.figures.get(key)
        if fig is None:
            lines.append(f"| {label} | n/a | n/a | n/a | not measured |")
            continue
        lines.append(
            f"| {label} | {fmt(fig.get('rate'), 0)} {fig['rate_unit']} "
            f"| {fmt(fig.get('p50_ms'), 3)} | {fmt(fig.get('p99_ms'), 3)} "
            f"| {'; '.join(_figure_notes(fig))} |"
        )
    cpu_rows = cpu_table(report.figures, [key for key, _ in FIGURES], "pg_select_haproxy")
    if len(cpu_rows) > 2:
        lines += ["", "## CPU per 1,000 requests along the path", ""]
        lines += [
            "The cgroup CPU time of every container of the stack plus the measured "
            "server, read before and after each run, minus each container's idle rate "
            f"(cores at rest: {report.meta.get('idle_cpu_cores')}). The floor is "
            "`pgbench -S` through HAProxy's replicas listen, per 1,000 transactions.",
            "",
            *cpu_rows,
        ]
    if report.meta.get("memory_mib"):
        lines += ["", "## Memory per container", "", *memory_table(report.meta)]
    lag = report.replication_lag
    lines += [
        "",
        "## Replication lag under write load",
        "",
        f"`pg_stat_replication.replay_lag` on the primary every {lag.get('interval_s', '?')} s "
        "during each write run (NULL = caught up = 0 ms).",
        "",
        "| phase | samples | p50 ms | p99 ms | max ms | max bytes behind |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in [*lag.get("phases", {}).items(), ("**all write runs**", lag.get("overall"))]:
        if s:
            lines.append(
                f"| {name} | {s['samples']} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} "
                f"| {fmt(s['max_ms'])} | {fmt(s['behind_bytes_max'], 0)} |"
            )
    lines += ["", "## Ratios against goals", "", "| ratio | value | goal | met | meaning |"]
    lines.append("|---|---:|---|---|---|")
    for name, r in report.ratios.items():
        met = {True: "yes", False: "**no**", None: "n/a"}[r["met"]]
        lines.append(f"| `{name}` | {fmt(r['value'], 3)} | {r['goal']} | {met} | {r['meaning']} |")
    lines += ["", "Supporting ratios (no goal):", "", "| ratio | value | meaning |"]
    lines.append("|---|---:|---|")
    for name, r in report.info_ratios.items():
        lines.append(f"| `{name}` | {fmt(r['value'], 3)} | {r['meaning']} |")
    if report.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def render_chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on the bench host
    import matplotlib.pyplot as plt

    rows = [(label, report.figures[key]) for key, label in FIGURES if key in report.figures]
    if not rows:
        rows = [("no figures", {"rate": None, "rate_unit": "", "p50_ms": None, "p99_ms": None})]
    colors = {"http": "#4C72B0", "redis": "#C44E52", "pgbench": "#55A868"}
    labels = [label for label, _ in rows]
    ys = list(range(len(rows)))
    goal_rows = chart_ratios(report)
    fig, axes = plt.subplot_mosaic(
        [["left", "right"], ["goals", "goals"]],
        figsize=(15, 1.6 + 0.55 * len(rows) + 0.4 * len(goal_rows)),
        height_ratios=[len(rows), max(1, len(goal_rows)) * 0.75],
        constrained_layout=True,
    )
    left, right, goals = axes["left"], axes["right"], axes["goals"]
    right.sharey(left)
    right.tick_params(labelleft=False)
    # Log scales: Redis answers ~50x faster than the API, linear bars would hide the API.
    rates = [f.get("rate") or 0 for _, f in rows]
    left.barh(ys, rates, color=[colors.get(f.get("kind", ""), "grey") for _, f in rows])
    for y, (_, f) in zip(ys, rows, strict=True):
        if f.get("rate"):
            left.text(f["rate"], y, f" {f['rate']:,.0f} {f['rate_unit']}", va="center", fontsize=8)
    left.set_xscale("log")
    left.set_yticks(ys, labels)
    left.invert_yaxis()
    left.set_xlabel("throughput (req/s or TPS, log scale)")
    left.set_title("throughput")
    height = 0.38
    for offset, key, color in (
        (-height / 2, "p50_ms", "#8172B3"),
        (height / 2, "p99_ms", "#DD8452"),
    ):
        vals = [f.get(key) or 0 for _, f in rows]
        right.barh([y + offset for y in ys], vals, height=height, color=color, label=key[:3])
        for y, v in zip(ys, vals, strict=True):
            if v:
                right.text(v, y + offset, f" {v:.2f}", va="center", fontsize=7)
    right.set_xscale("log")
    right.set_xlabel("latency, ms (log scale)")
    right.set_title("latency p50 / p99")
    right.legend(loc="lower right")
    gys = list(range(len(goal_rows)))
    goals.barh(
        gys,
        [value for _, value, _, _ in goal_rows],
        color=[{True: "#55A868", False: "#C44E52"}[met] for _, _, _, met in goal_rows],
    )
    for y, (_, value, goal, _) in zip(gys, goal_rows, strict=True):
        goals.plot([goal, goal], [y - 0.45, y + 0.45], color="black", linewidth=2)
        goals.text(value, y, f" {value:.2f}", va="center", fontsize=8)
    goals.set_yticks(gys, [f"{name} ({GOALS[name][0]} {goal:g})" for name, _, goal, _ in goal_rows])
    goals.invert_yaxis()
    goals.set_title("ratios: bar = this run (green met, red missed), black line = goal")
    m = report.meta
    fig.suptitle(
        f"pgha bench {m.get('run_id', '')}: stack {m.get('stack')}, "
        f"{m.get('api_instances', 1)} API instance(s) x {m.get('api_workers')} worker(s), "
        f"{m.get('host', {}).get('cores')} cores"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart_ratios(report: Report) -> list[tuple[str, float, float, bool]]:
    """(name, value, goal, met) of each measured unitless ratio, for the chart; the lag is
    in milliseconds, so it stays in the tables."""
    rows = []
    for name, r in report.ratios.items():
        if r["value"] is None or name.endswith("_ms") or name not in GOALS:
            continue
        rows.append((name, float(r["value"]), GOALS[name][1], bool(r["met"])))
    return rows


def render_json(report: Report) -> str:
    return json.dumps(asdict(report), indent=2, default=str) + "\n"


def write_outputs(report: Report, out_dir: Path, run_id: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / run_id
    paths = [base.with_suffix(".json"), base.with_suffix(".md"), base.with_suffix(".png")]
    paths[0].write_text(render_json(report))
    paths[1].write_text(render_markdown(report))
    render_chart(report, paths[2])
    return paths
