"""The write scenarios of a bench run: the API's POST and PUT against their anchors, and the
API's POST with its write DSN through HAProxy against the same API straight to the primary.

Every pair runs in rounds of alternating order (ABBA), as the read anchors do, so slow drift
of a shared host (autovacuum, table growth, neighbours) biases neither side. Replication
lag is sampled during every write run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import api_containers, log
from bench.perf.anchors import start_write_twins
from bench.perf.context import Bench
from bench.perf.tools import combine_http


@dataclass(frozen=True)
class WriteRun:
    key: str
    url: str
    server: str | Sequence[str]
    script: str
    args: list[str]


def abba(pairs: Sequence[tuple[WriteRun, WriteRun]], rounds: int) -> list[list[WriteRun]]:
    """Per round, each pair in turn, A then B in even rounds and B then A in odd ones."""
    return [
        [run for a, b in pairs for run in ((a, b) if r % 2 == 0 else (b, a))] for r in range(rounds)
    ]


def run_rounds(b: Bench, plan: list[list[WriteRun]]) -> None:
    assert b.sampler is not None
    runs: dict[str, list[dict[str, Any]]] = {}
    if b.opts.warmup:
        # Every side's write pool starts with one connection: grow each before measuring.
        for w in {w.key: w for w in plan[0]}.values():
            b.wrk(f"{w.key} warm-up", w.url, w.script, w.args, b.opts.warmup)
    for r, round_runs in enumerate(plan):
        log(f"write round {r + 1}/{len(plan)}: {', '.join(w.key for w in round_runs)}")
        for w in round_runs:
            with b.sampler.phase(w.key):
                result = b.wrk(w.key, w.url, w.script, w.args, b.opts.duration, server=w.server)
            runs.setdefault(w.key, []).append(result)
    for key, key_runs in runs.items():
        b.record(key, combine_http(key_runs))


def api_write_phase(b: Bench) -> None:
    """API POST and PUT through the frontend against the anchor's INSERT and UPDATE."""
    o, api_url = b.opts, b.stack.api_url
    log("API POST and PUT against the bare INSERT and UPDATE (writes via HAProxy primary)")
    api = api_containers(b.stack)
    db_url, db_name = b.db_anchor()
    ids, threads = str(b.hit_sets[0]), str(o.threads)
    # Anchor rows carry the run's prefix too, so cleanup deletes them with the API's.
    bare_prefix = f"{b.name_prefix}-bare"
    pairs = [
        (
            WriteRun("api_post", api_url, api, "post.lua", [b.name_prefix]),
            WriteRun("bare_insert", db_url, db_name, "post.lua", [bare_prefix]),
        ),
        (
            WriteRun("api_put", api_url, api, "put.lua", [ids, b.name_prefix, threads]),
            WriteRun("bare_update", db_url, db_name, "put.lua", [ids, bare_prefix, threads]),
        ),
    ]
    run_rounds(b, abba(pairs, o.rounds))


def api_haproxy_phase(b: Bench) -> None:
    """POST to two twins of an API instance, one writing via HAProxy, one to the primary."""
    log("API POST with the write DSN via HAProxy primary against straight to the primary")
    twins = start_write_twins(b)
    pair = tuple(
        WriteRun(f"twin_post_{target}", url, name, "post.lua", [f"{b.name_prefix}-twin-{target}"])
        for target, (url, name) in twins.items()
    )
    assert len(pair) == 2
    try:
        run_rounds(b, abba([(pair[0], pair[1])], b.opts.rounds))
    finally:
        # Idle twins still run health checks and pool probes: none during later phases.
        for _, name in twins.values():
            b.docker.remove(name)
