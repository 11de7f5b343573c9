"""A PostgreSQL node seen from the host over the Docker SDK: SQL, role, replication state.

Everything runs inside the node's container as `postgres`, so peer auth needs no
password and a node is reachable even when HAProxy or the published ports are down.
Functions take container names (see `Outputs.containers`) and an optional Docker client:
a thread that polls while another one injects faults should bring its own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import docker
import docker.errors
from docker import DockerClient

from infra.outputs import STACK_LABEL

# Streaming replicas, by the application_name each one connects with (its slot name).
STREAMING_SQL = "select application_name from pg_stat_replication where state = 'streaming'"


class SqlError(RuntimeError):
    """psql exited non-zero; the message carries its output."""


@functools.cache
def docker_client(timeout: int = 120) -> DockerClient:
    """One shared client per timeout: a client holds a connection pool, so reuse it."""
    return docker.from_env(timeout=timeout)


def _client(client: DockerClient | None) -> DockerClient:
    return client if client is not None else docker_client()


def exec_as_postgres(
    container: str, cmd: Sequence[str], *, client: DockerClient | None = None
) -> tuple[int, str]:
    """Exit code and combined output of a command run as `postgres` in the container."""
    result = _client(client).containers.get(container).exec_run(list(cmd), user="postgres")
    # Not streamed (no stream=True), so the output is one bytes object, or None.
    output = result.output if isinstance(result.output, bytes) else b""
    code = -1 if result.exit_code is None else int(result.exit_code)
    return code, output.decode(errors="replace").strip()


def sql(container: str, query: str, *, db: str = "pgha", client: DockerClient | None = None) -> str:
    """Runs SQL as the local superuser; returns unaligned tuples-only output (`a|b` rows)."""
    code, text = exec_as_postgres(
        container,
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", query],
        client=client,
    )
    if code != 0:
        raise SqlError(f"psql in {container} failed: {text}")
    return text


def role(container: str, *, client: DockerClient | None = None) -> str:
    """`primary`, `replica` or `down` (stopped, paused, gone, or not answering)."""
    try:
        code, text = exec_as_postgres(container, ["pgha-ctl", "role"], client=client)
    except docker.errors.APIError:
        # Exec into a stopped or paused container is refused (409), a removed one is 404.
        return "down"
    return text if code == 0 else "down"


def slot_name(node: str) -> str:
    """The replication slot and application_name of a node (`pg-1` -> `pg_1`).

    Mirrors `slot_name` in images/postgres/pgha-lib.sh: slot names allow no `-`.
    """
    return node.replace("-", "_")


def streaming_replicas(primary_container: str, *, client: DockerClient | None = None) -> set[str]:
    """Application names of the replicas streaming from this primary right now."""
    return set(sql(primary_container, STREAMING_SQL, db="postgres", client=client).split())


def not_streaming(
    primary_container: str, replicas: Iterable[str], *, client: DockerClient | None = None
) -> list[str]:
    """Replica nodes that do not stream from the primary; empty when all of them do."""
    streaming = streaming_replicas(primary_container, client=client)
    return sorted(node for node in replicas if slot_name(node) not in streaming)


def streaming(
    primary_container: str, replicas: Iterable[str], *, client: DockerClient | None = None
) -> bool:
    """Every given replica streams from the primary (extra streaming nodes are fine)."""
    return not not_streaming(primary_container, replicas, client=client)


def leftovers(prefix: str, *, client: DockerClient | None = None) -> dict[str, list[str]]:
    """Docker objects still carrying the stack's label; all lists empty once it is gone."""
    api = _client(client)
    selector: dict[str, str | list[str] | bool] = {"label": f"{STACK_LABEL}={prefix}"}
    return {
        "containers": [str(c.name) for c in api.containers.list(all=True, filters=selector)],
        "networks": [str(n.name) for n in api.networks.list(filters=selector)],
        "volumes": [str(v.name) for v in api.volumes.list(filters=selector)],
    }
