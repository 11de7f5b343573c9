"""Session fixtures: real PostgreSQL primary + replica, Redis, and API processes."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.cache.client import make_client
from app.cache.store import ProductCache
from app.config import Settings
from app.metrics import Metrics

from .servers import (
    ApiProcess,
    PgCluster,
    RedisNode,
    missing_servers,
    wait_until,
)

SKIP_REASON = missing_servers()
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SKIP_REASON is None:
        return
    marker = pytest.mark.skip(reason=f"service tests need real servers: {SKIP_REASON}")
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(marker)


@dataclass
class Stack:
    base: Path
    cluster: PgCluster
    redis: RedisNode
    apis: dict[str, ApiProcess] = field(default_factory=dict)

    def api_env(self, **overrides: str) -> dict[str, str]:
        env = {
            "PGHA_WRITE_DSN": self.cluster.primary.dsn(),
            "PGHA_READ_DSN": self.cluster.replica.dsn(),
            "PGHA_REDIS_URL": self.redis.url,
            "PGHA_CACHE_TTL_SECONDS": "60",
            # Short breaker so recovery tests do not sit out the 3 s production default.
            "PGHA_REDIS_BREAKER_SECONDS": "1",
            "PGHA_LOG_LEVEL": "INFO",
        }
        env.update(overrides)
        return env

    def api(self, name: str, **overrides: str) -> ApiProcess:
        """A named API instance, started on first use and kept for the session."""
        if name not in self.apis:
            proc = ApiProcess(name, self.base, self.api_env(**overrides))
            proc.start()
            # Healthy is not enough: until its first drain of the fence log an instance
            # serves no hit, and tests expect MISS then HIT from the first request.
            wait_until(lambda: api_fully_ready(proc), 30, 0.05, f"api {name} ready")
            self.apis[name] = proc
        return self.apis[name]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    # Not tmp_path_factory: its 0700 root-owned parents would lock out the postgres user.
    base = Path(tempfile.mkdtemp(prefix="pgha-service-tests-"))
    base.chmod(0o755)
    cluster = PgCluster(base)
    redis_node = RedisNode(base)
    stack = Stack(base, cluster, redis_node)
    try:
        cluster.create()
        redis_node.start()
        stack.api("main")
        yield stack
    finally:
        for proc in stack.apis.values():
            proc.stop()
        redis_node.stop()
        cluster.destroy()
        if os.environ.get("PGHA_KEEP_TEST_DIR"):
            print(f"\nservice test data kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def api(stack: Stack) -> ApiProcess:
    return stack.api("main")


@pytest.fixture(scope="session")
def api_fallback(stack: Stack) -> ApiProcess:
    return stack.api("fallback", PGHA_READ_FALLBACK="primary")


@pytest.fixture(scope="session")
def client(api: ApiProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def fallback_client(api_fallback: ApiProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_fallback.url, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def rds(stack: Stack) -> Iterator[redis.Redis]:
    """Direct Redis access, to inspect what the API cached and fenced."""
    with stack.redis.client() as c:
        yield c


@pytest.fixture
def cached_version(rds: redis.Redis) -> Callable[[int], int | None]:
    def read(product_id: int) -> int | None:
        raw = rds.get(f"product:{product_id}")
        return None if raw is None else int(raw.split(b"|", 1)[0])

    return read


def make_product(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "widget", "description": "a test widget", "price": "9.99", "stock": 3}
    body.update(fields)
    response = client.post("/products", json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def product(client: httpx.Client) -> dict[str, Any]:
    return make_product(client)


def api_fully_ready(api: ApiProcess) -> bool:
    r = httpx.get(f"{api.url}/ready", timeout=5)
    if r.status_code != 200:
        return False
    redis_state = r.json()["checks"]["redis"]
    return (
        redis_state["ok"]
        and not redis_state["breaker_open"]
        and redis_state["pending_invalidations"] == 0
        and redis_state["lease"]
        and r.json()["checks"]["read"].get("server") == "replica"
    )


class Faults:
    """Stops and starts servers; teardown restores everything and waits for recovery."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.cluster = stack.cluster

    def stop_redis(self) -> None:
        self.stack.redis.stop()

    def start_redis(self) -> None:
        self.stack.redis.start()

    def stop_replica(self) -> None:
        self.cluster.replica.stop("fast")

    def start_replica(self) -> None:
        self.cluster.replica.start()

    def stop_primary(self) -> None:
        self.cluster.primary.stop("fast")

    def start_primary(self) -> None:
        self.cluster.primary.start()

    def restore(self) -> None:
        if not self.cluster.primary.is_running():
            self.start_primary()
        if not self.cluster.replica.is_running():
            self.start_replica()
        if not self.stack.redis.is_running():
            self.start_redis()
        if self.cluster.replica.sql("SELECT pg_is_wal_replay_paused()")[0][0]:
            self.cluster.resume_replay()
        self.cluster.wait_streaming()
        for proc in self.stack.apis.values():
            wait_until(lambda p=proc: api_fully_ready(p), 30, 0.1, f"api {proc.name} ready")


@pytest.fixture
def faults(stack: Stack) -> Iterator[Faults]:
    f = Faults(stack)
    try:
        yield f
    finally:
        f.restore()


@pytest.fixture
def replay_paused(stack: Stack) -> Iterator[PgCluster]:
    """Freeze the replica's WAL replay: it keeps serving, with increasingly old data."""
    stack.cluster.wait_caught_up()
    stack.cluster.pause_replay()
    try:
        yield stack.cluster
    finally:
        stack.cluster.resume_replay()


# A ProductCache against a Redis URL, for tests that drive the cache directly.
def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "write_dsn": "postgresql://unused@127.0.0.1:1/x",
        "read_dsn": "postgresql://unused@127.0.0.1:1/x",
        "redis_url": url,
        "redis_breaker_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


def run_with_cache(
    url: str, body: Callable[[ProductCache], Awaitable[None]], **overrides: Any
) -> None:
    async def main() -> None:
        settings = settings_for(url, **overrides)
        client = make_client(settings)
        cache = ProductCache(client, settings, Metrics())
        # No database here, so no fence log to drain: the lease is held for the whole test
        # (the lease itself is exercised through real API processes, test_fence_log.py).
        cache.lease.seconds = 3600.0
        cache.lease.renew(time.monotonic())
        try:
            await body(cache)
        finally:
            await cache.aclose()
            await client.aclose()

    asyncio.run(main())


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """A Prometheus sample from the API's /metrics; fails if it is not exported."""
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(f"{name}{{{selector}}}" if labels else name) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, client.get("/metrics").text, re.MULTILINE)
    assert match, f"metric {name}{labels} not exported"
    return float(match.group(1))
