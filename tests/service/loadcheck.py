"""Bounded load check of the read path on loopback: cache hits vs misses (wrk, or httpx).

Run: .venv/bin/python -m tests.service.loadcheck [--seconds 8] [--connections 32]
Starts its own PostgreSQL primary + replica, Redis and one API worker, like the tests.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from .servers import ApiProcess, PgCluster, RedisNode

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


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> float:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30)
    print(out.stdout)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--products", type=int, default=40_000)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="pgha-loadcheck-"))
    base.chmod(0o755)
    cluster, redis_node = PgCluster(base), RedisNode(base)
    api: ApiProcess | None = None
    try:
        cluster.create()
        redis_node.start()
        api = ApiProcess(
            "load",
            base,
            {
                "PGHA_WRITE_DSN": cluster.primary.dsn(),
                "PGHA_READ_DSN": cluster.replica.dsn(),
                "PGHA_REDIS_URL": redis_node.url,
                "PGHA_LOG_LEVEL": "WARNING",
            },
        )
        api.start()
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
        httpx.get(hot)  # warm: the next reads are hits

        results: dict[str, float] = {}
        if shutil.which("wrk"):
            results["health"] = wrk(f"{api.url}/health", args.seconds, args.connections)
            results["hit"] = wrk(hot, args.seconds, args.connections)
            script = base / "miss.lua"
            script.write_text(MISS_SCRIPT % {"per_thread": args.products, "first": first})
            results["miss"] = wrk(api.url, args.seconds, args.connections, script)
        else:
            results["hit"] = httpx_loop([hot] * 5000, args.seconds)
            miss_urls = [f"{api.url}/products/{first + i}" for i in range(1, args.products)]
            results["miss"] = httpx_loop(miss_urls, args.seconds)
        metrics = httpx.get(f"{api.url}/metrics").text
        cache_lines = [
            line
            for line in metrics.splitlines()
            if line.startswith(("pgha_cache_requests_total", "pgha_backend_errors"))
        ]
        print("\n".join(cache_lines))
        breaker_trips = [line for line in api.log_tail(500).splitlines() if "redis" in line]
        print("\n".join(breaker_trips) or "no redis failures logged")
        for name, rps in results.items():
            print(f"{name:>6}: {rps:,.0f} req/s")
    finally:
        if api is not None:
            api.stop()
        redis_node.stop()
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
