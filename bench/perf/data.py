"""The rows a bench run creates and removes, and the cache warm-up over them.

Every product the run creates carries the run's name prefix, so cleanup deletes exactly
those rows (and their cache keys) and nothing a person or another run wrote.
"""

from __future__ import annotations

import http.client
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from bench.common import BenchError

APPLICATION = "pgha-bench"
SEED_SQL = (
    "INSERT INTO products (name, description, price, stock) "
    "SELECT %s || '-seed-' || g, 'seeded by pgha bench', mod(g, 100000) / 100.0, "
    "mod(g, 1000) FROM generate_series(1, %s) AS g RETURNING id"
)
# UNLINK batch size: one round trip per 500 products (1000 keys) keeps each call short.
UNLINK_BATCH = 500


def seed(write_dsn: str, name_prefix: str, sets: Sequence[tuple[str, int]]) -> dict[str, list[int]]:
    """Inserts each (tag, count) set with one INSERT ... generate_series; tag -> sorted ids."""
    import psycopg  # deferred: only a run needs it, not --help

    ids: dict[str, list[int]] = {}
    with psycopg.connect(
        write_dsn, autocommit=True, connect_timeout=10, application_name=APPLICATION
    ) as conn:
        conn.execute("SET statement_timeout = '120s'")
        for tag, n in sets:
            rows = conn.execute(SEED_SQL, (name_prefix, n)).fetchall()
            ids[tag] = sorted(int(r[0]) for r in rows)
    return ids


def cache_keys(ids: Sequence[int]) -> list[str]:
    """The service's Redis keys of these products: the body and the write fence."""
    return [k for pid in ids for k in (f"product:{pid}", f"product:{pid}:fence")]


def delete_products(write_dsn: str, redis_url: str | None, name_prefix: str) -> int:
    """Deletes the run's products and UNLINKs their cache keys (unless `redis_url` is None);
    returns how many products."""
    import psycopg
    import redis

    with psycopg.connect(
        write_dsn, autocommit=True, connect_timeout=10, application_name=APPLICATION
    ) as conn:
        conn.execute("SET statement_timeout = '120s'")
        rows = conn.execute(
            "DELETE FROM products WHERE starts_with(name, %s) RETURNING id", (name_prefix,)
        ).fetchall()
    ids = [int(r[0]) for r in rows]
    if redis_url is None:
        return len(ids)
    # Drop their cache bodies and fences too, so nothing of the run lingers in Redis.
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        for i in range(0, len(ids), UNLINK_BATCH):
            client.unlink(*cache_keys(ids[i : i + UNLINK_BATCH]))
    finally:
        client.close()
    return len(ids)


def warm_cache(
    api_url: str, ids: Sequence[int], workers: int = 8, seconds: float = 120
) -> Counter[str]:
    """GET every id once (bounded by the id count and a deadline) so the next reads hit."""
    parts = urlsplit(api_url)
    deadline = time.monotonic() + seconds

    def worker(chunk: Sequence[int]) -> Counter[str]:
        counts: Counter[str] = Counter()
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
        try:
            for pid in chunk:
                if time.monotonic() > deadline:
                    counts["deadline"] += 1
                    break
                conn.request("GET", f"/products/{pid}")
                resp = conn.getresponse()
                resp.read()
                counts[f"status_{resp.status}"] += 1
                counts[f"x_cache_{resp.getheader('x-cache', 'none')}"] += 1
        finally:
            conn.close()
        return counts

    with ThreadPoolExecutor(workers) as pool:
        chunks = [ids[i::workers] for i in range(workers)]
        total: Counter[str] = sum(pool.map(worker, chunks), Counter())
    if total["status_200"] != len(ids):
        raise BenchError(f"cache warm-up got {dict(total)} for {len(ids)} ids")
    return total
