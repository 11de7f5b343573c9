"""Command-line options of ``python -m bench.perf.run``, with their hard bounds.

Bounds are part of the options, not of the scenarios: this runs on a shared 2-core box,
so no combination of flags may turn a measurement into a soak test.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import RESULTS_DIR

# Misses are read once each, so the miss set must outlast the run: sized for this many req/s.
MISS_RATE_CEILING = 4000
MAX_SEED_ROWS = 200_000


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
        prog="python -m bench.perf.run",
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
