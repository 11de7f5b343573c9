"""A throwaway stack driven through the Automation API: what the e2e suite deploys and breaks.

`Deployment` holds the stack and its raw outputs, and turns the other testkit modules
(`nodes`, `poll`, `stack`) into the few verbs a failover test needs: set config and
`up`, run SQL on a node, ask a node's role, wait until every replica streams, write a
product through the API. `throwaway()` creates one with its own port block and fresh
passwords, so it runs beside a dev stack; `teardown()` destroys it and reports what
Docker still holds of it.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import httpx
from docker import DockerClient
from docker.models.containers import Container
from pulumi import automation as auto

from infra import outputs as out
from infra.images import CONTEXTS, image_name
from pgha_testkit import nodes
from pgha_testkit.env import ROOT, pulumi_env
from pgha_testkit.poll import NotYet, wait_until
from pgha_testkit.ports import free_port_block
from pgha_testkit.stack import NAMESPACE, PORT_KEYS, throwaway_config

MEASUREMENTS = ROOT / "bench" / "results" / "e2e-measurements.jsonl"


def log(line: str) -> None:
    sys.stderr.write(line if line.endswith("\n") else line + "\n")


@dataclass
class Deployment:
    stack: auto.Stack
    outputs: dict[str, Any] = field(default_factory=dict)
    docker: DockerClient = field(default_factory=nodes.docker_client)
    # A stack spread over hosts (pgha:hosts): host name -> its engine's client. Which host
    # a container is on comes from the `placement` output; empty: all on `docker`.
    engines: dict[str, DockerClient] = field(default_factory=dict)
    # The command lines seen on this host during the first `up` (pgha_testkit.argv), if sampled.
    bootstrap_argvs: frozenset[bytes] = frozenset()

    @classmethod
    def throwaway(cls, node_names: Sequence[str]) -> Deployment:
        """A new stack `e2e-<random>` with its own ports and passwords (not deployed yet)."""
        stack = auto.create_or_select_stack(
            stack_name=f"e2e-{secrets.token_hex(3)}",
            work_dir=str(ROOT),
            opts=auto.LocalWorkspaceOptions(env_vars=pulumi_env()),
        )
        stack.set_all_config(throwaway_config(free_port_block(len(PORT_KEYS)), node_names))
        return cls(stack)

    @property
    def prefix(self) -> str:
        return f"pgha-{self.stack.name}"

    def refresh_outputs(self) -> None:
        self.outputs = {k: v.value for k, v in self.stack.outputs().items()}

    def up(self, **config: str) -> auto.UpResult:
        """Sets stack config (pgha namespace) and runs `pulumi up`."""
        for key, value in config.items():
            self.stack.set_config(f"{NAMESPACE}:{key}", auto.ConfigValue(value=value))
        result = self.stack.up(on_output=log)
        self.refresh_outputs()
        return result

    def teardown(self) -> dict[str, list[str]]:
        """Destroys and removes the stack; returns the Docker objects still labelled with it,
        on every engine it used (as `host:name` when it spans hosts).

        pulumi_docker's Image keeps its local tag on destroy (documented), so a throwaway
        stack's tags go here too; the layers stay as build cache.
        """
        self.stack.destroy(on_output=log)
        self.stack.workspace.remove_stack(self.stack.name)
        left: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
        for host, client in (self.engines or {"": self.docker}).items():
            for role in CONTEXTS:
                try:
                    client.images.remove(image_name(self.prefix, role), noprune=True)
                except docker.errors.ImageNotFound:
                    pass
            for kind, names in nodes.leftovers(self.prefix, client=client).items():
                left[kind] += [f"{host}:{n}" if host else n for n in names]
        return left

    def host_of(self, role: str) -> str:
        """The host a container is placed on (a stack spread over hosts only)."""
        return str(self.outputs[out.PLACEMENT][role])

    def client_for(self, role: str) -> DockerClient:
        """The Docker client of the engine that runs `role`'s container."""
        if not self.engines:
            return self.docker
        return self.engines[self.host_of(role)]

    def exec_api(self) -> Any:
        """What `infra.dockerexec.run` takes: the local engine's low-level client, or, for a
        stack spread over hosts, container name -> its engine's client."""
        if not self.engines:
            return self.docker.api
        return {
            str(name): self.client_for(role).api
            for role, name in self.outputs[out.CONTAINERS].items()
        }

    @property
    def api(self) -> str:
        return str(self.outputs[out.API_URL])

    @property
    def api_urls(self) -> list[str]:
        """Every HAProxy's API URL: `api_urls` where several HAProxies serve (pgha:placement),
        else the one `api_url`."""
        return [str(u) for u in self.outputs.get(out.API_URLS) or [self.api]]

    @property
    def primary(self) -> str:
        return str(self.outputs[out.PRIMARY])

    @property
    def replicas(self) -> list[str]:
        return list(self.outputs[out.REPLICAS])

    def container_name(self, role: str) -> str:
        return str(self.outputs[out.CONTAINERS][role])

    def container(self, role: str) -> Container:
        return self.client_for(role).containers.get(self.container_name(role))

    def sql(self, node: str, query: str, db: str = "pgha") -> str:
        """Runs SQL as the local superuser inside a node (peer auth, no password)."""
        return nodes.sql(self.container_name(node), query, db=db, client=self.client_for(node))

    def role(self, node: str) -> str:
        return nodes.role(self.container_name(node), client=self.client_for(node))

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=timeout)

    def wait_streaming(self, timeout: float = 90) -> None:
        """Every non-primary node is a replica streaming from the configured primary."""

        def ok() -> bool:
            not_replica = [n for n in self.replicas if self.role(n) != "replica"]
            if not_replica:
                raise NotYet(f"not a replica yet: {not_replica}")
            behind = nodes.not_streaming(
                self.container_name(self.primary), self.replicas, client=self.docker
            )
            if behind:
                raise NotYet(f"not streaming: {behind}")
            return True

        wait_until(ok, timeout, "every replica streaming from the primary")

    @contextmanager
    def stopped(self, roles: Sequence[str]) -> Iterator[None]:
        """`roles`' containers stopped for the block, started again however it ends."""
        held = [self.container(r) for r in roles]
        for c in held:
            c.stop()
        try:
            yield
        finally:
            for c in held:
                c.start()

    def write(self, http: httpx.Client, name: str, within: float = 30.0) -> int:
        """POSTs a product, retrying 503s for `within` seconds (right after a failover the
        API's write pool may still be reconnecting); returns the new id."""
        deadline = time.monotonic() + within
        while True:
            res = http.post("/products", json={"name": name, "price": "1.00", "stock": 1})
            if res.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        if res.status_code != 201:
            raise AssertionError(f"POST /products answered {res.status_code}: {res.text}")
        return int(res.json()["id"])

    @functools.cached_property
    def stats_password(self) -> str:
        # Read once: reading config runs the CLI on the checkpoint, which races with an `up`
        # that writes it when a sampler thread polls the stats page meanwhile.
        return str(self.stack.get_config(f"{NAMESPACE}:haproxyStatsPassword").value)

    def backend_status(self, backend: str) -> dict[str, str]:
        """Server -> status ("UP", "DOWN", "UP 1/2", ...) of one HAProxy backend (stats CSV)."""
        res = httpx.get(
            self.outputs[out.HAPROXY_STATS_URL] + ";csv",
            auth=("admin", self.stats_password),
            timeout=3,
        )
        res.raise_for_status()
        rows = csv.DictReader(io.StringIO(res.text.lstrip("# ")))
        return {
            r["svname"]: r["status"]
            for r in rows
            if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")
        }


def miss_then_hit(http: httpx.Client, pid: int) -> httpx.Response:
    """Two GETs of a product that is not cached: the first misses, the second is served
    from the cache; returns the second."""
    first = http.get(f"/products/{pid}")
    second = http.get(f"/products/{pid}")
    assert first.status_code == second.status_code == 200
    assert first.headers["X-Cache"] == "MISS"
    assert second.headers["X-Cache"] == "HIT"
    assert second.headers["X-Read-Source"] == "cache"
    return second


def record(name: str, value: object) -> None:
    """Appends a measurement to bench/results/e2e-measurements.jsonl (figures, not asserts)."""
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nodes": len(os.environ.get("PGHA_TEST_NODES", "pg-0 pg-1").split()),
        "name": name,
        "value": value,
    }
    with MEASUREMENTS.open("a") as f:
        f.write(json.dumps(line) + "\n")
    log(f"measured {name} = {value}")
