"""pgbench's helper container: the postgres image on the stack network, running only pgbench.

pgbench runs in a container of its own, not in a node: it would steal CPU from the
server it measures, and from the stack network it reaches the nodes and HAProxy by name,
like the API does. The app password travels in the exec's environment, never in argv.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.perf.containers import Docker, ExecResult
from bench.perf.tools import (
    PGBENCH,
    PGBENCH_DROP_ARGS,
    parse_pgbench,
    parse_pgbench_log,
    pgbench_args,
    pgbench_init_args,
)

# `sleep` bounds the helper's life even if the runner is killed before its cleanup.
HELPER_LIFETIME_S = "3600"


class PgClient:
    def __init__(self, docker: Docker, name: str, password: str) -> None:
        self.docker = docker
        self.name = name
        self._password = password
        self.initialized = False

    def start(self, image: str, network: str) -> None:
        self.docker.start_helper(
            self.name,
            image,
            entrypoint="sleep",
            command=[HELPER_LIFETIME_S],
            label="pgclient",
            network=network,
        )

    def pgbench(self, args: Sequence[str], timeout: float, workdir: str = "/tmp") -> ExecResult:
        return self.docker.exec(
            self.name,
            [PGBENCH, *args],
            timeout=timeout,
            environment={"PGPASSWORD": self._password, "PGCONNECT_TIMEOUT": "5"},
            workdir=workdir,
        )

    def init(self, scale: int) -> None:
        self.initialized = True
        self.pgbench(pgbench_init_args(scale), timeout=300)

    def drop(self) -> None:
        if self.initialized:
            self.pgbench(PGBENCH_DROP_ARGS, timeout=120)

    def run(
        self,
        tag: str,
        host: str,
        port: int,
        *,
        clients: int,
        jobs: int,
        seconds: int,
        extra: Sequence[str],
    ) -> tuple[dict[str, Any], list[float]]:
        """One measured pgbench run: its summary and every transaction's latency (ms)."""
        workdir = f"/tmp/pgha-bench/{tag}"  # tag is [a-z0-9_-], safe in sh -c below
        self.docker.exec(
            self.name, ["sh", "-c", f"rm -rf {workdir} && mkdir -p {workdir}"], timeout=30
        )
        args = pgbench_args(
            host,
            port,
            clients=clients,
            jobs=jobs,
            seconds=seconds,
            log_prefix=f"{workdir}/tx",
            extra=extra,
        )
        result = self.pgbench(args, timeout=seconds + 120, workdir=workdir)
        stats = parse_pgbench(result.stdout)
        logs = self.docker.exec(
            self.name, ["sh", "-c", f"cat {workdir}/tx.*; rm -rf {workdir}"], timeout=120
        )
        return stats, parse_pgbench_log(logs.stdout)
