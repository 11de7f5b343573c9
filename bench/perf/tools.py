"""The load tools: wrk (on the host), pgbench and redis-benchmark (in containers).

For each: how its command line is built, and how its output becomes a figure. Parsers
are pure functions of the tool's text, so they are unit-tested on captured output
(tests/unit/bench). Running a tool in a container is `bench.perf.containers`' job.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import LUA_DIR, BenchError, percentile, run
from bench.perf.footprint import per_thousand

# pgbench from the postgres image (Debian's postgresql-15 package).
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
# wrk's count bound: far above anything one 2-core host serves; a run that reaches it is flagged.
MAX_HTTP_RATE = 50_000
REPORT_PREFIX = "PGHA_BENCH_JSON "


# --------------------------------------------------------------------------- wrk


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        # Installing is `make setup`'s job, not the runner's: it needs root and a package index.
        raise BenchError("wrk is not installed: run make setup, which installs it")


@dataclass(frozen=True)
class WrkCommand:
    argv: list[str]
    env: dict[str, str]
    threads: int


def wrk_command(
    url: str, script: str, args: Sequence[str], *, threads: int, connections: int, seconds: int
) -> WrkCommand:
    """wrk bounded by time (-d) and, through the Lua report, by a request count per thread."""
    threads = min(threads, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    argv += ["-s", str(LUA_DIR / script), url, "--", *args]
    env = {
        "PGHA_BENCH_LUA": str(LUA_DIR),
        "PGHA_BENCH_MAX_REQUESTS_PER_THREAD": str(-(-MAX_HTTP_RATE * seconds // threads)),
    }
    return WrkCommand(argv, env, threads)


def parse_wrk(stdout: str, label: str) -> dict[str, Any]:
    """The figure from the one JSON line bench/perf/lua/report.lua prints in wrk's done()."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith(REPORT_PREFIX)), None)
    if line is None:
        raise BenchError(f"wrk ({label}) printed no report line; is bench/perf/lua intact?")
    raw: dict[str, float] = json.loads(line.removeprefix(REPORT_PREFIX))
    seconds = raw["duration_us"] / 1e6
    requests = int(raw["requests"])

    def ms(key: str) -> float:
        return round(raw[key] / 1000, 3)

    return {
        "label": label,
        "kind": "http",
        "rate": round(requests / seconds, 1) if seconds else None,
        "rate_unit": "req/s",
        "requests": requests,
        "seconds": round(seconds, 3),
        "p50_ms": ms("lat_p50_us"),
        "p90_ms": ms("lat_p90_us"),
        "p99_ms": ms("lat_p99_us"),
        "p999_ms": ms("lat_p99.9_us"),
        "mean_ms": ms("lat_mean_us"),
        "max_ms": ms("lat_max_us"),
        "errors": {k.removeprefix("err_"): int(v) for k, v in raw.items() if k.startswith("err_")},
        "status": {k.removeprefix("c_"): int(raw[k]) for k in ("c_2xx", "c_3xx", "c_4xx", "c_5xx")},
        "x_cache": {
            k.removeprefix("c_"): int(raw[k]) for k in ("c_hit", "c_miss", "c_bypass", "c_nocache")
        },
        "repeated_ids": int(raw["c_repeats"]),
        "capped_threads": int(raw["c_capped"]),
    }


