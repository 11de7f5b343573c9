"""pgha benchmark runner: ``python -m bench.run --stack <stack>`` (what ``make bench`` runs).

Every figure comes from one run against one deployed stack, measured side by side:

* HTTP through the API, driven by wrk with the Lua scripts in ``bench/lua/``: GET on cache
  hits over a working set of 10k products, GET on cache misses served by the replica (unique
  ids, each read once), POST and PUT (the API writes through HAProxy's ``primary`` listen);
* anchors: ``redis-benchmark -t get`` inside the Redis container, a bare uvicorn + Starlette
  JSON endpoint started from the API's own image with the same worker count, ``pgbench -S``
  on the replica (directly and through HAProxy's ``replicas``), and pgbench writes through
  HAProxy's ``primary`` and directly to the primary node;
* streaming-replication lag: ``pg_stat_replication.replay_lag`` sampled on the primary during
  every write run.

It writes ``bench/results/<UTC timestamp>.json``, ``.md`` (summary, each ratio against its
goal) and ``.png`` (throughput and latency chart). Goals are documented, never asserted.

Load goes only to 127.0.0.1 and the stack's own containers, and every load loop is bounded in
count and in time (wrk and pgbench by duration, redis-benchmark and the cache warm-up by
request count, and each command by a hard subprocess timeout). What the run creates (seeded
and posted products and their cache keys, the pgbench tables, two helper containers) is
removed at the end, also when a phase fails.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import io
import json
import os
import platform
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from infra import outputs as out

ROOT = Path(__file__).resolve().parent.parent
LUA_DIR = ROOT / "bench" / "lua"
RESULTS_DIR = ROOT / "bench" / "results"
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
MATPLOTLIB_PIN = "matplotlib==3.11.2"

# The one place goals live; the README and the markdown report show them, nothing asserts them.
# name -> (comparison, goal, what it is)
GOALS: dict[str, tuple[str, float, str]] = {
    "hit_vs_bare": (">=", 0.7, "API cache-hit req/s / bare uvicorn+Starlette JSON req/s"),
    "hit_vs_miss_p50": ("<=", 0.5, "p50 of a cache hit / p50 of a miss served by the replica"),
    "haproxy_write_overhead": (
        "<=",
        0.15,
        "1 - pgbench write TPS via HAProxy / TPS directly to the primary",
    ),
    "replication_lag_p99_ms": ("<", 100.0, "p99 of replay_lag sampled during write runs, ms"),
}

# Supporting ratios without a goal: they explain the goal ratios on a noisy shared host.
INFO_RATIOS: dict[str, str] = {
    "hit_vs_bare_cpu": "bare CPU per request / API hit CPU per request (server containers)",
    "hit_vs_miss_p50_c1": "hit p50 / miss p50 with one connection (service time, no queueing)",
    "haproxy_read_share": "pgbench -S TPS via HAProxy replicas / TPS direct to the replica",
}

# Order and labels of the figures in the report and the chart.
FIGURES: list[tuple[str, str]] = [
    ("api_hit", "API GET, cache hit"),
    ("api_miss", "API GET, cache miss -> replica"),
    ("api_hit_c1", "API GET, cache hit, 1 connection"),
    ("api_miss_c1", "API GET, cache miss, 1 connection"),
    ("api_post", "API POST (-> HAProxy primary)"),
    ("api_put", "API PUT (-> HAProxy primary)"),
    ("bare", "bare uvicorn+Starlette JSON"),
    ("redis_get", "redis-benchmark GET"),
    ("pg_select_replica", "pgbench -S, replica direct"),
    ("pg_select_haproxy", "pgbench -S, via HAProxy replicas"),
    ("pg_write_direct", "pgbench write, primary direct"),
    ("pg_write_haproxy", "pgbench write, via HAProxy primary"),
]

# Misses are read once each, so the miss set must outlast the run: sized for this many req/s.
MISS_RATE_CEILING = 4000
MAX_SEED_ROWS = 200_000
MAX_LAG_SAMPLES = 20_000
# wrk's count bound: far above anything one 2-core host serves; a run that reaches it is flagged.
MAX_HTTP_RATE = 50_000
LSN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")

_started = time.monotonic()


class BenchError(RuntimeError):
    """A step failed; the message is safe to print (no secrets)."""


def log(message: str) -> None:
    print(f"[bench +{time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    stack: str
    quick: bool
    duration: int
    warmup: int
    threads: int
    connections: int
    hit_ids: int
    miss_ids: int
    pg_clients: int
    pg_jobs: int
    pg_scale: int
    pg_write: str
    rounds: int
    probe_seconds: int
    redis_requests: int
    lag_interval: float
    wait_idle: int
    keep_data: bool
    out_dir: Path


def parse_args(argv: Sequence[str] | None = None) -> Options:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark a deployed pgha stack; reports go to bench/results/.",
    )
    p.add_argument("--stack", default="dev", help="Pulumi stack to measure (default: dev)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run of about a minute: 3 s per figure"
    )
    # None = "not given": --quick then picks its own default, explicit values always win.
    p.add_argument("--duration", type=int, help="seconds per measured run (default 8, quick 3)")
    p.add_argument("--warmup", type=int, help="unrecorded warm-up seconds (default 2, quick 1)")
    p.add_argument("--threads", "-t", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--connections", "-c", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--hit-ids", type=int, default=10_000, help="cache-hit working set (10000)")
    p.add_argument(
        "--miss-ids",
        type=int,
        default=0,
        help=f"unique ids for the miss run (default: {MISS_RATE_CEILING} x duration)",
    )
    p.add_argument("--pg-clients", type=int, default=8, help="pgbench -c (default 8)")
    p.add_argument("--pg-jobs", type=int, default=2, help="pgbench -j (default 2)")
    p.add_argument("--pg-scale", type=int, default=1, help="pgbench -i -s (default 1)")
    p.add_argument(
        "--pg-write",
        choices=("simple-update", "tpcb-like"),
        default="simple-update",
        help="pgbench write script: -N (default) or the TPC-B-like default script",
    )
    p.add_argument(
        "--rounds",
        type=int,
        help="rounds of the compared runs (bare/hit/miss, pgbench writes), alternating order "
        "(default 2, quick 1)",
    )
    p.add_argument(
        "--probe-seconds",
        type=int,
        help="length of the one-connection hit and miss probes (default 3, quick 1)",
    )
    p.add_argument(
        "--redis-requests", type=int, help="redis-benchmark -n (default 100000, quick 20000)"
    )
    p.add_argument("--lag-interval", type=float, default=0.1, help="lag sampling period, s")
    p.add_argument(
        "--wait-idle",
        type=int,
        default=0,
        help="wait up to this many seconds for the 1-min load average to fall below the core "
        "count before measuring (default 0: start at once)",
    )
    p.add_argument("--keep-data", action="store_true", help="keep seeded and posted products")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="report directory")
    a = p.parse_args(argv)

    def pick(value: int | None, full: int, quick: int) -> int:
        return value if value is not None else (quick if a.quick else full)

    duration = pick(a.duration, 8, 3)
    opts = Options(
        stack=a.stack,
        quick=a.quick,
        duration=duration,
        warmup=pick(a.warmup, 2, 1),
        threads=a.threads,
        connections=a.connections,
        hit_ids=a.hit_ids,
        miss_ids=a.miss_ids or max(5_000, MISS_RATE_CEILING * duration),
        pg_clients=a.pg_clients,
        pg_jobs=a.pg_jobs,
        pg_scale=a.pg_scale,
        pg_write=a.pg_write,
        rounds=pick(a.rounds, 2, 1),
        probe_seconds=pick(a.probe_seconds, 3, 1),
        redis_requests=pick(a.redis_requests, 100_000, 20_000),
        lag_interval=a.lag_interval,
        wait_idle=a.wait_idle,
        keep_data=a.keep_data,
        out_dir=a.out_dir,
    )
    # Hard bounds: this runs on a shared 2-core box, so no option may turn it into a soak test.
    checks = [
        (1 <= opts.duration <= 120, "--duration must be 1..120"),
        (0 <= opts.warmup <= 30, "--warmup must be 0..30"),
        (1 <= opts.threads <= opts.connections, "--threads must be 1..connections"),
        (1 <= opts.connections <= 512, "--connections must be 1..512"),
        (1 <= opts.hit_ids <= 100_000, "--hit-ids must be 1..100000"),
        (
            opts.rounds * (opts.hit_ids + opts.miss_ids) + probe_ids(opts) <= MAX_SEED_ROWS,
            f"rounds x (hit + miss ids) must stay <= {MAX_SEED_ROWS} rows",
        ),
        (1 <= opts.probe_seconds <= 30, "--probe-seconds must be 1..30"),
        (1 <= opts.pg_jobs <= opts.pg_clients <= 64, "need 1 <= --pg-jobs <= --pg-clients <= 64"),
        (1 <= opts.pg_scale <= 10, "--pg-scale must be 1..10"),
        (1 <= opts.rounds <= 5, "--rounds must be 1..5"),
        (1_000 <= opts.redis_requests <= 1_000_000, "--redis-requests must be 1e3..1e6"),
        (0.02 <= opts.lag_interval <= 5, "--lag-interval must be 0.02..5"),
        (0 <= opts.wait_idle <= 1800, "--wait-idle must be 0..1800"),
    ]
    for ok, message in checks:
        if not ok:
            p.error(message)
    return opts


def probe_ids(opts: Options) -> int:
    """Ids for the one-connection miss probe: one connection misses at well under 1500/s."""
    return max(2_000, 1_500 * opts.probe_seconds)


# --------------------------------------------------------------------------- helpers


def run(
    cmd: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a hard timeout; secrets travel only in ``env``, never in ``cmd``."""
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, env=full_env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(cmd[:3])} ... timed out after {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise BenchError(f"{' '.join(cmd[:3])} ... exited {proc.returncode}: {tail}")
    return proc


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every reported value was observed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats drifting
    return float(ordered[min(len(ordered), int(rank)) - 1])


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_http_ok(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if http_status(url) == 200:
            return
        time.sleep(0.2)
    raise BenchError(f"{url} did not answer 200 within {seconds:.0f}s")


def docker_inspect(name: str, template: str) -> str:
    return run(["docker", "inspect", "--format", template, name], timeout=30).stdout.strip()


def container_env(name: str, key: str) -> str | None:
    # The env also holds DSNs with passwords: pick one key and never log the rest.
    for item in json.loads(docker_inspect(name, "{{json .Config.Env}}")):
        k, _, v = item.partition("=")
        if k == key:
            return v
    return None


def container_pids(name: str) -> list[int]:
    """Host PIDs of a container's processes (uvicorn and its workers)."""
    try:
        proc = run(["docker", "top", name, "-eo", "pid"], timeout=30)
    except BenchError:
        return []
    return [int(x) for x in proc.stdout.split()[1:] if x.isdigit()]


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of live processes, from /proc (the bench runs on the host)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state is field 3
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    return total / os.sysconf("SC_CLK_TCK")


def tool_version(cmd: Sequence[str]) -> str | None:
    try:
        proc = run(cmd, timeout=30, check=False)
    except BenchError:
        return None
    text = (proc.stdout or proc.stderr).strip().splitlines()
    return text[0].strip() if text else None


def wait_for_idle(seconds: int) -> float:
    """Wait (bounded) for the host to calm down; returns the seconds waited."""
    cores = os.cpu_count() or 1
    started = time.monotonic()
    if seconds and os.getloadavg()[0] >= cores:
        log(f"waiting up to {seconds}s for the load average to fall below {cores}")
    while seconds and os.getloadavg()[0] >= cores and time.monotonic() - started < seconds:
        time.sleep(5)
    return round(time.monotonic() - started, 1)


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed; run: apt-get install -y wrk")
    log("installing wrk from Debian")
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "wrk"]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if run(install, timeout=900, env=env, check=False).returncode != 0:
        # Stale package lists are the usual reason; refresh once and retry.
        run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"], timeout=900, env=env)
        run(install, timeout=900, env=env)


def ensure_matplotlib() -> None:
    # Checked before any load: a missing chart library must not waste a two-minute run.
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise BenchError(
            f"matplotlib is missing: {sys.executable} -m pip install {MATPLOTLIB_PIN}"
        ) from exc


# --------------------------------------------------------------------------- stack


@dataclass(frozen=True)
class Stack:
    name: str
    api_url: str
    write_dsn: str
    read_dsn: str
    redis_url: str
    containers: dict[str, str]
    primary: str
    replicas: list[str]
    network: str

    @property
    def pg_password(self) -> str:
        return unquote(urlsplit(self.write_dsn).password or "")

    @property
    def redis_user(self) -> str:
        return unquote(urlsplit(self.redis_url).username or "default")

    @property
    def prefix(self) -> str:
        # Container names are pgha-<stack>-<role>; helper containers follow the same scheme.
        return self.containers["api"].removesuffix("-api")


def load_stack(name: str) -> Stack:
    proc = run(
        ["pulumi", "stack", "output", "--stack", name, "--json", "--show-secrets"], timeout=180
    )
    data = json.loads(proc.stdout)
    missing = [
        k
        for k in (out.API_URL, out.WRITE_DSN, out.READ_DSN, out.REDIS_URL, out.CONTAINERS)
        if not data.get(k)
    ]
    if missing:
        raise BenchError(f"stack {name!r} has no outputs {missing}: deploy it first (make up)")
    return Stack(
        name=name,
        api_url=data[out.API_URL].rstrip("/"),
        write_dsn=data[out.WRITE_DSN],
        read_dsn=data[out.READ_DSN],
        redis_url=data[out.REDIS_URL],
        containers=dict(data[out.CONTAINERS]),
        primary=data[out.PRIMARY],
        replicas=list(data[out.REPLICAS]),
        network=data[out.NETWORK],
    )


def configured_api_workers(stack: str) -> int | None:
    proc = run(
        ["pulumi", "config", "get", "pgha:apiWorkers", "--stack", stack], timeout=60, check=False
    )
    text = proc.stdout.strip()
    return int(text) if proc.returncode == 0 and text.isdigit() else None


# --------------------------------------------------------------------------- primary psql


class PrimarySession:
    """One long-lived ``psql`` on the primary node, superuser through peer auth.

    Why not psycopg from the host: ``replay_lag`` is hidden from the unprivileged app role,
    and a ``docker exec`` per sample would cost far more CPU than the sample itself.
    """

    END = "__pgha_bench_end__"

    def __init__(self, container: str) -> None:
        self._proc = subprocess.Popen(
            ["docker", "exec", "-i", "-u", "postgres", container]
            + ["psql", "-d", "pgha", "-AtqX", "-v", "ON_ERROR_STOP=0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        self._buffer = b""
        self._lock = threading.Lock()

    def query(self, sql: str, timeout: float = 10.0) -> list[str]:
        """Run one statement; returns its output lines (none if it failed)."""
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            try:
                self._proc.stdin.write(f"{sql};\n\\echo {self.END}\n".encode())
            except OSError as exc:
                raise BenchError("psql session on the primary is gone") from exc
            lines: list[str] = []
            deadline = time.monotonic() + timeout
            fd = self._proc.stdout.fileno()
            while True:
                while b"\n" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\n", 1)
                    line = raw.decode(errors="replace")
                    if line == self.END:
                        return lines
                    lines.append(line)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("psql on the primary did not answer in time")
                ready, _, _ = select.select([fd], [], [], left)
                if ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        raise BenchError("psql session on the primary ended")
                    self._buffer += chunk

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)


# NULL replay_lag means the replica reported it is fully caught up with nothing in flight.
LAG_SQL = (
    "SELECT coalesce(extract(epoch FROM max(replay_lag)), -1)::float8, "
    "coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), -1)::bigint, "
    "count(*) FROM pg_stat_replication"
)


@dataclass
class LagSample:
    t: float
    lag_ms: float | None
    behind_bytes: int | None
    replicas: int


class LagSampler:
    """Samples replication lag on the primary, but only while a write phase is open."""

    def __init__(self, session: PrimarySession, interval: float, deadline_s: float) -> None:
        self._session = session
        self._interval = interval
        self._deadline = time.monotonic() + deadline_s
        self._phase: str | None = None
        self._stop = threading.Event()
        self.samples: dict[str, list[LagSample]] = {}
        self.errors = 0
        self._thread = threading.Thread(target=self._loop, name="lag-sampler", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.samples.setdefault(name, [])
        self._phase = name
        try:
            yield
        finally:
            self._phase = None

    def _loop(self) -> None:
        taken = 0
        while not self._stop.is_set() and taken < MAX_LAG_SAMPLES:
            if time.monotonic() > self._deadline:
                return
            phase = self._phase
            if phase is None:
                self._stop.wait(self._interval)
                continue
            try:
                lines = self._session.query(LAG_SQL, timeout=5)
                lag_s, behind, count = lines[0].split("|")
            except (BenchError, IndexError, ValueError):
                self.errors += 1
                self._stop.wait(self._interval)
                continue
            lag = float(lag_s)
            self.samples[phase].append(
                LagSample(
                    time.monotonic(),
                    None if lag < 0 else lag * 1000,
                    None if int(behind) < 0 else int(behind),
                    int(count),
                )
            )
            taken += 1
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @staticmethod
    def summarize(samples: Sequence[LagSample]) -> dict[str, Any]:
        # A NULL lag is "caught up, nothing in flight", i.e. 0 ms; counted so it stays visible.
        lags = [s.lag_ms if s.lag_ms is not None else 0.0 for s in samples]
        behind = [s.behind_bytes for s in samples if s.behind_bytes is not None]
        return {
            "samples": len(samples),
            "null_samples": sum(1 for s in samples if s.lag_ms is None),
            "no_replica_samples": sum(1 for s in samples if s.replicas == 0),
            "p50_ms": percentile(lags, 50),
            "p99_ms": percentile(lags, 99),
            "max_ms": max(lags) if lags else None,
            "behind_bytes_p99": percentile(behind, 99),
            "behind_bytes_max": max(behind) if behind else None,
        }


# --------------------------------------------------------------------------- parsers


def parse_wrk(stdout: str, label: str) -> dict[str, Any]:
    line = next((ln for ln in stdout.splitlines() if ln.startswith("PGHA_BENCH_JSON ")), None)
    if line is None:
        raise BenchError(f"wrk ({label}) printed no report line; is bench/lua intact?")
    raw: dict[str, float] = json.loads(line.removeprefix("PGHA_BENCH_JSON "))
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
    merged["rounds_rate"] = [r["rate"] for r in runs]
    return merged


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


# --------------------------------------------------------------------------- bare anchor

# The framework floor for the hit path: same image, interpreter, uvicorn flags and worker
# count as the API, a product-shaped JSON body, but no Redis, no middleware, no FastAPI.
BARE_APP = '''\
"""pgha bench anchor: a bare uvicorn + Starlette JSON endpoint."""
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def product(request):
    return JSONResponse({
        "id": request.path_params["product_id"], "name": "bench-bare", "description": None,
        "price": "9.99", "stock": 3, "version": 1, "updated_at": "2026-01-01T00:00:00Z",
    })


async def health(request):
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/products/{product_id:int}", product), Route("/health", health)])
'''

BARE_BOOT = (
    "import os, pathlib, sys\n"
    "pathlib.Path('/tmp/pgha_bare.py').write_text(sys.argv[1])\n"
    "os.execvp('uvicorn', ['uvicorn', 'pgha_bare:app', '--app-dir', '/tmp', '--host', "
    "'0.0.0.0', '--port', '8000', '--loop', 'uvloop', '--http', 'httptools', '--workers', "
    "os.environ['PGHA_WORKERS'], '--no-access-log'])\n"
)


# --------------------------------------------------------------------------- the run


@dataclass
class Report:
    meta: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    replication_lag: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, Any] = field(default_factory=dict)
    info_ratios: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


class Bench:
    def __init__(self, opts: Options, stack: Stack) -> None:
        self.opts = opts
        self.stack = stack
        self.report = Report()
        self.run_id = utc_now().strftime("%Y%m%dT%H%M%SZ")
        # Every row the run creates carries this name prefix, so cleanup deletes exactly those.
        self.name_prefix = f"pgha-bench-{self.run_id}"
        self.tmp = Path(tempfile.mkdtemp(prefix="pgha-bench-"))
        self.helpers: list[str] = []
        self.session: PrimarySession | None = None
        self.sampler: LagSampler | None = None
        self.pgbench_initialized = False
        # One fresh hit set and one fresh miss set per round; see http_phase for why.
        self.hit_sets: list[Path] = []
        self.miss_sets: list[Path] = []
        self.probe_set: Path | None = None
        self.ids: dict[Path, list[int]] = {}

    # ------------------------------------------------------------ set-up

    @property
    def primary_container(self) -> str:
        return self.stack.containers[self.stack.primary]

    @property
    def pg_client(self) -> str:
        return f"{self.stack.prefix}-bench-pgclient"

    def preflight(self) -> None:
        for role, name in self.stack.containers.items():
            if docker_inspect(name, "{{.State.Running}}") != "true":
                raise BenchError(f"container {name} ({role}) is not running")
        wait_http_ok(f"{self.stack.api_url}/health", 10)
        if not self.stack.replicas:
            raise BenchError("the stack has no replica: nothing to read from or lag behind")
        self.session = PrimarySession(self.primary_container)
        count = int(self.session.query("SELECT count(*) FROM pg_stat_replication")[0])
        if count < len(self.stack.replicas):
            raise BenchError(f"{count} replica(s) streaming, {len(self.stack.replicas)} expected")
        self.sampler = LagSampler(self.session, self.opts.lag_interval, deadline_s=3600)

    def describe(self, argv: Sequence[str]) -> None:
        api = self.stack.containers["api"]
        workers = container_env(api, "PGHA_WORKERS")
        ttl = container_env(api, "PGHA_CACHE_TTL_SECONDS")
        ours = set(self.stack.containers.values())
        others = run(["docker", "ps", "--format", "{{.Names}}"], timeout=30).stdout.split()
        others = [n for n in others if n not in ours and not n.startswith(self.stack.prefix)]
        load = os.getloadavg()
        git = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], timeout=30, check=False)
        dirty = run(["git", "-C", str(ROOT), "status", "--porcelain"], timeout=30, check=False)
        o = self.opts
        self.report.meta = {
            "run_id": self.run_id,
            "started_at": utc_now().isoformat(),
            "command": " ".join(["python", "-m", "bench.run", *argv]),
            "stack": self.stack.name,
            "git_commit": git.stdout.strip() or None,
            "git_dirty": bool(dirty.stdout.strip()),
            "host": {
                "cores": os.cpu_count(),
                "machine": platform.machine(),
                "kernel": platform.release(),
                "loadavg_start": [round(x, 2) for x in load],
                "other_running_containers": others,
            },
            "api_workers": int(workers) if workers and workers.isdigit() else None,
            "api_workers_config": configured_api_workers(self.stack.name),
            "cache_ttl_seconds": int(ttl) if ttl and ttl.isdigit() else None,
            "primary": self.stack.primary,
            "replicas": self.stack.replicas,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(o).items()},
            "wrk": (
                f"-t{o.threads} -c{o.connections} -d{o.duration}s (+{o.warmup}s warm-up), "
                f"{o.rounds} round(s); one-connection probes {o.probe_seconds}s"
            ),
            "pgbench": (
                f"-c{o.pg_clients} -j{o.pg_jobs} -T{o.duration} -M prepared, scale {o.pg_scale}, "
                f"writes: {o.pg_write}, {o.rounds} round(s) per target in ABBA order"
            ),
            "tools": {
                "wrk": tool_version(["wrk", "-v"]),
                "pgbench": tool_version(
                    ["docker", "exec", self.primary_container, PGBENCH, "--version"]
                ),
                "redis_benchmark": tool_version(
                    [
                        "docker",
                        "exec",
                        self.stack.containers["redis"],
                        "redis-benchmark",
                        "--version",
                    ]
                ),
            },
        }
        if others:
            self.report.warnings.append(
                f"{len(others)} other container(s) were running on this {os.cpu_count()}-core "
                "host during the run; absolute figures are noisier than the ratios."
            )
        if load[0] > (os.cpu_count() or 1) * 0.5:
            self.report.warnings.append(
                f"load average was {load[0]:.2f} at start: the host was not idle."
            )

    def seed(self) -> None:
        """Insert the run's products with one INSERT ... generate_series per id set."""
        import psycopg  # deferred: only the run needs it, not --help

        o = self.opts
        sets: list[tuple[str, int]] = []
        for r in range(o.rounds):
            sets += [(f"hit-{r}", o.hit_ids), (f"miss-{r}", o.miss_ids)]
        sets.append(("probe-miss", probe_ids(o)))
        log(
            f"seeding {sum(n for _, n in sets):,} products via the write DSN: per round "
            f"{o.hit_ids:,} hit + {o.miss_ids:,} miss ids, and {probe_ids(o):,} probe ids"
        )
        sql = (
            "INSERT INTO products (name, description, price, stock) "
            "SELECT %s || '-seed-' || g, 'seeded by pgha bench', mod(g, 100000) / 100.0, "
            "mod(g, 1000) FROM generate_series(1, %s) AS g RETURNING id"
        )
        with psycopg.connect(
            self.stack.write_dsn, autocommit=True, connect_timeout=10, application_name="pgha-bench"
        ) as conn:
            conn.execute("SET statement_timeout = '120s'")
            for tag, n in sets:
                rows = conn.execute(sql, (self.name_prefix, n)).fetchall()
                path = self.tmp / f"{tag}.ids"
                self.ids[path] = sorted(int(r[0]) for r in rows)
                path.write_text("\n".join(map(str, self.ids[path])) + "\n")
                if tag.startswith("hit-"):
                    self.hit_sets.append(path)
                elif tag.startswith("miss-"):
                    self.miss_sets.append(path)
                else:
                    self.probe_set = path

    def wait_replicas(self, seconds: float = 60) -> None:
        """Block until every replica has replayed everything the primary had written so far."""
        assert self.session is not None
        lsn = self.session.query("SELECT pg_current_wal_lsn()")[0]
        if not LSN.match(lsn):
            raise BenchError(f"unexpected LSN {lsn!r}")
        deadline = time.monotonic() + seconds
        sql = (
            f"SELECT count(*) FILTER (WHERE replay_lsn >= '{lsn}'::pg_lsn), count(*) "
            "FROM pg_stat_replication"
        )
        while time.monotonic() < deadline:
            done, total = (int(x) for x in self.session.query(sql)[0].split("|"))
            if total >= len(self.stack.replicas) and done == total:
                return
            time.sleep(0.1)
        raise BenchError(f"replicas did not replay up to {lsn} within {seconds:.0f}s")

    def start_bare(self) -> str:
        api = self.stack.containers["api"]
        image = docker_inspect(api, "{{.Image}}")
        workers = container_env(api, "PGHA_WORKERS") or "1"
        name = f"{self.stack.prefix}-bench-bare"
        port = free_port()
        run(["docker", "rm", "-f", name], timeout=60, check=False)  # leftover of a killed run
        self.helpers.append(name)
        run(
            ["docker", "run", "-d", "--rm", "--name", name, "--label", "pgha.bench=anchor"]
            + ["--no-healthcheck", "-p", f"127.0.0.1:{port}:8000", "-e", f"PGHA_WORKERS={workers}"]
            + ["--entrypoint", "python3", image, "-c", BARE_BOOT, BARE_APP],
            timeout=120,
        )
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/health", 30)
        log(f"bare anchor {name} up on {url} with {workers} worker(s)")
        return url

    def start_pg_client(self) -> None:
        image = docker_inspect(self.primary_container, "{{.Image}}")
        run(["docker", "rm", "-f", self.pg_client], timeout=60, check=False)
        self.helpers.append(self.pg_client)
        # `sleep` bounds the helper's life even if this process is killed before cleanup.
        run(
            ["docker", "run", "-d", "--rm", "--name", self.pg_client, "--network"]
            + [self.stack.network, "--label", "pgha.bench=pgclient", "--entrypoint", "sleep"]
            + [image, "3600"],
            timeout=120,
        )

    def pgbench_exec(
        self, args: Sequence[str], timeout: float, workdir: str = "/tmp"
    ) -> subprocess.CompletedProcess[str]:
        return run(
            ["docker", "exec", "-e", "PGPASSWORD", "-e", "PGCONNECT_TIMEOUT=5", "-w", workdir]
            + [self.pg_client, PGBENCH, *args],
            timeout=timeout,
            env={"PGPASSWORD": self.stack.pg_password},
        )

    def pgbench_init(self) -> None:
        log(f"pgbench -i -s {self.opts.pg_scale} through HAProxy primary")
        self.pgbench_initialized = True
        self.pgbench_exec(
            ["-i", "-q", "-s", str(self.opts.pg_scale), "-h", "haproxy", "-p", "5432"]
            + ["-U", "pgha", "pgha"],
            timeout=300,
        )

    # ------------------------------------------------------------ load

    def wrk(
        self,
        label: str,
        url: str,
        script: str,
        args: Sequence[str],
        seconds: int,
        *,
        server: str | None = None,
        connections: int | None = None,
    ) -> dict[str, Any]:
        """One bounded wrk run; with ``server``, also that container's CPU per request."""
        o = self.opts
        conns = connections or o.connections
        threads = min(o.threads, conns)
        pids = container_pids(server) if server else []
        cpu_before = cpu_seconds(pids)
        cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s"]
        cmd += ["-s", str(LUA_DIR / script), url, "--", *args]
        env = {
            "PGHA_BENCH_LUA": str(LUA_DIR),
            "PGHA_BENCH_MAX_REQUESTS_PER_THREAD": str(-(-MAX_HTTP_RATE * seconds // threads)),
        }
        proc = run(cmd, timeout=seconds + 60, env=env)
        result = parse_wrk(proc.stdout, label)
        if result["capped_threads"]:
            self.report.warnings.append(
                f"{label}: wrk threads stopped at the request cap ({MAX_HTTP_RATE}/s x duration); "
                "its rate is understated."
            )
        result["connections"] = conns
        if pids and result["requests"]:
            used = cpu_seconds(pids) - cpu_before
            # Robust to a busy host: CPU per request does not drop when neighbours steal
            # cycles, while req/s does; cores used shows how much CPU the server really got.
            result["server_cpu_us_per_req"] = round(used * 1e6 / result["requests"], 1)
            result["server_cpu_cores"] = round(used / result["seconds"], 2)
        return result

    def record(self, key: str, figure: dict[str, Any]) -> None:
        figure["label"] = dict(FIGURES).get(key, key)
        self.report.figures[key] = figure
        rate = figure.get("rate")
        log(
            f"{key}: {rate:,.0f} {figure['rate_unit']}, p50 {figure['p50_ms']} ms, "
            f"p99 {figure['p99_ms']} ms"
            if rate is not None
            else f"{key}: no rate"
        )
        http_errors = sum(figure.get("errors", {}).values())
        if figure.get("kind") == "http" and figure.get("requests"):
            bad = http_errors + figure["status"]["4xx"] + figure["status"]["5xx"]
            if bad > 0.01 * figure["requests"]:
                self.report.warnings.append(
                    f"{key}: {bad} of {figure['requests']} requests failed or were not 2xx; "
                    "its figures are not representative."
                )

    def warm_cache(
        self, ids: Sequence[int], workers: int = 8, seconds: float = 120
    ) -> Counter[str]:
        """GET every id once (bounded by the id count and a deadline) so the next reads hit."""
        parts = urlsplit(self.stack.api_url)
        deadline = time.monotonic() + seconds

        def worker(chunk: Sequence[int]) -> Counter[str]:
            counts: Counter[str] = Counter()
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
            try:
                for pid in chunk:
                    if time.monotonic() > deadline:
                        counts["deadline"] += 1
                        break
                    conn.request("GET", f"/products/{pid}")
                    resp = conn.getresponse()
                    resp.read()
                    counts[f"status_{resp.status}"] += 1
                    counts[f"x_cache_{resp.getheader('x-cache', 'none')}"] += 1
            finally:
                conn.close()
            return counts

        with ThreadPoolExecutor(workers) as pool:
            chunks = [ids[i::workers] for i in range(workers)]
            total: Counter[str] = sum(pool.map(worker, chunks), Counter())
        if total["status_200"] != len(ids):
            raise BenchError(f"cache warm-up got {dict(total)} for {len(ids)} ids")
        return total

    def warm(self, ids_file: Path) -> None:
        ids = self.ids[ids_file]
        log(f"warming the cache: GET each of {len(ids):,} ids once")
        started = time.monotonic()
        counts = self.warm_cache(ids)
        took = time.monotonic() - started
        self.report.meta.setdefault("cache_warm_up", []).append(
            {
                "ids": len(ids),
                "seconds": round(took, 2),
                **{k: v for k, v in counts.items() if k.startswith("x_cache")},
            }
        )
        o = self.opts
        ttl = self.report.meta.get("cache_ttl_seconds")
        if ttl and took + o.warmup + o.duration + o.probe_seconds > 0.9 * ttl:
            # Entries expire ttl seconds after their fill and hits do not extend them.
            self.report.warnings.append(
                f"cache warm-up took {took:.0f}s against a {ttl}s cache TTL: the earliest "
                "entries may expire during the hit run (slow host?)."
            )

    def http_phase(self) -> None:
        """Bare anchor, cache hits and cache misses, in rounds of alternating order.

        Each round warms a fresh 10k working set right before its hit run, because cache
        entries live ``cacheTtlSeconds`` (60 s by default) from the fill and reads do not
        extend them: a second run over an old set would drift into misses. Bare and hit runs
        go ABBA across rounds so slow drift on a shared host does not favour either.
        """
        o = self.opts
        bare_url = self.start_bare()
        bare_name = f"{self.stack.prefix}-bench-bare"
        api = self.stack.containers["api"]
        bare_path = f"{bare_url}/products/1"
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "api_hit": [], "api_miss": []}

        def bare() -> None:
            log("bare uvicorn + Starlette anchor")
            if o.warmup:
                self.wrk("bare warm-up", bare_path, "plain.lua", [], o.warmup)
            runs["bare"].append(
                self.wrk("bare", bare_path, "plain.lua", [], o.duration, server=bare_name)
            )

        def hit(r: int) -> None:
            self.warm(self.hit_sets[r])
            args = [str(self.hit_sets[r]), "cycle", str(o.threads)]
            if o.warmup:
                self.wrk("hit warm-up", self.stack.api_url, "get_ids.lua", args, o.warmup)
            runs["api_hit"].append(
                self.wrk("api_hit", self.stack.api_url, "get_ids.lua", args, o.duration, server=api)
            )
            if r == 0:
                # Service time without queueing: one connection, cache still warm.
                probe = self.wrk(
                    "api_hit_c1",
                    self.stack.api_url,
                    "get_ids.lua",
                    args,
                    o.probe_seconds,
                    server=api,
                    connections=1,
                )
                self.record("api_hit_c1", probe)

        def miss(r: int) -> None:
            log(f"cache misses over {len(self.ids[self.miss_sets[r]]):,} never-read ids")
            args = [str(self.miss_sets[r]), "once", str(o.threads)]
            runs["api_miss"].append(
                self.wrk(
                    "api_miss", self.stack.api_url, "get_ids.lua", args, o.duration, server=api
                )
            )
            if r == 0:
                assert self.probe_set is not None
                probe = self.wrk(
                    "api_miss_c1",
                    self.stack.api_url,
                    "get_ids.lua",
                    [str(self.probe_set), "once", "1"],
                    o.probe_seconds,
                    server=api,
                    connections=1,
                )
                self.record("api_miss_c1", probe)

        for r in range(o.rounds):
            log(f"HTTP read round {r + 1}/{o.rounds}")
            if r % 2 == 0:
                bare()
                hit(r)
            else:
                hit(r)
                bare()
            miss(r)
        for key, figure_runs in runs.items():
            self.record(key, combine_http(figure_runs))

        hit_fig, miss_fig = self.report.figures["api_hit"], self.report.figures["api_miss"]
        if hit_fig["x_cache"]["hit"] < 0.99 * hit_fig["requests"]:
            self.report.warnings.append(
                f"api_hit: only {hit_fig['x_cache']['hit']} of {hit_fig['requests']} were cache "
                f"hits (X-Cache counts {hit_fig['x_cache']})."
            )
        for key in ("api_miss", "api_miss_c1"):
            fig = self.report.figures[key]
            if fig["repeated_ids"]:
                self.report.warnings.append(
                    f"{key}: the miss set ran out and ids were re-read (so some were hits); "
                    "raise --miss-ids."
                )
        if miss_fig["x_cache"]["miss"] < 0.99 * miss_fig["requests"]:
            self.report.warnings.append(
                f"api_miss: only {miss_fig['x_cache']['miss']} of {miss_fig['requests']} "
                "were misses."
            )

    def api_write_phase(self) -> None:
        assert self.sampler is not None
        o = self.opts
        log("API POST and PUT (writes via HAProxy primary), sampling replication lag")
        api = self.stack.containers["api"]
        with self.sampler.phase("api_post"):
            post = self.wrk(
                "api_post",
                self.stack.api_url,
                "post.lua",
                [self.name_prefix],
                o.duration,
                server=api,
            )
        self.record("api_post", post)
        put_args = [str(self.hit_sets[0]), self.name_prefix, str(o.threads)]
        with self.sampler.phase("api_put"):
            put = self.wrk(
                "api_put", self.stack.api_url, "put.lua", put_args, o.duration, server=api
            )
        self.record("api_put", put)

    def redis_phase(self) -> None:
        o = self.opts
        log(f"redis-benchmark -t get -n {o.redis_requests} -c {o.connections} in the container")
        # The password comes from the container's own env, so it never reaches a host command line.
        script = (
            'exec redis-benchmark --user "$1" -a "$PGHA_REDIS_PASSWORD" '
            '-t get -n "$2" -c "$3" --csv'
        )
        proc = run(
            ["docker", "exec", self.stack.containers["redis"], "sh", "-c", script, "sh"]
            + [self.stack.redis_user, str(o.redis_requests), str(o.connections)],
            timeout=300,
        )
        self.record("redis_get", parse_redis_csv(proc.stdout))

    def pgbench_run(
        self, tag: str, host: str, port: int, extra: Sequence[str]
    ) -> tuple[dict[str, Any], list[float]]:
        o = self.opts
        workdir = f"/tmp/pgha-bench/{tag}"  # tag is [a-z0-9_-], safe in sh -c below
        run(
            [
                "docker",
                "exec",
                self.pg_client,
                "sh",
                "-c",
                f"rm -rf {workdir} && mkdir -p {workdir}",
            ],
            timeout=30,
        )
        proc = self.pgbench_exec(
            ["-h", host, "-p", str(port), "-U", "pgha", "-c", str(o.pg_clients)]
            + ["-j", str(o.pg_jobs), "-T", str(o.duration), "-M", "prepared"]
            + ["-l", "--log-prefix", f"{workdir}/tx", *extra, "pgha"],
            timeout=o.duration + 120,
            workdir=workdir,
        )
        stats = parse_pgbench(proc.stdout)
        logs = run(
            ["docker", "exec", self.pg_client, "sh", "-c", f"cat {workdir}/tx.*; rm -rf {workdir}"],
            timeout=120,
        )
        return stats, parse_pgbench_log(logs.stdout)

    def pgbench_figure(
        self, key: str, runs: Sequence[tuple[dict[str, Any], list[float]]]
    ) -> dict[str, Any]:
        latencies = [x for _, lat in runs for x in lat]
        tps = [s["tps"] for s, _ in runs]
        figure = {
            "label": dict(FIGURES)[key],
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
        if figure["failed"]:
            self.report.warnings.append(f"{key}: {figure['failed']} pgbench transactions failed.")
        return figure

    def pgbench_phase(self) -> None:
        assert self.sampler is not None
        o = self.opts
        replica = self.stack.replicas[0]
        log(f"pgbench -S on replica {replica} directly, then through HAProxy replicas")
        direct = self.pgbench_run("select-replica", replica, 5432, ["-S", "-n"])
        self.record("pg_select_replica", self.pgbench_figure("pg_select_replica", [direct]))
        proxied = self.pgbench_run("select-haproxy", "haproxy", 5433, ["-S", "-n"])
        self.record("pg_select_haproxy", self.pgbench_figure("pg_select_haproxy", [proxied]))

        write_args = ["-N"] if o.pg_write == "simple-update" else []
        targets = {"direct": (self.stack.primary, 5432), "haproxy": ("haproxy", 5432)}
        results: dict[str, list[tuple[dict[str, Any], list[float]]]] = {"direct": [], "haproxy": []}
        # ABBA order: slow drift of the host (autovacuum, neighbours, table growth) hits both
        # targets alike instead of biasing whichever always runs second.
        for i in range(o.rounds):
            order = ("direct", "haproxy") if i % 2 == 0 else ("haproxy", "direct")
            for target in order:
                log(f"pgbench write round {i + 1}/{o.rounds}: {target}")
                host, port = targets[target]
                with self.sampler.phase(f"pgbench_write_{target}"):
                    results[target].append(
                        self.pgbench_run(f"write-{target}-{i}", host, port, write_args)
                    )
        self.record("pg_write_direct", self.pgbench_figure("pg_write_direct", results["direct"]))
        self.record("pg_write_haproxy", self.pgbench_figure("pg_write_haproxy", results["haproxy"]))

    # ------------------------------------------------------------ results

    def summarize(self) -> None:
        f = self.report.figures
        if self.sampler is not None:
            phases = {k: LagSampler.summarize(v) for k, v in self.sampler.samples.items()}
            every = [s for v in self.sampler.samples.values() for s in v]
            self.report.replication_lag = {
                "interval_s": self.opts.lag_interval,
                "sampler_errors": self.sampler.errors,
                "overall": LagSampler.summarize(every),
                "phases": phases,
            }

        def get(key: str, metric: str) -> float | None:
            return f.get(key, {}).get(metric)

        values = {
            "hit_vs_bare": ratio(get("api_hit", "rate"), get("bare", "rate")),
            "hit_vs_miss_p50": ratio(get("api_hit", "p50_ms"), get("api_miss", "p50_ms")),
            "haproxy_write_overhead": None,
            "replication_lag_p99_ms": self.report.replication_lag.get("overall", {}).get("p99_ms"),
        }
        share = ratio(get("pg_write_haproxy", "rate"), get("pg_write_direct", "rate"))
        if share is not None:
            values["haproxy_write_overhead"] = 1 - share
        info = {
            "hit_vs_bare_cpu": ratio(
                get("bare", "server_cpu_us_per_req"), get("api_hit", "server_cpu_us_per_req")
            ),
            "hit_vs_miss_p50_c1": ratio(get("api_hit_c1", "p50_ms"), get("api_miss_c1", "p50_ms")),
            "haproxy_read_share": ratio(
                get("pg_select_haproxy", "rate"), get("pg_select_replica", "rate")
            ),
        }
        for name, value in info.items():
            self.report.info_ratios[name] = {
                "value": None if value is None else round(value, 4),
                "meaning": INFO_RATIOS[name],
            }
        for name, value in values.items():
            op, goal, meaning = GOALS[name]
            met = None
            if value is not None:
                met = {">=": value >= goal, "<=": value <= goal, "<": value < goal}[op]
            self.report.ratios[name] = {
                "value": None if value is None else round(value, 4),
                "goal": f"{op} {goal:g}",
                "met": met,
                "meaning": meaning,
            }
        self.report.meta["finished_at"] = utc_now().isoformat()
        self.report.meta.setdefault("host", {})["loadavg_end"] = [
            round(x, 2) for x in os.getloadavg()
        ]

    # ------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        """Undo everything the run created; each step runs even if an earlier one failed."""
        steps = [
            ("stop lag sampler", self._stop_sampler),
            ("drop pgbench tables", self._drop_pgbench),
            ("remove helper containers", self._remove_helpers),
            ("delete bench products", self._delete_products),
            ("remove temp files", lambda: shutil.rmtree(self.tmp, ignore_errors=True)),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # keep cleaning; the report names it
                message = f"cleanup: {what} failed: {exc}"
                log(message)
                self.report.warnings.append(message)

    def _stop_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.session is not None:
            self.session.close()

    def _drop_pgbench(self) -> None:
        if self.pgbench_initialized:
            # Init step "d" alone = drop the pgbench_* tables.
            self.pgbench_exec(
                ["-i", "-I", "d", "-h", "haproxy", "-p", "5432", "-U", "pgha", "pgha"], timeout=120
            )

    def _remove_helpers(self) -> None:
        for name in self.helpers:
            run(["docker", "rm", "-f", name], timeout=60, check=False)

    def _delete_products(self) -> None:
        if self.opts.keep_data:
            return
        import psycopg
        import redis

        with psycopg.connect(
            self.stack.write_dsn, autocommit=True, connect_timeout=10, application_name="pgha-bench"
        ) as conn:
            conn.execute("SET statement_timeout = '120s'")
            rows = conn.execute(
                "DELETE FROM products WHERE starts_with(name, %s) RETURNING id",
                (self.name_prefix,),
            ).fetchall()
        ids = [int(r[0]) for r in rows]
        # Drop their cache bodies and fences too, so nothing of the run lingers in Redis.
        client = redis.Redis.from_url(self.stack.redis_url, socket_timeout=5)
        try:
            for i in range(0, len(ids), 500):
                keys = [
                    k
                    for pid in ids[i : i + 500]
                    for k in (f"product:{pid}", f"product:{pid}:fence")
                ]
                client.unlink(*keys)
        finally:
            client.close()
        log(f"deleted {len(ids)} bench products and their cache keys")


# --------------------------------------------------------------------------- outputs


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


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
        f"- API: {m.get('api_workers')} uvicorn worker(s) (`pgha:apiWorkers` "
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
        notes = []
        if fig.get("kind") == "http":
            notes.append(f"{fig['requests']:,} requests")
            xc = fig["x_cache"]
            if xc["hit"] or xc["miss"] or xc["bypass"]:
                notes.append(
                    f"X-Cache HIT {xc['hit']:,} / MISS {xc['miss']:,} / BYPASS {xc['bypass']}"
                )
            bad = sum(fig["errors"].values()) + fig["status"]["4xx"] + fig["status"]["5xx"]
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
        lines.append(
            f"| {label} | {fmt(fig.get('rate'), 0)} {fig['rate_unit']} "
            f"| {fmt(fig.get('p50_ms'), 3)} | {fmt(fig.get('p99_ms'), 3)} | {'; '.join(notes)} |"
        )
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
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(15, 1.0 + 0.55 * len(rows)), sharey=True, constrained_layout=True
    )
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
    m = report.meta
    fig.suptitle(
        f"pgha bench {m.get('run_id', '')}: stack {m.get('stack')}, "
        f"{m.get('api_workers')} API worker(s), {m.get('host', {}).get('cores')} cores"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report: Report, out_dir: Path, run_id: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / run_id
    paths = [base.with_suffix(".json"), base.with_suffix(".md"), base.with_suffix(".png")]
    paths[0].write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    paths[1].write_text(render_markdown(report))
    render_chart(report, paths[2])
    return paths


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    try:
        ensure_matplotlib()
        ensure_wrk()
        stack = load_stack(opts.stack)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    bench = Bench(opts, stack)
    log(f"run {bench.run_id} against stack {stack.name!r} (api {stack.api_url})")
    try:
        waited = wait_for_idle(opts.wait_idle)
        bench.preflight()
        bench.describe(argv)
        bench.report.meta["waited_for_idle_s"] = waited
        bench.seed()
        bench.start_pg_client()
        bench.pgbench_init()
        bench.wait_replicas()
        bench.http_phase()
        bench.api_write_phase()
        bench.redis_phase()
        bench.wait_replicas()
        bench.pgbench_phase()
    except (BenchError, OSError, KeyboardInterrupt) as exc:
        bench.report.error = f"{type(exc).__name__}: {exc}"
        log(f"error: {bench.report.error}")
    except Exception as exc:
        # Unexpected (a bug or a driver error): still clean up and write what was measured.
        bench.report.error = f"{type(exc).__name__}: {exc}"
        log(f"unexpected error: {bench.report.error}")
    finally:
        log("cleaning up")
        bench.cleanup()
    bench.summarize()
    paths = write_outputs(bench.report, opts.out_dir, bench.run_id)
    for path in paths:
        log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    for name, r in bench.report.ratios.items():
        log(f"{name} = {fmt(r['value'], 3)} (goal {r['goal']}, met: {r['met']})")
    return 1 if bench.report.error else 0


if __name__ == "__main__":
    sys.exit(main())
