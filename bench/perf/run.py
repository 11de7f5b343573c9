"""pgha benchmark runner: ``python -m bench.perf.run --stack <stack>`` (what ``make bench`` runs).

Every figure comes from one run against one deployed stack, measured side by side:

* HTTP through the API, driven by wrk with the Lua scripts in ``bench/perf/lua/``: GET on cache
  hits over a working set of 10k products, GET on cache misses served by the replica (unique
  ids, each read once), POST and PUT (the API writes through HAProxy's ``primary`` listen);
* anchors: ``redis-benchmark -t get`` inside the Redis container, a bare uvicorn + Starlette
  JSON endpoint started from the API's own image with the same worker count (hit path), the
  same bare app on psycopg's pool running the API's SELECT, INSERT and UPDATE through
  HAProxy (miss and write paths, bench/perf/dbapp.py), two twins of an API instance writing via
  HAProxy and straight to the primary (bench/perf/writes.py), ``pgbench -S`` on the replica
  (directly and through HAProxy's ``replicas``), and pgbench writes through HAProxy's
  ``primary`` and directly to the primary node;
* streaming-replication lag: ``pg_stat_replication.replay_lag`` sampled on the primary during
  every write run.

It writes ``bench/results/<UTC timestamp>.json``, ``.md`` (summary, each ratio against its
goal) and ``.png`` (throughput and latency chart). Goals are documented, never asserted.

Load goes only to 127.0.0.1 and the stack's own containers, and every load loop is bounded in
count and in time (wrk and pgbench by duration, redis-benchmark and the cache warm-up by
request count, and each command by a hard timeout). What the run creates (seeded and posted
products and their cache keys, the pgbench tables, the helper containers) is removed at the
end, also when a phase fails.

This module holds the scenarios; the stack comes from ``pgha_testkit``, the tools from
``bench.perf.tools``, Docker from ``bench.perf.containers`` and the report from
``bench.perf.report``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from bench.common import BenchError, api_containers, log, wait_for_idle
from bench.perf.anchors import start_read_twin
from bench.perf.context import Bench
from bench.perf.options import parse_args
from bench.perf.report import ensure_matplotlib, fmt, write_outputs
from bench.perf.tools import combine_http, parse_redis_csv, redis_benchmark_command, require_wrk
from bench.perf.writes import api_haproxy_phase, api_write_phase
from pgha_testkit.env import ROOT
from pgha_testkit.stack import StackError, load_outputs


def http_phase(b: Bench) -> None:
    """Bare anchor against cache hits, and the SELECT anchor against cache misses, each
    pair in rounds of alternating order.

    Each round warms a fresh 10k working set right before its hit run, because cache
    entries live ``cacheTtlSeconds`` (60 s by default) from the fill and reads do not
    extend them: a second run over an old set would drift into misses. Bare and hit runs
    go ABBA across rounds so slow drift on a shared host does not favour either.
    """
    o, api_url = b.opts, b.stack.api_url
    bare_path = f"{b.start_bare()}/products/1"
    api = api_containers(b.stack)
    # One API instance on its own port, as the anchors are: the like-for-like side of
    # hit_vs_bare_direct and miss_vs_bare_query_direct (no HTTP frontend, one instance).
    twin_url, twin = start_read_twin(b)
    runs: dict[str, list[dict[str, Any]]] = {
        "bare": [],
        "api_hit": [],
        "twin_hit": [],
        "api_miss": [],
        "twin_miss": [],
        "bare_query": [],
    }

    def bare() -> None:
        log("bare uvicorn + Starlette anchor")
        if o.warmup:
            b.wrk("bare warm-up", bare_path, "plain.lua", [], o.warmup)
        runs["bare"].append(
            b.wrk("bare", bare_path, "plain.lua", [], o.duration, server=b.bare_name)
        )

    def reads(r: int, name: str, args: list[str], probe_args: list[str]) -> None:
        runs[name].append(b.wrk(name, api_url, "get_ids.lua", args, o.duration, server=api))
        if r == 0:
            # Service time without queueing: one connection, on the same kind of ids.
            probe = b.wrk(
                f"{name}_c1",
                api_url,
                "get_ids.lua",
                probe_args,
                o.probe_seconds,
                server=api,
                connections=1,
            )
            b.record(f"{name}_c1", probe)

    def twin_reads(name: str, args: list[str]) -> None:
        runs[name].append(b.wrk(name, twin_url, "get_ids.lua", args, o.duration, server=twin))

    def hit(r: int) -> None:
        b.warm(b.hit_sets[r])
        args = [str(b.hit_sets[r]), "cycle", str(o.threads)]
        if o.warmup:
            b.wrk("hit warm-up", api_url, "get_ids.lua", args, o.warmup)
        if r % 2:
            twin_reads("twin_hit", args)
        # The probe reads the same ids: the cache is still warm.
        reads(r, "api_hit", args, args)
        if not r % 2:
            twin_reads("twin_hit", args)

    def miss(r: int) -> None:
        log(f"cache misses over {len(b.ids[b.miss_sets[r]]):,} never-read ids")
        assert b.probe_set is not None
        args = [str(b.miss_sets[r]), "once", str(o.threads)]
        twin_args = [str(b.twin_miss_sets[r]), "once", str(o.threads)]
        if r % 2:
            twin_reads("twin_miss", twin_args)
        reads(r, "api_miss", args, [str(b.probe_set), "once", "1"])
        if not r % 2:
            twin_reads("twin_miss", twin_args)

    db_url, db_name = b.db_anchor()
    if o.warmup:
        # Its pools open one connection each and grow under load, as the API's already did.
        args = [str(b.miss_sets[0]), "cycle", str(o.threads)]
        b.wrk("bare query warm-up", db_url, "get_ids.lua", args, o.warmup)

    def bare_query(r: int) -> None:
        # The round's miss ids, cycled: the anchor has no cache, so re-reads cost it the
        # same SELECT and touch nothing the API's miss run depends on.
        log("bare Starlette + psycopg SELECT anchor")
        args = [str(b.miss_sets[r]), "cycle", str(o.threads)]
        runs["bare_query"].append(
            b.wrk("bare_query", db_url, "get_ids.lua", args, o.duration, server=db_name)
        )

    for r in range(o.rounds):
        log(f"HTTP read round {r + 1}/{o.rounds}")
        if r % 2 == 0:
            bare()
            hit(r)
            miss(r)
            bare_query(r)
        else:
            hit(r)
            bare()
            bare_query(r)
            miss(r)
    for key, figure_runs in runs.items():
        b.record(key, combine_http(figure_runs))
    check_cache_counts(b)


def check_cache_counts(b: Bench) -> None:
    figs, warn = b.report.figures, b.report.warnings.append
    hit_fig, miss_fig = figs["api_hit"], figs["api_miss"]
    if hit_fig["x_cache"]["hit"] < 0.99 * hit_fig["requests"]:
        warn(
            f"api_hit: only {hit_fig['x_cache']['hit']} of {hit_fig['requests']} were cache "
            f"hits (X-Cache counts {hit_fig['x_cache']})."
        )
    for key in ("api_miss", "api_miss_c1"):
        if figs[key]["repeated_ids"]:
            warn(
                f"{key}: the miss set ran out and ids were re-read (so some were hits); "
                "raise --miss-ids."
            )
    if miss_fig["x_cache"]["miss"] < 0.99 * miss_fig["requests"]:
        warn(f"api_miss: only {miss_fig['x_cache']['miss']} of {miss_fig['requests']} were misses.")
    for key, want in (("twin_hit", "hit"), ("twin_miss", "miss")):
        fig = figs.get(key)
        if fig and fig["x_cache"][want] < 0.99 * fig["requests"]:
            warn(f"{key}: only {fig['x_cache'][want]} of {fig['requests']} were {want}es.")


def redis_phase(b: Bench) -> None:
    o = b.opts
    log(f"redis-benchmark -t get -n {o.redis_requests} -c {o.connections} in the container")
    cmd = redis_benchmark_command(b.secrets.redis_user, o.redis_requests, o.connections)
    result = b.docker.exec(b.stack.container_of("redis"), cmd, timeout=300)
    b.record("redis_get", parse_redis_csv(result.stdout))


def pgbench_run(
    b: Bench, tag: str, host: str, port: int, extra: Sequence[str]
) -> tuple[dict[str, Any], list[float]]:
    o = b.opts
    return b.pg.run(
        tag, host, port, clients=o.pg_clients, jobs=o.pg_jobs, seconds=o.duration, extra=extra
    )


def pgbench_phase(b: Bench) -> None:
    assert b.sampler is not None
    o = b.opts
    replica = b.stack.replicas[0]
    log(f"pgbench -S on replica {replica} directly, then through HAProxy replicas")
    for key, tag, host, port in (
        ("pg_select_replica", "select-replica", replica, 5432),
        ("pg_select_haproxy", "select-haproxy", "haproxy", 5433),
    ):
        # The cheapest path to a row: the floor the HTTP paths' CPU is compared with.
        watch = b.watch([b.pg.name])
        result = pgbench_run(b, tag, host, port, ["-S", "-n"])
        b.record_pgbench(key, [result])
        figure = b.report.figures[key]
        if figure["transactions"]:
            b.add_path_cpu(figure, watch, figure["transactions"])
    write_args = ["-N"] if o.pg_write == "simple-update" else []
    targets = {"direct": (b.stack.primary, 5432), "haproxy": ("haproxy", 5432)}
    results: dict[str, list[tuple[dict[str, Any], list[float]]]] = {"direct": [], "haproxy": []}
    # ABBA order: slow drift of the host (autovacuum, neighbours, table growth) hits both
    # targets alike instead of biasing whichever always runs second.
    for i in range(o.rounds):
        order = ("direct", "haproxy") if i % 2 == 0 else ("haproxy", "direct")
        for target in order:
            log(f"pgbench write round {i + 1}/{o.rounds}: {target}")
            host, port = targets[target]
            with b.sampler.phase(f"pgbench_write_{target}"):
                results[target].append(
                    pgbench_run(b, f"write-{target}-{i}", host, port, write_args)
                )
    b.record_pgbench("pg_write_direct", results["direct"])
    b.record_pgbench("pg_write_haproxy", results["haproxy"])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = parse_args(argv)
    try:
        ensure_matplotlib()
        require_wrk()
        stack = load_outputs(opts.stack)
    except (BenchError, StackError) as exc:
        log(f"error: {exc}")
        return 2
    bench = Bench(opts, stack)
    log(f"run {bench.run_id} against stack {stack.stack!r} (api {stack.api_url})")
    try:
        waited = wait_for_idle(opts.wait_idle)
        bench.preflight()
        bench.describe(argv)
        bench.perf.report.meta["waited_for_idle_s"] = waited
        bench.measure_idle()
        bench.seed()
        bench.start_pg_client()
        bench.pgbench_init()
        bench.wait_replicas()
        http_phase(bench)
        api_write_phase(bench)
        api_haproxy_phase(bench)
        redis_phase(bench)
        bench.wait_replicas()
        pgbench_phase(bench)
        bench.memory("after_load")
    except (BenchError, OSError, KeyboardInterrupt) as exc:
        bench.perf.report.error = f"{type(exc).__name__}: {exc}"
        log(f"error: {bench.perf.report.error}")
    except Exception as exc:
        # Unexpected (a bug or a driver error): still clean up and write what was measured.
        bench.perf.report.error = f"{type(exc).__name__}: {exc}"
        log(f"unexpected error: {bench.perf.report.error}")
    finally:
        log("cleaning up")
        bench.cleanup()
    bench.summarize()
    paths = write_outputs(bench.perf.report, opts.out_dir, bench.run_id)
    for path in paths:
        log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    for name, r in bench.perf.report.ratios.items():
        log(f"{name} = {fmt(r['value'], 3)} (goal {r['goal']}, met: {r['met']})")
    return 1 if bench.perf.report.error else 0


if __name__ == "__main__":
    sys.exit(main())
