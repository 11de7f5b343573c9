"""`MajorVersionGuard`: refuses, at `pulumi preview`, a PostgreSQL major the nodes' data is not.

Why: a different major cannot be rolled node by node. PostgreSQL of major N+1 does not
start on a data directory of major N (it needs pg_upgrade or a dump and restore), and a
replica cannot stream from a primary of another major. Rolling such an image through the
cluster would stop the first node and never bring it back. No stack config changes the
major: it is pinned by images/postgres/Dockerfile (`postgresql-15`, and PG_BIN_DIR in
infra/patroni_cfg.py); `pgha:baseImage` cannot move it, since the package name is pinned.
So the guard catches a checkout whose image carries another major than the running nodes.

It reads PG_VERSION from every running node at preview (a dynamic provider's `check`),
and PostgreSQL containers depend on it, so a refused change replaces nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from infra import dockerexec
from infra.patroni_cfg import PGDATA

DOCKERFILE = Path(__file__).resolve().parent.parent / "images" / "postgres" / "Dockerfile"
PG_VERSION_FILE = f"{PGDATA}/PG_VERSION"


def image_major(dockerfile: str) -> str:
    """The PostgreSQL major the node image installs (`postgresql-NN` in its Dockerfile)."""
    found = re.search(r"\bpostgresql-(\d+)\b", dockerfile)
    if not found:
        raise ValueError("images/postgres/Dockerfile installs no postgresql-NN package")
    return found.group(1)


def refusal(wanted: str, running: Mapping[str, str]) -> str:
    """Why the change must not be rolled, or "" when every node's data is of `wanted`."""
    other = {node: major for node, major in sorted(running.items()) if major and major != wanted}
    if not other:
        return ""
    found = ", ".join(f"{n}: {m}" for n, m in other.items())
    return (
        f"the node image is PostgreSQL {wanted}, but the data of {found} is another major."
        " A major upgrade cannot be rolled node by node (a new major does not start on the"
        " old data, and replicas cannot stream across majors); nothing was changed."
        " Upgrade with pg_upgrade or a dump and restore into a new stack"
        " (pgha:restoreFrom restores only the same major)."
    )


def running_majors(containers: Sequence[str], engine: str = "") -> dict[str, str]:
    """Container name -> PG_VERSION of each running node's data (absent: not running)."""
    api = dockerexec.client(engine).api
    found: dict[str, str] = {}
    for container in containers:
        try:
            code, text = dockerexec.run(api, container, ["cat", PG_VERSION_FILE])
        except Exception:  # noqa: BLE001 (a node not created yet or stopped: nothing to compare)
            continue
        if code == 0 and text.strip().isdigit():
            found[container] = text.strip()
    return found


class _GuardProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        why = refusal(str(news["major"]), running_majors(list(news["containers"])))
        return CheckResult(news, [CheckFailure("major", why)] if why else [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="postgres-major", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=olds != news, replaces=[])

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class MajorVersionGuard(Resource, module="pgha", name="MajorVersionGuard"):
    def __init__(
        self,
        resource_name: str,
        containers: Sequence[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"major": image_major(DOCKERFILE.read_text()), "containers": list(containers)}
        super().__init__(_GuardProvider(), resource_name, props, opts)
