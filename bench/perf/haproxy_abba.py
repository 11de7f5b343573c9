"""Two HAProxy configs side by side on one stack, in ABBA order, on the API's write paths.

``python -m bench.perf.haproxy_abba --stack perf --after-cfg FILE [--before-cfg FILE]`` starts two
clones of the stack's HAProxy container (its image and environment, on the stack network,
each under its own name and with its HTTP frontend on its own published port), the first
with the stack's own rendered config (or ``--before-cfg``), the second with ``--after-cfg``.

``--path dsn`` (default): three twins of an API instance that differ only in
``PGHA_WRITE_DSN``: through clone A, through clone B, and straight to the primary; POSTs go
to each twin, the direct twin between A and B, so ``1 - via / direct`` per side is what
``api_haproxy_write_overhead`` measures. ``--path frontend``: POSTs go through each clone's
HTTP frontend to the stack's own API instances, as users' requests do.

``--rounds`` rounds, A B in even rounds and B A in odd ones. Per run: req/s, p50/p99, the
server's CPU per request (the twin's, or both API instances', from /proc) and the HAProxy
clone's, and the load average. Writes ``bench/results/haproxy-abba-<timestamp>.json``;
posted rows are deleted at the end. Neither clone takes the stack's ``haproxy`` alias, so
nothing but this tool reaches them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, api_containers, log, run, utc_now, wait_http_ok
from bench.perf.anchors import direct_dsn
from bench.perf.containers import Docker, cpu_seconds
from bench.perf.data import delete_products
from bench.perf.tools import http_failures, parse_wrk, wrk_command
from pgha_testkit.stack import Outputs, load_outputs

RESULTS = RESULTS_DIR
# A clone gets its config in the env: with no volume, the entrypoint seeds it from there.
CFG_ENV = "PGHA_HAPROXY_CFG"
LIVE_CFG = "/var/lib/pgha-haproxy/haproxy.cfg"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stack", required=True)
    p.add_argument("--after-cfg", required=True, type=Path, help="config B (a file)")
    p.add_argument("--before-cfg", type=Path, help="config A (default: the stack's own)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    p.add_argument("--connections", "-c", type=int, default=32)
    p.add_argument("--path", choices=("dsn", "frontend"), default="dsn")
    p.add_argument(
        "--twin-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of every twin (--path dsn), e.g. PGHA_POOL_MAX=20",
    )
    return p.parse_args()


def _start_proxy(docker: Docker, stack: Outputs, side: str, cfg: str) -> tuple[str, str]:
    """(container name, URL of its HTTP frontend) of a clone of the stack's HAProxy."""
    haproxy = stack.container_of("haproxy")
    name = f"{stack.prefix}-bench-hap-{side.lower()}"
    env = {**docker.environment(haproxy), CFG_ENV: cfg}
    url = docker.start_http_helper(
        name,
        docker.image_id(haproxy),
        label="haproxy-abba",
        network=stack.network,
        environment=env,
        health_seconds=None,
    )
    return name, url


def _start_twin(docker: Docker, stack: Outputs, role: str, env: dict[str, str]) -> str:
    name = f"{stack.prefix}-bench-hap-twin-{role}"
    api_image = docker.image_id(stack.container_of("api"))
    url = docker.start_http_helper(
        name, api_image, label="haproxy-abba", network=stack.network, environment=env
    )
    log(f"twin {role}: {name} on {url}")
    return url


def _idle_rates(docker: Docker, names: list[str], seconds: float = 3.0) -> dict[str, float]:
    """CPU seconds per second of each container at rest: its checks, probers and timers."""
    pids = {name: docker.pids(name) for name in names}
    before = {name: cpu_seconds(p) for name, p in pids.items()}
    time.sleep(seconds)
    return {name: (cpu_seconds(p) - before[name]) / seconds for name, p in pids.items()}


