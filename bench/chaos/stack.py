"""The manual campaign's stack: config changes through the Pulumi CLI, and the "whole
again" check every cell waits for.

Config changes go through the CLI, as an operator would make them, with their output in
the run's log; the CLI's own `up` output also names the containers an `up` replaced.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx
from docker import DockerClient

from pgha_testkit.env import ROOT, subprocess_env
from pgha_testkit.nodes import docker_client, not_streaming, role, slot_name
from pgha_testkit.poll import NotYet, WaitTimeout, wait_until
from pgha_testkit.stack import Outputs

WHOLE_TIMEOUT_S = 180.0
PULUMI_TIMEOUT_S = 900.0
# Client timeout of the /ready probe: the load's, so both see a frozen API alike.
PROBE_TIMEOUT_S = 2.0
# A line of `pulumi up` output for a replaced container, e.g. "+- ...:Container api replaced".
REPLACED = re.compile(r"\+-\s+\S+:Container (\S+) replaced")


class Pulumi:
    """`pulumi config set` and `pulumi up` on one stack; every output goes to a log file."""

    def __init__(self, stack: str, log_path: Path) -> None:
        self.stack = stack
        self.log_path = log_path
        # Containers the last `up` replaced: a config change replaces none, so any name here
        # means code changed under the run and rode along (the cell is then not clean).
        self.last_replaced: list[str] = []

    def _run(self, *args: str) -> str:
        proc = subprocess.run(
            ["pulumi", *args, "--stack", self.stack],
            cwd=ROOT,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=PULUMI_TIMEOUT_S,
            check=False,
        )
        with self.log_path.open("a") as out:
            out.write(f"\n$ pulumi {' '.join(args)}\n{proc.stdout}")
        if proc.returncode != 0:
            raise RuntimeError(
                f"pulumi {args[0]} failed (exit {proc.returncode}); see {self.log_path}"
            )
        return proc.stdout

    def up(self, **config: str) -> float:
        """Sets pgha:<key> values and runs `pulumi up`; returns its duration."""
        started = time.monotonic()
        for key, value in config.items():
            self._run("config", "set", f"pgha:{key}", value)
        output = self._run("up", "--yes", "--skip-preview")
        self.last_replaced = sorted(set(REPLACED.findall(output)))
        return time.monotonic() - started


def problems(stack: Outputs, api: httpx.Client, client: DockerClient) -> list[str]:
    """Why the stack is not whole yet; empty when it is.

    "Whole" is functional: Docker's health may still say "starting" for a while after a
    restart (the API's check runs every 10 s), so the checks below ask the services.
    """
    found = []
    for name_of, name in stack.containers.items():
        state = client.containers.get(name).attrs["State"]
        health = (state.get("Health") or {}).get("Status")
        if state["Status"] != "running" or health == "unhealthy":
            found.append(f"{name_of} {state['Status']}/{health}")
    if found:
        return found
    if role(stack.primary_container, client=client) != "primary":
        return [f"{stack.primary} is not primary"]
    for node in stack.replicas:
        if role(stack.containers[node], client=client) != "replica":
            return [f"{node} is not a replica"]
    missing = not_streaming(stack.primary_container, stack.replicas, client=client)
    if missing:
        return [f"not streaming: {sorted(slot_name(n) for n in missing)}"]
    try:
        ready = api.get("/ready")
        # /ready is 200 with Redis down (it only degrades), so each check is read.
        checks = ready.json().get("checks", {}) if ready.status_code == 200 else {}
    except (httpx.HTTPError, ValueError) as exc:
        return [f"api: {type(exc).__name__}"]
    down = sorted(k for k, v in checks.items() if not v.get("ok"))
    if ready.status_code != 200 or down:
        return [f"api not ready: {down or ready.status_code}"]
    return []


def wait_whole(
    stack: Outputs, timeout: float = WHOLE_TIMEOUT_S, client: DockerClient | None = None
) -> float:
    """Blocks until the stack is whole; returns how long that took."""
    docker_api = client or docker_client()
    with httpx.Client(base_url=stack.api_url, timeout=PROBE_TIMEOUT_S) as api:

        def whole() -> bool:
            found = problems(stack, api, docker_api)
            if found:
                raise NotYet(str(found))
            return True

        try:
            return wait_until(whole, timeout, "the stack to be whole")
        except WaitTimeout as exc:
            raise RuntimeError(f"stack not whole after {timeout:.0f}s: {exc}") from exc
