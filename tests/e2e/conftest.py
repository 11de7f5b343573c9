"""Deploys one throwaway pgha stack per test session, through the Automation API.

The stack gets a unique name and its own host ports, so it runs beside a dev
stack. Tests get a `Deployment`: the stack's outputs plus helpers to reach the
containers over the Docker API and to run SQL on a node. At the end the stack
is destroyed and removed, and the teardown checks that nothing of it is left.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from pulumi import automation as auto

from infra import outputs as out
from infra.images import CONTEXTS, image_name

ROOT = Path(__file__).resolve().parents[2]
LABEL = out.STACK_LABEL


def _free_port_block(size: int) -> int:
    """A run of `size` free loopback ports, so the test stack never collides with dev."""
    for _ in range(200):
        base = 20000 + secrets.randbelow(2000) * 10
        try:
            for port in range(base, base + size):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port block found")


def pulumi_env() -> dict[str, str]:
    """The same environment `scripts/env.sh` gives a shell, for runs outside make."""
    env = {
        "PULUMI_BACKEND_URL": f"file://{ROOT}/.pulumi-state",
        "PULUMI_CONFIG_PASSPHRASE": "pgha-dev-stack-only",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
    }
    merged = {**env, **{k: v for k, v in os.environ.items() if k in env}}
    merged["PATH"] = f"{ROOT}/.tools/bin:{ROOT}/.venv/bin:{os.environ.get('PATH', '')}"
    (ROOT / ".pulumi-state").mkdir(exist_ok=True)
    return merged


@dataclass
class Deployment:
    stack: auto.Stack
    outputs: dict[str, Any] = field(default_factory=dict)
    docker: docker.DockerClient = field(default_factory=docker.from_env)

    def refresh_outputs(self) -> None:
        self.outputs = {k: v.value for k, v in self.stack.outputs().items()}

    def up(self, **config: str) -> auto.UpResult:
        """Sets stack config (pgha namespace) and runs `pulumi up`."""
        for key, value in config.items():
            self.stack.set_config(f"pgha:{key}", auto.ConfigValue(value=value))
        result = self.stack.up(on_output=_log)
        self.refresh_outputs()
        return result

    @property
    def api(self) -> str:
        return self.outputs[out.API_URL]

    @property
    def primary(self) -> str:
        return self.outputs[out.PRIMARY]

    @property
    def replicas(self) -> list[str]:
        return list(self.outputs[out.REPLICAS])

    def container(self, role: str) -> Any:
        return self.docker.containers.get(self.outputs[out.CONTAINERS][role])

    def sql(self, node: str, query: str, db: str = "pgha") -> str:
        """Runs SQL as the local superuser inside a node (peer auth, no password)."""
        code, output = self.container(node).exec_run(
            ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", query], user="postgres"
        )
        text = output.decode(errors="replace").strip()
        assert code == 0, f"psql on {node} failed: {text}"
        return text

    def role(self, node: str) -> str:
        code, output = self.container(node).exec_run(["pgha-ctl", "role"], user="postgres")
        return output.decode().strip() if code == 0 else "down"

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=timeout)

    def backend_status(self, backend: str) -> dict[str, str]:
        """Server -> status ("UP", "DOWN", "UP 1/2", ...) of one HAProxy backend (stats CSV)."""
        password = self.stack.get_config("pgha:haproxyStatsPassword").value
        res = httpx.get(
            self.outputs[out.HAPROXY_STATS_URL] + ";csv", auth=("admin", password), timeout=3
        )
        res.raise_for_status()
        rows = csv.DictReader(io.StringIO(res.text.lstrip("# ")))
        return {
            r["svname"]: r["status"]
            for r in rows
            if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")
        }


def _log(line: str) -> None:
    sys.stderr.write(line if line.endswith("\n") else line + "\n")


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    """Polls until `check()` is true; fails the test with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 (a dependency may be mid-restart while we poll)
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def record(name: str, value: object) -> None:
    """Appends a measurement to bench/results/e2e-measurements.jsonl (figures, not asserts)."""
    path = ROOT / "bench" / "results" / "e2e-measurements.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nodes": len(os.environ.get("PGHA_TEST_NODES", "pg-0 pg-1").split()),
        "name": name,
        "value": value,
    }
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")
    _log(f"measured {name} = {value}")


def leftovers(client: docker.DockerClient, prefix: str) -> dict[str, list[str]]:
    selector = {"label": f"{LABEL}={prefix}"}
    return {
        "containers": [c.name for c in client.containers.list(all=True, filters=selector)],
        "networks": [n.name for n in client.networks.list(filters=selector)],
        "volumes": [v.name for v in client.volumes.list(filters=selector)],
    }


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    name = f"e2e-{secrets.token_hex(3)}"
    prefix = f"pgha-{name}"
    base = _free_port_block(5)
    stack = auto.create_or_select_stack(
        stack_name=name,
        work_dir=str(ROOT),
        opts=auto.LocalWorkspaceOptions(env_vars=pulumi_env()),
    )
    config = {
        "pgha:apiPort": str(base),
        "pgha:writePort": str(base + 1),
        "pgha:readPort": str(base + 2),
        "pgha:redisPort": str(base + 3),
        "pgha:statsPort": str(base + 4),
        "pgha:nodes": json.dumps(os.environ.get("PGHA_TEST_NODES", "pg-0 pg-1").split()),
    }
    stack.set_all_config({k: auto.ConfigValue(value=v) for k, v in config.items()})
    stack.set_all_config(
        {
            f"pgha:{k}": auto.ConfigValue(value=secrets.token_urlsafe(18), secret=True)
            for k in (
                "postgresPassword",
                "replicationPassword",
                "redisPassword",
                "haproxyStatsPassword",
            )
        }
    )
    deployed = Deployment(stack)
    try:
        stack.up(on_output=_log)
        deployed.refresh_outputs()
        yield deployed
    finally:
        stack.destroy(on_output=_log)
        stack.workspace.remove_stack(name)
        left = leftovers(deployed.docker, prefix)
        # pulumi_docker's Image keeps its local tag on destroy (documented); a
        # throwaway stack's tags go here, while the layers stay as build cache.
        for role in CONTEXTS:
            try:
                deployed.docker.images.remove(image_name(prefix, role), noprune=True)
            except docker.errors.ImageNotFound:
                pass
        assert left == {"containers": [], "networks": [], "volumes": []}, left