def _measure(
    docker: Docker,
    servers: list[str],
    proxy: str | None,
    url: str,
    prefix: str,
    o: argparse.Namespace,
    seconds: int | None = None,
    idle: dict[str, float] | None = None,
) -> dict[str, Any]:
    twin_pids = [pid for name in servers for pid in docker.pids(name)]
    proxy_pids = docker.pids(proxy) if proxy else []
    load = os.getloadavg()[0]
    twin_cpu, proxy_cpu = cpu_seconds(twin_pids), cpu_seconds(proxy_pids)
    started = time.monotonic()
    seconds = seconds or o.duration
    cmd = wrk_command(
        url, "post.lua", [prefix], threads=1, connections=o.connections, seconds=seconds
    )
    proc = run(cmd.argv, timeout=seconds + 60, env=cmd.env)
    result = parse_wrk(proc.stdout, url)
    elapsed = time.monotonic() - started
    idle = idle or {}
    # What the containers burn at rest over the run's window is not the requests' cost.
    twin_rest = sum(idle.get(name, 0.0) for name in servers) * elapsed
    proxy_rest = idle.get(proxy or "", 0.0) * elapsed
    requests = result["requests"] or 1
    return {
        "rate": result["rate"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "server_cpu_us_per_req": round(
            (cpu_seconds(twin_pids) - twin_cpu - twin_rest) / requests * 1e6, 1
        ),
        "proxy_cpu_us_per_req": round(
            (cpu_seconds(proxy_pids) - proxy_cpu - proxy_rest) / requests * 1e6, 1
        ),
        "load_avg": round(load, 2),
        "failures": http_failures(result),
    }


def main() -> int:
    o = _args()
    stack = load_outputs(o.stack)
    secrets = stack.require_secrets()
    docker = Docker()
    cfgs = {
        "A": o.before_cfg.read_text()
        if o.before_cfg
        # The stack's HAProxy keeps its uploaded config on its volume (infra/proxy_config.py).
        else docker.exec(stack.container_of("haproxy"), ["cat", LIVE_CFG], timeout=30).stdout,
        "B": o.after_cfg.read_text(),
    }
    api_env = docker.environment(stack.container_of("api"))
    api_env.update(item.split("=", 1) for item in o.twin_env)
    prefix = f"pgha-bench-hap-{utc_now():%Y%m%dT%H%M%SZ}"
    names: dict[str, str] = {}
    proxies: dict[str, str] = {}
    urls: dict[str, str] = {}
    servers: dict[str, list[str]] = {}
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    try:
        for side, cfg in cfgs.items():
            proxies[side], urls[side] = _start_proxy(docker, stack, side, cfg)
            names[f"hap-{side}"] = proxies[side]
        time.sleep(2)  # the clones resolve the nodes and pass their first checks
        if o.path == "frontend":
            for side in cfgs:
                wait_http_ok(f"{urls[side]}/health", 30)
                servers[side] = api_containers(stack)
        else:
            dsn = api_env["PGHA_WRITE_DSN"]
            runs["direct"] = []
            targets = {
                "A": direct_dsn(dsn, proxies["A"], 5432),
                "B": direct_dsn(dsn, proxies["B"], 5432),
                "direct": direct_dsn(dsn, stack.primary, 5432),
            }
            for side, target in targets.items():
                role = side.lower()
                names[f"twin-{side}"] = f"{stack.prefix}-bench-hap-twin-{role}"
                servers[side] = [names[f"twin-{side}"]]
                env = {**api_env, "PGHA_WRITE_DSN": target}
                urls[side] = _start_twin(docker, stack, role, env)
        for side in runs:  # every write pool starts with one connection: grow them
            _measure(docker, servers[side], None, urls[side], f"{prefix}-warm", o, seconds=2)
        measured = {*names.values(), *(n for group in servers.values() for n in group)}
        idle = _idle_rates(docker, sorted(measured))
        log(f"CPU at rest, cores: {idle}")
        for r in range(o.rounds):
            middle = ("direct",) if "direct" in runs else ()
            order = ("A", *middle, "B") if r % 2 == 0 else ("B", *middle, "A")
            for side in order:
                proxy = proxies.get(side)
                fig = _measure(docker, servers[side], proxy, urls[side], prefix, o, idle=idle)
                runs[side].append(fig)
                log(f"round {r + 1} {side}: {fig}")
    finally:
        for name in names.values():
            docker.remove(name)
        delete_products(secrets.write_dsn, secrets.redis_url, prefix)
    _report(o, runs)
    return 0


def _report(o: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> None:
    direct = statistics.mean(f["rate"] for f in runs["direct"]) if "direct" in runs else None
    print(f"\n--path {o.path}, -c{o.connections} -d{o.duration}s, {o.rounds} rounds")
    print("| config | req/s (runs) | 1 - via/direct | server CPU µs/req | HAProxy CPU µs/req |")
    print("|---|---:|---:|---:|---:|")
    for side, figs in runs.items():
        rate = statistics.mean(f["rate"] for f in figs)
        each = ", ".join(f"{f['rate']:,.0f}" for f in figs)
        server = statistics.mean(f["server_cpu_us_per_req"] for f in figs)
        proxy = statistics.mean(f["proxy_cpu_us_per_req"] for f in figs)
        overhead = "" if direct is None else f"{1 - rate / direct:.3f}"
        print(f"| {side} | {rate:,.0f} ({each}) | {overhead} | {server:,.0f} | {proxy:,.0f} |")
    loads = [f["load_avg"] for figs in runs.values() for f in figs]
    print(f"load average during runs: {min(loads):.1f} to {max(loads):.1f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"haproxy-abba-{utc_now():%Y%m%dT%H%M%SZ}.json"
    options = {**vars(o), "after_cfg": str(o.after_cfg), "before_cfg": str(o.before_cfg)}
    out.write_text(json.dumps({"options": options, "runs": runs}, indent=1))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    raise SystemExit(main())
