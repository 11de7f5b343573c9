"""No stale read after a write: version fences against a lagging replica and a racing cache."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import redis
import redis.asyncio as aioredis

from .conftest import Faults, Stack, make_product
from .servers import PgCluster

WRITES = 40
READERS_PER_INSTANCE = 2


def replica_version(cluster: PgCluster, product_id: int) -> int | None:
    rows = cluster.replica.sql("SELECT version FROM products WHERE id = %s", (product_id,), "pgha")
    return rows[0][0] if rows else None


async def race(
    urls: list[str], redis_url: str, product_id: int
) -> tuple[list[tuple[float, int]], list[tuple[float, int, str, str]], list[tuple[float, int]]]:
    """Writers PUT increasing versions while readers GET; returns every observation."""
    puts: list[tuple[float, int]] = []  # (time the PUT returned, committed version)
    reads: list[tuple[float, int, str, str]] = []  # (time the GET started, version, cache, src)
    cached: list[tuple[float, int]] = []  # (time the sample started, cached version)
    done = asyncio.Event()
    path = f"/products/{product_id}"

    async with (
        httpx.AsyncClient(base_url=urls[0], timeout=10) as first,
        httpx.AsyncClient(base_url=urls[1], timeout=10) as second,
    ):
        clients = [first, second]

        async def writer() -> None:
            try:
                for i in range(WRITES):
                    body = {"name": f"race-{i}", "price": f"{i}.00", "stock": i}
                    response = await clients[i % 2].put(path, json=body)
                    assert response.status_code == 200, response.text
                    puts.append((time.monotonic(), response.json()["version"]))
                    await asyncio.sleep(0.005)
            finally:
                done.set()

        async def reader(client: httpx.AsyncClient) -> None:
            while not done.is_set():
                started = time.monotonic()
                response = await client.get(path)
                assert response.status_code == 200, response.text
                reads.append(
                    (
                        started,
                        response.json()["version"],
                        response.headers["x-cache"],
                        response.headers["x-read-source"],
                    )
                )

        async def sampler() -> None:
            rds = aioredis.Redis.from_url(redis_url)
            try:
                while not done.is_set():
                    started = time.monotonic()
                    raw = await rds.get(f"product:{product_id}")
                    if raw is not None:
                        cached.append((started, int(raw.split(b"|", 1)[0])))
                    await asyncio.sleep(0.001)
            finally:
                await rds.aclose()

        await asyncio.gather(
            writer(),
            sampler(),
            *(reader(c) for c in clients for _ in range(READERS_PER_INSTANCE)),
        )
    return puts, reads, cached


def newest_finished_before(puts: list[tuple[float, int]], moment: float) -> int:
    return max((version for done, version in puts if done < moment), default=0)


def test_reads_never_go_back_in_time_while_the_replica_lags(
    stack: Stack,
    api: Any,
    api_fallback: Any,
    client: httpx.Client,
    rds: redis.Redis,
) -> None:
    product = make_product(client)
    pid = product["id"]
    stack.cluster.wait_caught_up()
    warm = client.get(f"/products/{pid}")
    assert (warm.headers["x-cache"], warm.headers["x-read-source"]) == ("MISS", "replica")
    assert client.get(f"/products/{pid}").headers["x-cache"] == "HIT"

    stack.cluster.pause_replay()
    try:
        puts, reads, cached = asyncio.run(race([api.url, api_fallback.url], stack.redis.url, pid))
        # The replica really was stale the whole time: every fresh read had to avoid it.
        assert replica_version(stack.cluster, pid) == 1
    finally:
        stack.cluster.resume_replay()

    final = puts[-1][1]
    assert final == WRITES + 1
    stale_reads = [
        (started, version, newest_finished_before(puts, started))
        for started, version, _, _ in reads
        if version < newest_finished_before(puts, started)
    ]
    assert not stale_reads, f"reads older than an already finished PUT: {stale_reads[:5]}"
    stale_cache = [
        (started, version)
        for started, version in cached
        if version < newest_finished_before(puts, started)
    ]
    assert not stale_cache, f"cache held versions older than a finished PUT: {stale_cache[:5]}"

    # The race exercised both guarded paths, so the assertions above were not vacuous.
    sources = {(cache, source) for _, _, cache, source in reads}
    assert ("MISS", "primary") in sources
    assert ("HIT", "cache") in sources
    assert len(reads) > WRITES

    assert rds.get(f"product:{pid}:fence") == str(final).encode()
    cached_now = rds.get(f"product:{pid}")
    assert cached_now is None or cached_now.startswith(f"{final}|".encode())
    assert client.get(f"/products/{pid}").json()["version"] == final

    # Once the replica has caught up the fence no longer diverts reads to the primary.
    stack.cluster.wait_caught_up()
    rds.delete(f"product:{pid}")
    after = client.get(f"/products/{pid}")
    assert after.json()["version"] == final
    assert after.headers["x-read-source"] == "replica"


def test_create_is_readable_before_the_replica_has_it(
    client: httpx.Client, replay_paused: PgCluster
) -> None:
    product = make_product(client, name="fresh")
    read = client.get(f"/products/{product['id']}")
    assert read.status_code == 200
    assert read.json() == product
    assert read.headers["x-read-source"] == "primary"
    assert replica_version(replay_paused, product["id"]) is None


def test_delete_is_not_undone_by_a_lagging_replica(
    client: httpx.Client, fallback_client: httpx.Client, stack: Stack
) -> None:
    product = make_product(client, name="doomed")
    stack.cluster.wait_caught_up()
    assert client.get(f"/products/{product['id']}").status_code == 200
    stack.cluster.pause_replay()
    try:
        assert client.delete(f"/products/{product['id']}").status_code == 204
        assert replica_version(stack.cluster, product["id"]) == 1
        for c in (client, fallback_client):  # the fence is shared by every instance
            gone = c.get(f"/products/{product['id']}")
            assert gone.status_code == 404
            assert gone.headers["x-read-source"] == "primary"
    finally:
        stack.cluster.resume_replay()


def test_without_redis_an_instance_still_reads_its_own_writes(
    client: httpx.Client, stack: Stack, faults: Faults
) -> None:
    product = make_product(client, name="offline")
    stack.cluster.wait_caught_up()
    stack.cluster.pause_replay()
    faults.stop_redis()
    updated = client.put(
        f"/products/{product['id']}", json={"name": "offline v2", "price": "2", "stock": 2}
    )
    assert updated.status_code == 200
    read = client.get(f"/products/{product['id']}")
    assert read.headers["x-cache"] == "BYPASS"
    assert read.json()["version"] == 2
    assert read.headers["x-read-source"] == "primary"
