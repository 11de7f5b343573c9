"""Commands run inside a node container, for the dynamic providers (ClusterRole, PreferredLeader).

Plain module-level functions on purpose: Pulumi pickles a dynamic provider with dill,
which stores functions of an importable module by reference, so the provider process
imports this module (from the installed `infra` package) instead of receiving a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def client() -> Any:
    import docker  # imported lazily: the provider process unpickles the provider modules first

    return docker.from_env(timeout=300)


def run(api: Any, container: str, cmd: Sequence[str]) -> tuple[int, str]:
    """Exit code and stripped output of `cmd`, run as postgres in `container`.

    `api` is a low-level docker APIClient (`client().api`); the caller decides what a
    non-zero exit means.
    """
    ex = api.exec_create(container, list(cmd), user="postgres")
    out = str(api.exec_start(ex["Id"]).decode(errors="replace")).strip()
    code: int = api.exec_inspect(ex["Id"])["ExitCode"]
    return code, out
