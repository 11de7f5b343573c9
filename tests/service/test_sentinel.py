"""Sentinel mode against real Redis processes: a primary, its replica and one Sentinel.

The cache is driven directly (`run_with_cache`), with the grace period off so that each
lookup shows what the epoch check alone decides. Failovers are forced with
`SENTINEL FAILOVER`, so the replica has every key the primary had: exactly the case where
the promoted node holds bodies that only the epoch tells apart.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from app.cache.fence import Fence
from app.cache.sentinel import NotDurable, PrimaryConfirmation, make_sentinel
from app.cache.store import ProductCache
from infra.sentinel_cfg import SENTINEL_CLIENT_RULES, SENTINEL_CLIENT_USER

from .conftest import run_with_cache, settings_for
from .servers import find_redis, free_port, wait_until

PASSWORD = "sentinel-test-pw"
SENTINEL_PASSWORD = "sentinel-cli-pw"
# The API's own, restricted Sentinel user, as infra/sentinel_cfg.py renders it.
CLIENT_PASSWORD = "sentinel-api-pw"


@dataclass
class Pair:
    ports: list[int]
    sentinel: int
    procs: list[subprocess.Popen[bytes]]

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=PASSWORD, socket_timeout=5)

    def ask(self, *args: str) -> object:
        with redis.Redis(port=self.sentinel, password=SENTINEL_PASSWORD) as s:
            return s.execute_command(*args)

    def primary(self) -> int:
        _, port = self.ask("SENTINEL", "get-master-addr-by-name", "pgha")  # type: ignore[misc]
        return int(port)

    def replica(self) -> int:
        return next(p for p in self.ports if p != self.primary())

    def settled(self) -> bool:
        """The primary is one, the other node streams from it, Sentinel knows the replica."""
        with self.node(self.primary()) as p, self.node(self.replica()) as r:
            if p.info("replication")["role"] != "master":
                return False
            if r.info("replication").get("master_link_status") != "up":
                return False
        return bool(self.ask("SENTINEL", "replicas", "pgha"))

    def fail_over(self) -> int:
        old = self.primary()

        def started() -> bool:
            # Right after an earlier failover Sentinel may not rate the replica promotable
            # yet (NOGOODSLAVE, seen on a busy host): ask again until it does.
            self.ask("SENTINEL", "FAILOVER", "pgha")
            return True

        wait_until(started, 30, interval=0.25, what="Sentinel to start a failover")
        wait_until(lambda: self.primary() != old and self.settled(), 60, what="a failover")
        return self.primary()

    @property
    def options(self) -> dict[str, object]:
        return {
            "redis_sentinels": f"127.0.0.1:{self.sentinel}",
            "redis_sentinel_username": SENTINEL_CLIENT_USER,
            "redis_sentinel_password": CLIENT_PASSWORD,
            "cache_epoch_grace_seconds": 0,
            # What these tests check is the epoch, not latency: a generous budget keeps a
            # busy host from turning a fill into a timeout.
            "redis_timeout_seconds": 1.0,
        }


def _redis(port: int, base: Path, *extra: str) -> subprocess.Popen[bytes]:
    exe = find_redis()
    assert exe is not None
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD]
    args += ["--masterauth", PASSWORD, "--save", "", "--appendonly", "no"]
    args += ["--dir", str(base), "--logfile", str(base / f"redis-{port}.log"), *extra]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    base = tmp_path_factory.mktemp("sentinel")
    ports, sentinel = [free_port(), free_port()], free_port()
    procs = [_redis(ports[0], base)]
    procs.append(_redis(ports[1], base, "--replicaof", "127.0.0.1", str(ports[0])))
    conf = base / "sentinel.conf"
    conf.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {base}\nlogfile {base / 'sentinel.log'}\n"
        f"requirepass {SENTINEL_PASSWORD}\nsentinel sentinel-pass {SENTINEL_PASSWORD}\n"
        f"user {SENTINEL_CLIENT_USER} on >{CLIENT_PASSWORD} {SENTINEL_CLIENT_RULES}\n"
        f"sentinel monitor pgha 127.0.0.1 {ports[0]} 1\n"
        f"sentinel auth-pass pgha {PASSWORD}\n"
        "sentinel down-after-milliseconds pgha 1000\nsentinel failover-timeout pgha 3000\n"
    )
    exe = find_redis()
    assert exe is not None
    procs.append(
        subprocess.Popen(
            [exe, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    )
    found = Pair(ports, sentinel, procs)
    try:
        wait_until(found.settled, 60, what="primary, replica and Sentinel")
        yield found
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


URL = f"redis://default:{PASSWORD}@sentinel:6379/0"


async def settle(cache: ProductCache, product_id: int) -> str:
    """Lookups (and recovery rounds) until the cache answers from a primary again."""
    for _ in range(200):
        status = (await cache.lookup(product_id)).status
        if status != "bypass":
            return status
        await cache.recover()
        await asyncio.sleep(0.05)
    raise AssertionError("the cache never came back after the failover")


def test_bodies_carry_the_epoch_of_the_primary_that_stored_them(pair: Pair) -> None:
    async def body(cache: ProductCache) -> None:
        await cache.warm()
        assert await cache.fill(101, 3, b'{"id": 101}')
        hit = await cache.lookup(101)
        assert (hit.status, hit.body, hit.version) == ("hit", b'{"id": 101}', 3)
        with pair.node(pair.primary()) as primary:
            epoch = primary.info("replication")["master_replid"]
            assert primary.get("product:101") == f"3|{epoch}|".encode() + b'{"id": 101}'

    run_with_cache(URL, body, **pair.options)


@pytest.mark.parametrize("guard", [True, False])
def test_a_body_stored_before_a_failover_is_never_served_after_it(pair: Pair, guard: bool) -> None:
    product_id = 200 + guard

    async def body(cache: ProductCache) -> None:
        await cache.warm()
        assert await cache.fill(product_id, 1, b"{}")
        assert (await cache.lookup(product_id)).status == "hit"
        with pair.node(pair.replica()) as replica:
            wait_until(lambda: replica.exists(f"product:{product_id}"), 10, what="replication")
        pair.fail_over()
        # The promoted node holds the very same body; only the epoch tells it apart.
        status = await settle(cache, product_id)
        assert status == ("miss" if guard else "hit")
        # The cache works on the new primary: a fill there is served.
        assert await cache.fill(product_id, 1, b"{}")
        assert (await cache.lookup(product_id)).status == "hit"

    run_with_cache(URL, body, cache_failover_guard=guard, **pair.options)


def test_fences_and_fills_follow_the_new_primary(pair: Pair) -> None:
    async def body(cache: ProductCache) -> None:
        await cache.warm()
        pair.fail_over()
        await settle(cache, 300)
        assert await cache.record_write(300, Fence.for_write(5))
        assert not await cache.fill(300, 4, b"{}")
        assert await cache.fill(300, 5, b"{}")
        with pair.node(pair.primary()) as primary:
            assert primary.get("product:300:fence") == b"5"

    run_with_cache(URL, body, **pair.options)


def test_a_reader_that_missed_before_a_failover_cannot_fill_after_it(pair: Pair) -> None:
    async def body(cache: ProductCache) -> None:
        await cache.warm()
        missed = await cache.lookup(400)
        assert missed.status == "miss" and missed.epoch is not None
        # The row this reader holds may predate a fence the old primary acknowledged and
        # lost; the new primary must not take it.
        pair.fail_over()
        await settle(cache, 401)
        assert not await cache.fill(400, 1, b"{}", missed.epoch)
        fresh = await cache.lookup(400)
        assert await cache.fill(400, 1, b"{}", fresh.epoch)

    run_with_cache(URL, body, **pair.options)


def test_a_fence_the_replica_cannot_acknowledge_counts_on_the_sentinels_primary(
    pair: Pair,
) -> None:
    frozen = pair.procs[pair.ports.index(pair.replica())]

    async def body(cache: ProductCache) -> None:
        await cache.warm()
        await settle(cache, 500)
        frozen.send_signal(signal.SIGSTOP)
        try:
            # The replica is frozen (WAIT times out), but the node that took the fence is
            # the one the Sentinel names: when the replica comes back it resyncs from it.
            assert await cache.record_write(500, Fence.for_write(3))
            # Right after, the confirmation stands in for the replica (no WAIT at all).
            assert await cache.record_write(501, Fence.for_write(3))
        finally:
            frozen.send_signal(signal.SIGCONT)
        assert cache.metrics.fences_without_replica._value.get() == 2

    run_with_cache(URL, body, **pair.options)


def test_a_fence_on_a_node_the_sentinels_do_not_call_primary_is_not_durable(pair: Pair) -> None:
    async def body(cache: ProductCache) -> None:
        confirm = PrimaryConfirmation(make_sentinel(settings_for(URL, **pair.options)), "pgha")
        # What a primary replaced while paused looks like once resumed: it runs the fence,
        # its replica never acknowledges, and its run id is not the Sentinels' primary's.
        with pytest.raises(NotDurable):
            await confirm.accept({"run_id": "0" * 40})
        with pair.node(pair.primary()) as primary:
            run_id = primary.info("server")["run_id"]
        await confirm.accept({"run_id": run_id})
        assert confirm.fresh()

    run_with_cache(URL, body, **pair.options)


def test_the_apis_sentinel_user_can_find_the_primary_and_change_nothing(pair: Pair) -> None:
    with redis.Redis(
        port=pair.sentinel, username=SENTINEL_CLIENT_USER, password=CLIENT_PASSWORD
    ) as api:
        _, port = api.execute_command("SENTINEL", "get-master-addr-by-name", "pgha")
        assert int(port) == pair.primary()
        for forbidden in (
            ("SENTINEL", "FAILOVER", "pgha"),
            ("SENTINEL", "SET", "pgha", "quorum", "5"),
            ("SENTINEL", "REMOVE", "pgha"),
            ("SENTINEL", "MONITOR", "evil", "127.0.0.1", "1", "1"),
            ("ACL", "LIST"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                api.execute_command(*forbidden)
    assert pair.primary() == int(port)
