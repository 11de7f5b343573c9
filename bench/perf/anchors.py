"""The bench-only containers that the database paths are compared against.

* the database anchor: bench/perf/dbapp.py (bare Starlette + psycopg's pool) in the API image,
  with an API instance's environment, for ``miss_vs_bare_query`` and the write ratios;
* one twin of an API instance for cache hits and misses on its own port, the like-for-like
  side of ``hit_vs_bare_direct`` and ``miss_vs_bare_query_direct`` (the API's own figures
  cross the HTTP frontend and spread over ``apiReplicas`` instances; the anchors do not);
* two twins of an API instance, identical but for the write DSN, one through HAProxy's
  ``primary`` listen and one straight to the primary node, for
  ``api_haproxy_write_overhead``. Both twins are reached on their own published ports, so
  the pair differs in the HAProxy hop and nothing else (not the HTTP frontend, not the
  instance count).

None gets the API's network alias, so HAProxy's HTTP frontend never sends users to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from bench.common import log
from bench.perf.containers import Docker
from pgha_testkit.stack import Outputs


class Bench(Protocol):
    """What starting an anchor needs of the bench (context.Bench has it): the stack, Docker,
    and the list of helper containers removed at the end. A protocol, so this module does
    not import context.py, which starts the anchors."""

    stack: Outputs
    docker: Docker
    helpers: list[str]


DB_APP = Path(__file__).with_name("dbapp.py")


def direct_dsn(dsn: str, host: str, port: int) -> str:
    """``dsn`` with its host and port replaced, credentials, database and options kept."""
    parts = urlsplit(dsn)
    userinfo, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}:{port}"))


def start_twin(
    b: Bench,
    role: str,
    env: dict[str, str],
    *,
    boot: str | None = None,
    source: str | None = None,
) -> str:
    """Starts a container of the API image on the stack's network; returns its base URL.

    With ``boot`` (a python -c program) and ``source``, it serves that source the way
    `Bench.start_bare` does; without, it runs the image's own command: the API itself.
    """
    api = b.stack.container_of("api")
    name = f"{b.stack.prefix}-bench-{role}"
    b.helpers.append(name)
    # The pools open (and the API bootstraps its schema) before /health answers.
    url = b.docker.start_http_helper(
        name,
        b.docker.image_id(api),
        entrypoint="python3" if boot else None,
        command=["-c", boot, source or ""] if boot else None,
        label="anchor",
        network=b.stack.network,
        environment=env,
    )
    log(f"{role} {name} up on {url} with {env.get('PGHA_WORKERS', '1')} worker(s)")
    return url


def start_db_anchor(b: Bench, boot: str) -> tuple[str, str]:
    """(URL, container name) of bench/perf/dbapp.py with an API instance's environment."""
    env = b.docker.environment(b.stack.container_of("api"))
    url = start_twin(b, "bare-db", env, boot=boot, source=DB_APP.read_text())
    return url, f"{b.stack.prefix}-bench-bare-db"


def start_read_twin(b: Bench) -> tuple[str, str]:
    """(URL, container name) of one twin of an API instance for the read runs."""
    env = b.docker.environment(b.stack.container_of("api"))
    return start_twin(b, "api-reader", env), f"{b.stack.prefix}-bench-api-reader"


def start_write_twins(b: Bench) -> dict[str, tuple[str, str]]:
    """{"haproxy" | "direct": (URL, container name)} of the two API twins."""
    env = b.docker.environment(b.stack.container_of("api"))
    direct = {**env, "PGHA_WRITE_DSN": direct_dsn(env["PGHA_WRITE_DSN"], b.stack.primary, 5432)}
    twins = {}
    for target, twin_env in (("haproxy", env), ("direct", direct)):
        role = f"api-{target}"
        twins[target] = (start_twin(b, role, twin_env), f"{b.stack.prefix}-bench-{role}")
    return twins
