"""No stale read after an acknowledged write when one instance cannot reach Redis.

One API instance is cut off from Redis (its Redis address is a socket that accepts and
never answers, as a DROP rule or a paused Redis looks from the client), the others are not.
Its writes must be honoured by every other instance's cache, also after it is killed with
the write's fence never having reached Redis from it (app/cache/fencelog.py).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import Faults, Stack, make_product
from .servers import ApiProcess, PgCluster

# Long enough to outlast several drain rounds and a breaker cool-down, far below the TTL.
WATCH_SECONDS = 3.0


@contextlib.contextmanager
def black_hole() -> Iterator[str]:
    """A Redis URL whose server takes connections and never answers a command."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    finally:
        sock.close()


@pytest.fixture
def cut_off(stack: Stack) -> Iterator[ApiProcess]:
    """A second instance on the same databases, which cannot reach Redis."""
    with black_hole() as url:
        proc = ApiProcess("cut-off", stack.base, stack.api_env(PGHA_REDIS_URL=url))
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()


def cached_at(client: httpx.Client, product_id: int, version: int) -> None:
    """Reads until the instance serves `version` from its cache."""
    for _ in range(50):
        got = client.get(f"/products/{product_id}")
        if got.headers["X-Cache"] == "HIT" and got.json()["version"] == version:
            return
        time.sleep(0.05)
    raise AssertionError(f"product {product_id} never cached at version {version}")


def versions_read(client: httpx.Client, product_id: int, seconds: float) -> list[int]:
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = client.get(f"/products/{product_id}")
        assert got.status_code == 200, got.text
        seen.append(got.json()["version"])
        time.sleep(0.05)
    return seen


def cached_then_put_through(client: httpx.Client, writer: ApiProcess) -> int:
    """A product cached at version 1, then PUT to version 2 through `writer`."""
    pid = int(make_product(client)["id"])
    cached_at(client, pid, 1)
    with httpx.Client(base_url=writer.url, timeout=10) as other:
        put = other.put(f"/products/{pid}", json={"name": "v2", "price": 1, "stock": 1})
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 2
    return pid


def test_write_through_an_instance_cut_off_from_redis_is_not_read_stale_elsewhere(
    client: httpx.Client, cut_off: ApiProcess
) -> None:
    pid = cached_then_put_through(client, cut_off)
    assert min(versions_read(client, pid, WATCH_SECONDS)) == 2


def test_an_instance_killed_after_acknowledging_loses_no_fence(
    client: httpx.Client, cut_off: ApiProcess
) -> None:
    pid = cached_then_put_through(client, cut_off)
    assert cut_off.proc is not None
    cut_off.proc.kill()
    cut_off.proc.wait()
    assert min(versions_read(client, pid, WATCH_SECONDS)) == 2


def test_an_instance_cut_off_from_redis_reads_past_a_lagging_replica(
    client: httpx.Client, cut_off: ApiProcess, stack: Stack
) -> None:
    pid = make_product(client)["id"]
    cached_at(client, pid, 1)
    cluster: PgCluster = stack.cluster
    cluster.wait_caught_up()
    cluster.pause_replay()
    try:
        # The replica stays at version 1; the healthy instance's fence goes to Redis only.
        put = client.put(f"/products/{pid}", json={"name": "v2", "price": 1, "stock": 1})
        assert put.status_code == 200, put.text
        with httpx.Client(base_url=cut_off.url, timeout=10) as other:
            got = other.get(f"/products/{pid}")
    finally:
        cluster.resume_replay()
    assert got.status_code == 200, got.text
    assert got.headers["X-Cache"] == "BYPASS"
    assert got.json()["version"] == 2
    assert got.headers["X-Read-Source"] == "primary"


def test_writes_are_accepted_and_read_back_while_redis_is_down_for_everyone(
    client: httpx.Client, faults: Faults
) -> None:
    pid = make_product(client)["id"]
    cached_at(client, pid, 1)
    faults.stop_redis()
    put = client.put(f"/products/{pid}", json={"name": "v2", "price": 1, "stock": 1})
    assert put.status_code == 200, put.text
    got = client.get(f"/products/{pid}")
    assert got.headers["X-Cache"] == "BYPASS"
    assert got.json()["version"] == 2
    faults.start_redis()
    # The logged fence is placed once Redis is back: the old body is never served again.
    assert min(versions_read(client, pid, WATCH_SECONDS)) == 2
