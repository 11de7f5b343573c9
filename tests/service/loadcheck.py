"""Bounded load check of the read path on loopback: cache hits vs misses (wrk, or httpx).

Run: .venv/bin/python -m tests.service.loadcheck [--seconds 8] [--connections 32] [--rounds 3]
     [--baseline-dir /path/to/other/service] [--skip-miss]
Starts its own PostgreSQL primary + replica, Redis and one API worker, like the tests, plus
a bare Starlette JSON endpoint (bench/perf/bareapp.py) under the same uvicorn flags. Each
round runs bare and hit back to back, so ``hit_vs_bare`` compares like with like on a
machine whose background load drifts. ``--baseline-dir`` also serves the hot product from
another copy of ``service/`` (e.g. the last commit) against the same Redis, for A/B rounds.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from .servers import ApiProcess, PgCluster, RedisNode

# The same bare app `make bench` uses as its hit-path anchor.
BENCH_DIR = Path(__file__).resolve().parents[2] / "bench" / "perf"

MISS_SCRIPT = """
-- Each request asks for a product id nobody asked for yet, so every one is a cache miss.
local counter = 0
local threads = 0
function setup(thread)
  thread:set("offset", threads * %(per_thread)d + %(first)d)
  threads = threads + 1
end
function request()
  counter = counter + 1
  return wrk.format("GET", "/products/" .. (offset + counter))
end
"""


def wrk(
    url: str, seconds: int, connections: int, script: Path | None = None, quiet: bool = False
) -> float:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30)
    if not quiet:
        print(out.stdout)
    # Errors (non-2xx, timeouts) would make a fast failure look like throughput.
    assert "Non-2xx" not in out.stdout and "Socket errors" not in out.stdout, out.stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out.stdout)
    assert match, out.stdout + out.stderr
    return float(match.group(1))


def httpx_loop(urls: list[str], budget_seconds: float) -> float:
    done = 0
    started = time.monotonic()
    with httpx.Client(timeout=5) as client:
        for url in urls:
            if time.monotonic() - started > budget_seconds:
                break
            client.get(url).raise_for_status()
            done += 1
    return done / (time.monotonic() - started)


def _hit_vs_bare_rounds(
    args: argparse.Namespace, hot: str, bare: ApiProcess, baseline: ApiProcess | None
) -> dict[str, float]:
    """Alternate bare / hit (/ baseline hit) runs and report per-round and median ratios."""
    path = hot.split("/", 3)[3]
    targets = {"bare": f"{bare.url}/{path}", "hit": hot}
    if baseline is not None:
        targets["base_hit"] = f"{baseline.url}/{path}"
        assert httpx.get(targets["base_hit"]).headers["x-cache"] == "HIT"
    for url in targets.values():
        wrk(url, 1, args.connections, quiet=True)  # warm-up: JIT-free, but caches and pools
    runs: dict[str, list[float]] = {name: [] for name in targets}
    for n in range(args.rounds):
        line = []
        for name, url in targets.items():
            rps = wrk(url, args.seconds, args.connections, quiet=True)
            runs[name].append(rps)
            line.append(f"{name} {rps:,.0f}")
        ratios = f"hit_vs_bare {runs['hit'][-1] / runs['bare'][-1]:.2f}"
        if baseline is not None:
            ratios += f", base_hit_vs_bare {runs['base_hit'][-1] / runs['bare'][-1]:.2f}"
        print(f"round {n + 1}: " + ", ".join(line) + f" req/s; {ratios}", flush=True)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    ratio = statistics.median(h / b for h, b in zip(runs["hit"], runs["bare"], strict=True))
    print(f"median hit_vs_bare: {ratio:.2f}")
    if baseline is not None:
        base_ratio = statistics.median(
            h / b for h, b in zip(runs["base_hit"], runs["bare"], strict=True)
        )
        print(f"median base_hit_vs_bare: {base_ratio:.2f}")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--products", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3, help="bare/hit pairs, back to back")
    parser.add_argument("--baseline-dir", type=Path, help="another service/ tree to A/B against")
    parser.add_argument("--skip-miss", action="store_true", help="hit vs bare only")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="pgha-loadcheck-"))
    base.chmod(0o755)
    cluster, redis_node = PgCluster(base), RedisNode(base)
    api: ApiProcess | None = None
    extra: list[ApiProcess] = []
    try:
        cluster.create()
        redis_node.start()
        env = {
            "PGHA_WRITE_DSN": cluster.primary.dsn(),
            "PGHA_READ_DSN": cluster.replica.dsn(),
            "PGHA_REDIS_URL": redis_node.url,
            "PGHA_LOG_LEVEL": "WARNING",
        }
        api = ApiProcess("load", base, env)
        api.start()
        bare = ApiProcess("bare", base, {}, app_dir=BENCH_DIR, target="bareapp:app", factory=False)
        extra.append(bare)
        bare.start()
        baseline: ApiProcess | None = None
        if args.baseline_dir is not None:
            baseline = ApiProcess("baseline", base, env, app_dir=args.baseline_dir.resolve())
            extra.append(baseline)
            baseline.start()
        first = httpx.post(
            f"{api.url}/products", json={"name": "hot", "price": "1", "stock": 1}
        ).json()["id"]
        cluster.primary.sql(
            "INSERT INTO products (name, price, stock) "
            "SELECT 'p' || g, g %% 1000, g FROM generate_series(1, %s) AS g",
            (args.products,),
            "pgha",
        )
        cluster.wait_caught_up()
        hot = f"{api.url}/products/{first}"
        assert httpx.get(hot).headers["x-cache"] in ("MISS", "BYPASS")
        warm = httpx.get(hot)  # warm: the next reads are hits
        assert warm.headers["x-cache"] == "HIT", (warm.headers, api.log_tail())

        results: dict[str, float] = {}
        if shutil.which("wrk"):
            rounds = _hit_vs_bare_rounds(args, hot, bare, baseline)
            results.update(rounds)
            if not args.skip_miss:
                results["health"] = wrk(f"{api.url}/health", args.seconds, args.connections)
                script = base / "miss.lua"
                script.write_text(MISS_SCRIPT % {"per_thread": args.products, "first": first})
                results["miss"] = wrk(api.url, args.seconds, args.connections, script)
        else:
            results["hit"] = httpx_loop([hot] * 5000, args.seconds)
            miss_urls = [f"{api.url}/products/{first + i}" for i in range(1, args.products)]
            results["miss"] = httpx_loop(miss_urls, args.seconds)
        for proc in (api, baseline):
            if proc is None:
                continue
            metrics = httpx.get(f"{proc.url}/metrics").text
            cache_lines = [
                line
                for line in metrics.splitlines()
                if line.startswith(("pgha_cache_requests_total", "pgha_backend_errors"))
            ]
            print(f"[{proc.name}]\n" + "\n".join(cache_lines))
            trips = [line for line in proc.log_tail(500).splitlines() if "redis" in line]
            print("\n".join(trips) or "no redis failures logged")
        for name, rps in results.items():
            print(f"{name:>6}: {rps:,.0f} req/s")
    finally:
        for proc in [api, *extra]:
            if proc is not None:
                proc.stop()
        redis_node.stop()
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
