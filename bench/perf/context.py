"""One bench run's machinery: the stack, its helpers, the report, and cleanup.

`Bench` owns everything a run creates (seeded rows, helper containers, the psql session
and lag sampler, temp files) so that `cleanup()` can undo all of it whichever phase
failed. The scenarios in `bench.perf.run` only drive load through it and record figures.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import BenchError, log, run, utc_now, wait_http_ok
from bench.perf import data
from bench.perf.anchors import start_db_anchor
from bench.perf.containers import Docker, cpu_seconds
from bench.perf.footprint import (
    Cgroups,
    Snapshot,
    above_idle,
    cpu_seconds_between,
    per_thousand,
    short,
)
from bench.perf.lag import LagSampler, PrimarySession, wait_replayed
from bench.perf.meta import describe
from bench.perf.options import Options, probe_ids
from bench.perf.pgclient import PgClient
from bench.perf.report import LABELS, Report, evaluate
from bench.perf.tools import MAX_HTTP_RATE, http_failures, parse_wrk, pgbench_figure, wrk_command
from pgha_testkit.stack import Outputs

# The bare anchor's source, shipped into a container of the API image (see bench/perf/bareapp.py).
BARE_APP = Path(__file__).with_name("bareapp.py")
# Serves the bare anchor (shipped as argv[1]) with the API's uvicorn flags and worker count.
BARE_BOOT = (
    "import os, pathlib, sys\n"
    "pathlib.Path('/tmp/pgha_bare.py').write_text(sys.argv[1])\n"
    "os.execvp('uvicorn', ['uvicorn', 'pgha_bare:app', '--app-dir', '/tmp', '--host', "
    "'0.0.0.0', '--port', '8000', '--loop', 'uvloop', '--http', 'httptools', '--workers', "
    "os.environ['PGHA_WORKERS'], '--no-access-log'])\n"
)


class Bench:
    def __init__(self, opts: Options, stack: Outputs) -> None:
        self.opts = opts
        self.stack = stack
        self.secrets = stack.require_secrets()
        self.docker = Docker()
        self.cgroups = Cgroups(self.docker)
        self.report = Report()
        self.run_id = utc_now().strftime("%Y%m%dT%H%M%SZ")
        # Every row the run creates carries this name prefix, so cleanup deletes exactly those.
        self.name_prefix = f"pgha-bench-{self.run_id}"
        self.tmp = Path(tempfile.mkdtemp(prefix="pgha-bench-"))
        self.bare_name = f"{stack.prefix}-bench-bare"
        self.pg = PgClient(self.docker, f"{stack.prefix}-bench-pgclient", self.secrets.pg_password)
        self.helpers: list[str] = []
        self.session: PrimarySession | None = None
        self.sampler: LagSampler | None = None
        # One fresh hit set and one fresh miss set per round; see bench.perf.run.http_phase for why.
        self.hit_sets: list[Path] = []
        self.miss_sets: list[Path] = []
        self.twin_miss_sets: list[Path] = []
        self.probe_set: Path | None = None
        self.ids: dict[Path, list[int]] = {}
        self._db_anchor: tuple[str, str] | None = None
        self.idle_cores: dict[str, float] = {}

    # ------------------------------------------------------------ set-up

    def preflight(self) -> None:
        for role, name in self.stack.containers.items():
            if not self.docker.running(name):
                raise BenchError(f"container {name} ({role}) is not running")
        wait_http_ok(f"{self.stack.api_url}/health", 10)
        if not self.stack.replicas:
            raise BenchError("the stack has no replica: nothing to read from or lag behind")
        self.session = PrimarySession(self.docker.client(30), self.stack.primary_container)
        count = int(self.session.query("SELECT count(*) FROM pg_stat_replication")[0])
        if count < len(self.stack.replicas):
            raise BenchError(f"{count} replica(s) streaming, {len(self.stack.replicas)} expected")
        self.sampler = LagSampler(self.session, self.opts.lag_interval, deadline_s=3600)

    def describe(self, argv: Sequence[str]) -> None:
        meta, warnings = describe(self.opts, self.stack, self.docker, self.run_id, argv)
        self.report.meta = meta
        self.report.warnings += warnings

    def seed(self) -> None:
        """Insert the run's products with one INSERT ... generate_series per id set."""
        o = self.opts
        sets: list[tuple[str, int]] = []
        for r in range(o.rounds):
            sets += [(f"hit-{r}", o.hit_ids), (f"miss-{r}", o.miss_ids)]
            sets.append((f"twin-miss-{r}", o.miss_ids))
        sets.append(("probe-miss", probe_ids(o)))
        log(
            f"seeding {sum(n for _, n in sets):,} products via the write DSN: per round "
            f"{o.hit_ids:,} hit + 2 x {o.miss_ids:,} miss ids (API and twin), and "
            f"{probe_ids(o):,} probe ids"
        )
        for tag, ids in data.seed(self.secrets.write_dsn, self.name_prefix, sets).items():
            path = self.tmp / f"{tag}.ids"
            self.ids[path] = ids
            path.write_text("\n".join(map(str, ids)) + "\n")
            if tag.startswith("hit-"):
                self.hit_sets.append(path)
            elif tag.startswith("miss-"):
                self.miss_sets.append(path)
            elif tag.startswith("twin-miss-"):
                self.twin_miss_sets.append(path)
            else:
                self.probe_set = path

    def wait_replicas(self, seconds: float = 60) -> None:
        assert self.session is not None
        wait_replayed(self.session, len(self.stack.replicas), seconds)

    def start_bare(self) -> str:
        api = self.stack.container_of("api")
        workers = self.docker.env(api, "PGHA_WORKERS") or "1"
        self.helpers.append(self.bare_name)
        url = self.docker.start_http_helper(
            self.bare_name,
            self.docker.image_id(api),
            entrypoint="python3",
            command=["-c", BARE_BOOT, BARE_APP.read_text()],
            label="anchor",
            environment={"PGHA_WORKERS": workers},
            health_seconds=30,
        )
        log(f"bare anchor {self.bare_name} up on {url} with {workers} worker(s)")
        return url

    def db_anchor(self) -> tuple[str, str]:
        """(URL, container) of the miss and write anchor, started on first use."""
        if self._db_anchor is None:
            self._db_anchor = start_db_anchor(self, BARE_BOOT)
        return self._db_anchor

    def start_pg_client(self) -> None:
        self.helpers.append(self.pg.name)
        self.pg.start(self.docker.image_id(self.stack.primary_container), self.stack.network)

    def pgbench_init(self) -> None:
        log(f"pgbench -i -s {self.opts.pg_scale} through HAProxy primary")
        self.pg.init(self.opts.pg_scale)

    # ------------------------------------------------------------ load

    def wrk(
        self,
        label: str,
        url: str,
        script: str,
        args: Sequence[str],
        seconds: int,
        *,
        server: str | Sequence[str] | None = None,
        connections: int | None = None,
    ) -> dict[str, Any]:
        """One bounded wrk run; with ``server`` (one container or several, e.g. every API
        instance behind the frontend), also their CPU per request, summed."""
        conns = connections or self.opts.connections
        servers = [server] if isinstance(server, str) else list(server or [])
        pids = [pid for name in servers for pid in self.docker.pids(name)]
        # The whole path's CPU, measured runs only: warm-ups are not recorded.
        path_watch = self.watch(servers) if servers else None
        cpu_before = cpu_seconds(pids)
        cmd = wrk_command(
            url, script, args, threads=self.opts.threads, connections=conns, seconds=seconds
        )
        proc = run(cmd.argv, timeout=seconds + 60, env=cmd.env)
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
        if path_watch and result["requests"]:
            self.add_path_cpu(result, path_watch, result["requests"])
        return result

    def watch(self, servers: Sequence[str]) -> tuple[list[str], Snapshot]:
        """Starts a path CPU measurement: the stack's containers plus ``servers``."""
        stack_names = list(self.stack.containers.values())
        watched = [*stack_names, *(s for s in servers if s not in stack_names)]
        return watched, self.cgroups.snapshot(watched)

    def add_path_cpu(
        self, figure: dict[str, Any], watch: tuple[list[str], Snapshot], count: float
    ) -> None:
        """Ends it: CPU seconds above idle by container, and CPU-ms per 1,000 of ``count``."""
        used_s = cpu_seconds_between(watch[1], self.cgroups.snapshot(watch[0]))
        by_name = {short(name, self.stack.prefix): s for name, s in used_s.items()}
        figure["path_cpu_s"] = above_idle(by_name, self.idle_cores)
        figure["path_cpu_ms_per_1k"] = per_thousand(figure["path_cpu_s"], int(count))

    def measure_idle(self, seconds: float = 3) -> None:
        """Each container's CPU rate at rest (subtracted from every run) and its memory."""
        names = list(self.stack.containers.values())
        first = self.cgroups.snapshot(names)
        time.sleep(seconds)
        second = self.cgroups.snapshot(names)
        self.idle_cores = {
            short(name, self.stack.prefix): s / elapsed
            for name, (s, elapsed) in cpu_seconds_between(first, second).items()
            if elapsed > 0
        }
        self.report.meta["idle_cpu_cores"] = {k: round(v, 3) for k, v in self.idle_cores.items()}
        self.memory("idle")

    def memory(self, tag: str) -> None:
        """Each container's memory now, in ``meta["memory_mib"][container][tag]``."""
        names = [*self.stack.containers.values(), *self.helpers]
        table = self.report.meta.setdefault("memory_mib", {})
        for name, (_, mem, _) in self.cgroups.snapshot(names).items():
            if mem is not None:
                table.setdefault(short(name, self.stack.prefix), {})[tag] = round(mem / 2**20, 1)

    def record(self, key: str, figure: dict[str, Any]) -> None:
        figure["label"] = LABELS.get(key, key)
        self.report.figures[key] = figure
        rate = figure.get("rate")
        log(
            f"{key}: {rate:,.0f} {figure['rate_unit']}, p50 {figure['p50_ms']} ms, "
            f"p99 {figure['p99_ms']} ms"
            if rate is not None
            else f"{key}: no rate"
        )
        if figure.get("kind") == "http" and figure.get("requests"):
            bad = http_failures(figure)
            if bad > 0.01 * figure["requests"]:
                self.report.warnings.append(
                    f"{key}: {bad} of {figure['requests']} requests failed or were not 2xx; "
                    "its figures are not representative."
                )

    def warm(self, ids_file: Path) -> None:
        ids = self.ids[ids_file]
        log(f"warming the cache: GET each of {len(ids):,} ids once")
        started = time.monotonic()
        counts = data.warm_cache(self.stack.api_url, ids)
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

    def record_pgbench(self, key: str, runs: Sequence[tuple[dict[str, Any], list[float]]]) -> None:
        figure = pgbench_figure(LABELS[key], runs)
        if figure["failed"]:
            self.report.warnings.append(f"{key}: {figure['failed']} pgbench transactions failed.")
        self.record(key, figure)

    # ------------------------------------------------------------ results and cleanup

    def summarize(self) -> None:
        if self.sampler is not None:
            self.report.replication_lag = self.sampler.report(self.opts.lag_interval)
        evaluate(self.report)
        self.report.meta["finished_at"] = utc_now().isoformat()
        self.report.meta.setdefault("host", {})["loadavg_end"] = [
            round(x, 2) for x in os.getloadavg()
        ]

    def cleanup(self) -> None:
        """Undo everything the run created; each step runs even if an earlier one failed."""
        steps = [
            ("stop lag sampler", self._stop_sampler),
            ("drop pgbench tables", self.pg.drop),
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

    def _remove_helpers(self) -> None:
        for name in self.helpers:
            self.docker.remove(name)

    def _delete_products(self) -> None:
        if self.opts.keep_data:
            return
        s = self.secrets
        # Sentinel mode publishes no cache port, so its keys are left to expire (cacheTtl).
        redis_url = None if self.stack.redis_primary else s.redis_url
        deleted = data.delete_products(s.write_dsn, redis_url, self.name_prefix)
        log(f"deleted {deleted} bench products" + (" and their cache keys" if redis_url else ""))