def combine_http(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge the rounds of one HTTP figure: rates and percentiles are means of the rounds.

    wrk only reports percentiles per run, so a pooled p99 is not available; counters add up.
    """
    if len(runs) == 1:
        return {**runs[0], "rounds_rate": [runs[0]["rate"]]}
    merged: dict[str, Any] = {**runs[-1]}
    for key in ("rate", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "mean_ms"):
        merged[key] = round(statistics.fmean(r[key] for r in runs), 3)
    merged["max_ms"] = max(r["max_ms"] for r in runs)
    for key in ("requests", "repeated_ids", "capped_threads"):
        merged[key] = sum(r[key] for r in runs)
    merged["seconds"] = round(sum(r["seconds"] for r in runs), 3)
    for key in ("errors", "status", "x_cache"):
        merged[key] = {k: sum(r[key][k] for r in runs) for k in runs[0][key]}
    cpu = [r["server_cpu_us_per_req"] * r["requests"] for r in runs if "server_cpu_us_per_req" in r]
    if len(cpu) == len(runs) and merged["requests"]:
        merged["server_cpu_us_per_req"] = round(sum(cpu) / merged["requests"], 1)
        merged["server_cpu_cores"] = round(statistics.fmean(r["server_cpu_cores"] for r in runs), 2)
    paths = [r["path_cpu_s"] for r in runs if "path_cpu_s" in r]
    if len(paths) == len(runs) and merged["requests"]:
        names = set.intersection(*(set(p) for p in paths))
        merged["path_cpu_s"] = {n: round(sum(p[n] for p in paths), 4) for n in sorted(names)}
        merged["path_cpu_ms_per_1k"] = per_thousand(merged["path_cpu_s"], merged["requests"])
    merged["rounds_rate"] = [r["rate"] for r in runs]
    return merged


def http_failures(figure: dict[str, Any]) -> int:
    """Transport errors plus 4xx and 5xx answers of an HTTP figure."""
    status = figure["status"]
    return int(sum(figure["errors"].values()) + status["4xx"] + status["5xx"])


# --------------------------------------------------------------------------- redis-benchmark

# The password comes from the Redis container's own env, so it never reaches a command line;
# a sentinel-mode node holds the same (API user's) password as PGHA_HEALTH_PASSWORD.
REDIS_BENCH_SCRIPT = (
    'exec redis-benchmark --user "$1" -a "${PGHA_REDIS_PASSWORD:-$PGHA_HEALTH_PASSWORD}" '
    '-t get -n "$2" -c "$3" --csv'
)


def redis_benchmark_command(user: str, requests: int, connections: int) -> list[str]:
    """`sh -c` inside the Redis container: `$0` is `sh`, then user, count, connections."""
    return ["sh", "-c", REDIS_BENCH_SCRIPT, "sh", user, str(requests), str(connections)]


def parse_redis_csv(stdout: str) -> dict[str, Any]:
    rows = list(csv.DictReader(io.StringIO(stdout)))
    row = next((r for r in rows if r.get("test", "").upper() == "GET"), None)
    if row is None:
        raise BenchError("redis-benchmark printed no GET row")
    return {
        "label": "redis-benchmark GET",
        "kind": "redis",
        "rate": float(row["rps"]),
        "rate_unit": "req/s",
        "p50_ms": float(row["p50_latency_ms"]),
        "p99_ms": float(row["p99_latency_ms"]),
        "mean_ms": float(row["avg_latency_ms"]),
        "max_ms": float(row["max_latency_ms"]),
    }


# --------------------------------------------------------------------------- pgbench


def pgbench_args(
    host: str,
    port: int,
    *,
    clients: int,
    jobs: int,
    seconds: int,
    log_prefix: str,
    extra: Sequence[str],
) -> list[str]:
    """A measured run as the app role: bounded by -T, per-transaction log for percentiles."""
    return (
        ["-h", host, "-p", str(port), "-U", "pgha", "-c", str(clients)]
        + ["-j", str(jobs), "-T", str(seconds), "-M", "prepared"]
        + ["-l", "--log-prefix", log_prefix, *extra, "pgha"]
    )


def pgbench_init_args(scale: int) -> list[str]:
    """pgbench's tables, created through HAProxy's primary listen."""
    return ["-i", "-q", "-s", str(scale), "-h", "haproxy", "-p", "5432", "-U", "pgha", "pgha"]


# Init step "d" alone = drop the pgbench_* tables.
PGBENCH_DROP_ARGS = ["-i", "-I", "d", "-h", "haproxy", "-p", "5432", "-U", "pgha", "pgha"]


def parse_pgbench(stdout: str) -> dict[str, Any]:
    def grab(pattern: str) -> float | None:
        m = re.search(pattern, stdout, re.MULTILINE)
        return float(m.group(1)) if m else None

    tps = grab(r"^tps = ([0-9.]+)")
    if tps is None:
        raise BenchError("pgbench printed no tps line")
    return {
        "tps": tps,
        "transactions": grab(r"^number of transactions actually processed: (\d+)"),
        "failed": grab(r"^number of failed transactions: (\d+)") or 0,
        "latency_avg_ms": grab(r"^latency average = ([0-9.]+) ms"),
    }


def parse_pgbench_log(text: str) -> list[float]:
    """Per-transaction latencies (ms) from ``pgbench -l`` lines (3rd field, microseconds)."""
    latencies = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2].isdigit():  # "failed"/"skipped" are not latencies
            latencies.append(int(fields[2]) / 1000)
    return latencies


def pgbench_figure(
    label: str, runs: Sequence[tuple[dict[str, Any], list[float]]]
) -> dict[str, Any]:
    """One figure from rounds of (summary, per-transaction latencies): mean TPS of the rounds,
    percentiles over every transaction of every round."""
    latencies = [x for _, lat in runs for x in lat]
    tps = [s["tps"] for s, _ in runs]
    return {
        "label": label,
        "kind": "pgbench",
        "rate": round(statistics.fmean(tps), 1),
        "rate_unit": "TPS",
        "rounds_tps": [round(t, 1) for t in tps],
        "p50_ms": round(percentile(latencies, 50) or 0, 3),
        "p99_ms": round(percentile(latencies, 99) or 0, 3),
        "mean_ms": round(statistics.fmean(latencies), 3) if latencies else None,
        "transactions": sum(int(s["transactions"] or 0) for s, _ in runs),
        "failed": sum(int(s["failed"]) for s, _ in runs),
    }


# --------------------------------------------------------------------------- versions


def first_line(text: str) -> str | None:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else None


def host_tool_version(cmd: Sequence[str]) -> str | None:
    try:
        proc = run(cmd, timeout=30, check=False)
    except BenchError:
        return None
    return first_line(proc.stdout or proc.stderr)
