"""Two API images side by side on one stack, in ABBA order: the before/after of a change.

``python -m bench.perf.image_abba --stack perf --before IMAGE [--after IMAGE]`` starts one twin
of an API instance per image (or, with ``--env-a``/``--env-b KEY=VALUE``, one image with two
settings, e.g. the sentinel mode's failover guard on and off): the instance's whole
environment, on the stack's network, each on its own published port, never behind the HTTP
frontend. It seeds products, and measures cache hit, cache miss, POST and PUT against each
twin. Every phase runs ``--rounds`` rounds,
A then B in even rounds and B then A in odd ones, so a shared host's drift favours neither
image. Per run it records req/s, p50/p99, the twin's CPU per request (from /proc) and the
host's load average; it prints a markdown table and writes
``bench/results/abba-<timestamp>.json``. The seeded rows and their cache keys are deleted at
the end, also after a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.common import RESULTS_DIR, log, run, utc_now
from bench.perf.containers import Docker, cpu_seconds
from bench.perf.data import delete_products, seed, warm_cache
from bench.perf.tools import http_failures, parse_wrk, wrk_command
from pgha_testkit.stack import Outputs, load_outputs

RESULTS = RESULTS_DIR
PHASES = ("hit", "miss", "post", "put")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stack", required=True)
    p.add_argument("--before", help="image A (default: the stack's API image)")
    p.add_argument("--after", help="image B (default: the stack's API image)")
    p.add_argument(
        "--env-a",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set in twin A's environment (repeatable): one image, two settings",
    )
    p.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    p.add_argument("--connections", "-c", type=int, default=32)
    p.add_argument("--workers", type=int, default=1, help="PGHA_WORKERS of both twins")
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    return p.parse_args()


def settings(pairs: list[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> a dict; a pair without ``=`` is refused."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env-a/--env-b take KEY=VALUE, not {pair!r}")
        out[key] = value
    return out


def _start(
    docker: Docker, stack: Outputs, role: str, image: str, env: dict[str, str]
) -> tuple[str, str]:
    """(container name, base URL) of a twin of an API instance running ``image``."""
    name = f"{stack.prefix}-bench-abba-{role}"
    url = docker.start_http_helper(
        name, image, label="abba", network=stack.network, environment=env
    )
    log(f"{role}: {name} ({image}) on {url}")
    return name, url


def _measure(
    docker: Docker, name: str, url: str, script: str, args: list[str], o: argparse.Namespace
) -> dict[str, Any]:
    pids = docker.pids(name)
    load = os.getloadavg()[0]
    cpu = cpu_seconds(pids)
    cmd = wrk_command(url, script, args, threads=1, connections=o.connections, seconds=o.duration)
    proc = run(cmd.argv, timeout=o.duration + 60, env=cmd.env)
    result = parse_wrk(proc.stdout, name)
    used = cpu_seconds(pids) - cpu
    requests = result["requests"] or 1
    return {
        "rate": result["rate"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "cpu_us_per_req": round(used / requests * 1e6, 1),
        "load_avg": round(load, 2),
        "failures": http_failures(result),
        "x_cache": result["x_cache"],
    }


def main() -> int:
    o = _args()
    stack = load_outputs(o.stack)
    secrets = stack.require_secrets()
    docker = Docker()
    api = stack.container_of("api")
    env = {**docker.environment(api), "PGHA_WORKERS": str(o.workers)}
    images = {"A": o.before or docker.image_id(api), "B": o.after or docker.image_id(api)}
    envs = {"A": {**env, **settings(o.env_a)}, "B": {**env, **settings(o.env_b)}}
    prefix = f"pgha-bench-abba-{utc_now():%Y%m%dT%H%M%SZ}"
    phases = [p for p in o.phases.split(",") if p]
    names: dict[str, str] = {}
    urls: dict[str, str] = {}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {p: {"A": [], "B": []} for p in phases}
    try:
        for side, image in images.items():
            names[side], urls[side] = _start(docker, stack, side, image, envs[side])
        miss_n = 4000 * o.duration
        sets = [("hit", 10_000)] + [(f"miss{r}{s}", miss_n) for r in range(o.rounds) for s in "AB"]
        ids = seed(secrets.write_dsn, prefix, sets)
        with TemporaryDirectory() as tmp:

            def id_file(tag: str) -> str:
                path = Path(tmp) / f"{tag}.txt"
                path.write_text("\n".join(map(str, ids[tag])) + "\n")
                return str(path)

            hit_file = id_file("hit")
            for phase in phases:
                for r in range(o.rounds):
                    for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
                        if phase == "hit":
                            # The cache is shared: refill it before each run (the TTL is 60 s).
                            warm_cache(urls[side], ids["hit"])
                            script, args = "get_ids.lua", [hit_file, "cycle", "1"]
                        elif phase == "miss":
                            script, args = "get_ids.lua", [id_file(f"miss{r}{side}"), "once", "1"]
                        elif phase == "post":
                            script, args = "post.lua", [f"{prefix}-{side}"]
                        else:
                            script, args = "put.lua", [hit_file, f"{prefix}-{side}", "1"]
                        fig = _measure(docker, names[side], urls[side], script, args, o)
                        results[phase][side].append(fig)
                        log(f"{phase} round {r + 1} {side}: {fig}")
    finally:
        for name in names.values():
            docker.remove(name)
        # Sentinel mode publishes no cache port: the bodies expire with their TTL.
        redis_url = None if stack.redis_primary else secrets.redis_url
        delete_products(secrets.write_dsn, redis_url, prefix)
    _report(o, images, results)
    return 0


def _report(
    o: argparse.Namespace, images: dict[str, str], results: dict[str, dict[str, list[Any]]]
) -> None:
    print(f"\nA = {images['A']} {o.env_a}, B = {images['B']} {o.env_b}; ABBA")
    print(f"-c{o.connections} -d{o.duration}s, {o.rounds} rounds")
    print("| path | A req/s (runs) | B req/s (runs) | B/A | A CPU µs/req | B CPU µs/req | load |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for phase, sides in results.items():
        a, b = sides["A"], sides["B"]
        ra, rb = statistics.mean(f["rate"] for f in a), statistics.mean(f["rate"] for f in b)
        ca = statistics.mean(f["cpu_us_per_req"] for f in a)
        cb = statistics.mean(f["cpu_us_per_req"] for f in b)
        loads = ", ".join(f"{f['load_avg']:.1f}" for f in a + b)
        runs_a = ", ".join(f"{f['rate']:,.0f}" for f in a)
        runs_b = ", ".join(f"{f['rate']:,.0f}" for f in b)
        print(
            f"| {phase} | {ra:,.0f} ({runs_a}) | {rb:,.0f} ({runs_b}) | {rb / ra:.2f} "
            f"| {ca:,.0f} | {cb:,.0f} | {loads} |"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"abba-{utc_now():%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps({"images": images, "options": vars(o), "runs": results}, indent=1))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    raise SystemExit(main())
