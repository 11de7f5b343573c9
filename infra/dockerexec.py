"""Commands run inside a node container, for the dynamic providers (ClusterRole, PreferredLeader).

Plain module-level functions on purpose: Pulumi pickles a dynamic provider with dill,
which stores functions of an importable module by reference, so the provider process
imports this module (from the installed `infra` package) instead of receiving a copy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any


def client(url: str = "") -> Any:
    """A Docker client for the engine at `url` (pgha:hosts), or the local one (DOCKER_HOST).

    tcp:// with TLS takes DOCKER_TLS_VERIFY and DOCKER_CERT_PATH from the environment, as
    the docker CLI does; ssh:// runs the system's ssh client.
    """
    import docker  # imported lazily: the provider process unpickles the provider modules first

    if not url:
        return docker.from_env(timeout=300)
    env = {**os.environ, "DOCKER_HOST": url}
    return docker.from_env(timeout=300, environment=env, use_ssh_client=url.startswith("ssh://"))


def engines(urls: Mapping[str, str], containers: Mapping[str, str]) -> dict[str, Any]:
    """container name -> low-level client of its engine, for `run` across hosts."""
    by_url = {url: client(url).api for url in set(urls.values())}
    return {containers[node]: by_url[url] for node, url in urls.items()}


def run(api: Any, container: str, cmd: Sequence[str]) -> tuple[int, str]:
    """Exit code and stripped output of `cmd`, run as postgres in `container`.

    `api` is a low-level docker APIClient (`client().api`), or, for a stack spread over
    hosts, a mapping from container name to its engine's client (`engines`); the caller
    decides what a non-zero exit means.
    """
    if isinstance(api, Mapping):
        api = api[container]
    ex = api.exec_create(container, list(cmd), user="postgres")
    out = str(api.exec_start(ex["Id"]).decode(errors="replace")).strip()
    code: int = api.exec_inspect(ex["Id"])["ExitCode"]
    return code, out
