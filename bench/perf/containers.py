"""The runner's Docker side, over the Docker SDK: inspect the stack's containers, exec tools
in them, and start and remove the two helper containers (bare anchor, pgbench client).

The SDK has no per-call timeout, so each bound is the client's socket timeout: a client is
kept per timeout, and a call fails once the engine sends nothing for that long. The tools
run here (pgbench, redis-benchmark, cat) print only at the end, so that bounds the call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker import DockerClient
from docker.models.containers import Container

from bench.common import BenchError, wait_http_ok
from pgha_testkit.ports import free_port


@dataclass(frozen=True)
class ExecResult:
    code: int
    stdout: str
    stderr: str


class Docker:
    """Bounded Docker SDK calls; every failure becomes a `BenchError` naming the step."""

    def __init__(self) -> None:
        self._clients: dict[int, DockerClient] = {}

    def client(self, timeout: float = 60) -> DockerClient:
        seconds = max(1, int(timeout))
        if seconds not in self._clients:
            self._clients[seconds] = docker.from_env(timeout=seconds)
        return self._clients[seconds]

    def container(self, name: str) -> Container:
        try:
            return self.client().containers.get(name)
        except (docker.errors.DockerException, OSError) as exc:
            raise BenchError(f"container {name}: {exc}") from exc

    def running(self, name: str) -> bool:
        try:
            return bool(self.container(name).attrs["State"]["Running"])
        except BenchError:
            return False

    def image_id(self, name: str) -> str:
        return str(self.container(name).attrs["Image"])

    def env(self, name: str, key: str) -> str | None:
        # The env also holds DSNs with passwords: pick one key and never log the rest.
        for item in self.container(name).attrs["Config"]["Env"] or []:
            k, _, v = str(item).partition("=")
            if k == key:
                return v
        return None

    def environment(self, name: str) -> dict[str, str]:
        """A container's whole env, to start a twin of it; it holds secrets, so never log it."""
        items = self.container(name).attrs["Config"]["Env"] or []
        return dict(str(item).partition("=")[::2] for item in items)

    def pids(self, name: str) -> list[int]:
        """Host PIDs of a container's processes (uvicorn and its workers)."""
        try:
            top = self.container(name).top(ps_args="-eo pid")
        except (BenchError, docker.errors.DockerException, OSError):
            return []
        return [int(row[0]) for row in top.get("Processes") or [] if str(row[0]).isdigit()]

    def running_names(self) -> list[str]:
        return [str(c.name) for c in self.client(30).containers.list()]

    def exec(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        timeout: float,
        environment: Mapping[str, str] | None = None,
        workdir: str | None = None,
        check: bool = True,
    ) -> ExecResult:
        """`docker exec` with separate stdout and stderr; secrets go in `environment` only."""
        what = f"{' '.join(cmd[:3])} ... in {name}"
        try:
            container = self.client(timeout).containers.get(name)
            result = container.exec_run(
                list(cmd), environment=dict(environment or {}), workdir=workdir, demux=True
            )
        except (docker.errors.DockerException, OSError) as exc:
            # OSError covers the socket timeout (requests' errors derive from it).
            raise BenchError(f"{what} failed or timed out after {timeout:.0f}s: {exc}") from exc
        # demux=True gives (stdout, stderr), each bytes or None.
        out, err = result.output if isinstance(result.output, tuple) else (None, None)
        done = ExecResult(
            int(result.exit_code or 0),
            out.decode(errors="replace") if isinstance(out, bytes) else "",
            err.decode(errors="replace") if isinstance(err, bytes) else "",
        )
        if check and done.code != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise BenchError(f"{what} exited {done.code}: {tail}")
        return done

    def tool_version(self, name: str, cmd: Sequence[str]) -> str | None:
        try:
            result = self.exec(name, cmd, timeout=30, check=False)
        except BenchError:
            return None
        lines = (result.stdout or result.stderr).strip().splitlines()
        return lines[0].strip() if lines else None

    def start_helper(
        self,
        name: str,
        image: str,
        *,
        entrypoint: str | None,
        command: Sequence[str] | None,
        label: str,
        network: str | None = None,
        ports: Mapping[str, tuple[str, int]] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """A detached, auto-removed helper labelled `pgha.bench=<label>` and no healthcheck.

        `entrypoint` and `command` None keep the image's own (a twin of an API instance)."""
        self.remove(name)  # leftover of a killed run
        try:
            self.client(120).containers.run(
                image,
                None if command is None else list(command),
                entrypoint=None if entrypoint is None else [entrypoint],
                name=name,
                labels={"pgha.bench": label},
                healthcheck={"test": ["NONE"]},
                network=network,
                ports=dict(ports or {}),
                environment=dict(environment or {}),
                detach=True,
                auto_remove=True,
            )
        except (docker.errors.DockerException, OSError) as exc:
            raise BenchError(f"starting helper {name}: {exc}") from exc

    def start_http_helper(
        self,
        name: str,
        image: str,
        *,
        label: str,
        environment: Mapping[str, str],
        network: str | None = None,
        entrypoint: str | None = None,
        command: Sequence[str] | None = None,
        health_seconds: float | None = 60,
    ) -> str:
        """`start_helper` with the container's port 8000 on a free loopback port; returns
        its base URL once ``/health`` answers 200 (not waited for if `health_seconds` is
        None). Every bench-only HTTP server (anchors, twins, HAProxy clones) starts here."""
        port = free_port()
        self.start_helper(
            name,
            image,
            entrypoint=entrypoint,
            command=command,
            label=label,
            network=network,
            ports={"8000/tcp": ("127.0.0.1", port)},
            environment=environment,
        )
        url = f"http://127.0.0.1:{port}"
        if health_seconds is not None:
            wait_http_ok(f"{url}/health", health_seconds)
        return url

    def remove(self, name: str) -> None:
        """Force-removes a container if it exists (what `docker rm -f` did; errors ignored)."""
        try:
            self.client(60).containers.get(name).remove(force=True)
        except (docker.errors.DockerException, OSError):
            pass


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of live processes, from /proc (the bench runs on the host)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state is field 3
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    return total / os.sysconf("SC_CLK_TCK")
