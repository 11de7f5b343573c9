"""The multi-host test bed seen from the tests: its hosts, their engines, host failures.

`scripts/hosts.sh` (make hosts-up) starts N Docker-in-Docker containers, each a Docker
"host" with its own engine (published on a loopback port) and its own address on one
bridge network. This module brings them up through that script (idempotent), turns them
into `pgha:hosts` config, and breaks one the way a machine breaks: the whole container
is killed, so every PostgreSQL node, etcd member or proxy in it vanishes at once.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import docker
from docker import DockerClient

from pgha_testkit.env import ROOT
from pgha_testkit.nodes import docker_client
from pgha_testkit.poll import NotYet, wait_until

SCRIPT = ROOT / "scripts" / "hosts.sh"


@dataclass(frozen=True)
class TestHost:
    """One DinD host: its container on this machine, its engine URL and its address."""

    container: str
    url: str
    address: str

    @property
    def name(self) -> str:
        # pgha-host-2 -> host-2, the name used in pgha:hosts and pgha:placement.
        return self.container.removeprefix("pgha-")


def parse(lines: str) -> list[TestHost]:
    """The hosts of `hosts.sh up`/`env` output: `<container> <url> <address>` per line."""
    hosts = []
    for line in lines.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].startswith("tcp://"):
            hosts.append(TestHost(*parts))
    return hosts


def bring_up(count: int = 3) -> list[TestHost]:
    """Starts (or finds running) `count` hosts; returns them in order."""
    done = subprocess.run(
        [str(SCRIPT), "up", str(count)], check=True, capture_output=True, text=True
    )
    hosts = parse(done.stdout)
    if len(hosts) != count:
        raise RuntimeError(f"hosts.sh up gave {hosts}: {done.stderr[-500:]}")
    return hosts


def hosts_config(hosts: Sequence[TestHost]) -> dict[str, dict[str, str]]:
    """pgha:hosts for these hosts."""
    return {h.name: {"url": h.url, "address": h.address} for h in hosts}


@functools.cache
def engine(url: str) -> DockerClient:
    """One client per host engine (a client holds a connection pool)."""
    return docker.DockerClient(base_url=url, timeout=60)


def engines(urls: Mapping[str, str]) -> dict[str, DockerClient]:
    return {name: engine(url) for name, url in urls.items()}


def kill(host: TestHost) -> None:
    """A host failure: the whole DinD container killed, every container in it with it."""
    docker_client().containers.get(host.container).kill()


def start(host: TestHost, timeout: float = 60) -> None:
    """The host back: its container started, then its engine answering."""
    docker_client().containers.get(host.container).start()

    def answers() -> bool:
        try:
            return bool(docker.DockerClient(base_url=host.url, timeout=3).ping())
        except Exception as exc:  # noqa: BLE001 (not listening yet)
            raise NotYet(str(exc)) from exc

    wait_until(answers, timeout, f"{host.name}'s engine answering")
