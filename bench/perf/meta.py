"""What a bench report says about its own run: command, commit, host, stack, tools.

Figures from a shared 2-core host mean little without this context, so it is recorded
first, and the conditions that make figures noisier (neighbour containers, a busy host)
become report warnings.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import api_containers, run, utc_now
from bench.perf.containers import Docker
from bench.perf.options import Options
from bench.perf.tools import PGBENCH, host_tool_version
from pgha_testkit.env import ROOT
from pgha_testkit.stack import Outputs, config_value


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def describe(
    opts: Options, stack: Outputs, docker: Docker, run_id: str, argv: Sequence[str]
) -> tuple[dict[str, Any], list[str]]:
    """The report's `meta` (keys in report order) and the warnings the context calls for."""
    api = stack.container_of("api")
    ours = set(stack.containers.values())
    others = [n for n in docker.running_names() if n not in ours and not n.startswith(stack.prefix)]
    load = os.getloadavg()
    git = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], timeout=30, check=False)
    dirty = run(["git", "-C", str(ROOT), "status", "--porcelain"], timeout=30, check=False)
    o = opts
    meta: dict[str, Any] = {
        "run_id": run_id,
        "started_at": utc_now().isoformat(),
        "command": " ".join(["python", "-m", "bench.perf.run", *argv]),
        "stack": stack.stack,
        "git_commit": git.stdout.strip() or None,
        "git_dirty": bool(dirty.stdout.strip()),
        "host": {
            "cores": os.cpu_count(),
            "machine": platform.machine(),
            "kernel": platform.release(),
            "loadavg_start": [round(x, 2) for x in load],
            "other_running_containers": others,
        },
        # Load goes through HAProxy's frontend to every instance (`pgha:apiReplicas`).
        "api_instances": len(api_containers(stack)),
        "api_replicas_config": _int_or_none(config_value(stack.stack, "apiReplicas")),
        "api_workers": _int_or_none(docker.env(api, "PGHA_WORKERS")),
        "api_workers_config": _int_or_none(config_value(stack.stack, "apiWorkers")),
        "cache_ttl_seconds": _int_or_none(docker.env(api, "PGHA_CACHE_TTL_SECONDS")),
        "cache_mode": config_value(stack.stack, "cacheMode") or "single",
        # Sentinel mode only: whether the API checks each body's epoch (the failover guard).
        "cache_failover_guard": config_value(stack.stack, "cacheFailoverGuard"),
        "redis_container": stack.container_of("redis"),
        "primary": stack.primary,
        "replicas": list(stack.replicas),
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
            "wrk": host_tool_version(["wrk", "-v"]),
            "pgbench": docker.tool_version(stack.primary_container, [PGBENCH, "--version"]),
            "redis_benchmark": docker.tool_version(
                stack.container_of("redis"), ["redis-benchmark", "--version"]
            ),
        },
    }
    warnings = []
    if others:
        warnings.append(
            f"{len(others)} other container(s) were running on this {os.cpu_count()}-core "
            "host during the run; absolute figures are noisier than the ratios."
        )
    if load[0] > (os.cpu_count() or 1) * 0.5:
        warnings.append(f"load average was {load[0]:.2f} at start: the host was not idle.")
    return meta, warnings
