"""Cache-aside on the deployed stack: MISS then HIT, TTL ≤ 60 s, a PUT removes the key."""

from __future__ import annotations

import redis

from infra import outputs as out
from pgha_testkit.deployment import Deployment, miss_then_hit


def test_get_misses_then_hits_and_put_invalidates(deployment: Deployment) -> None:
    cache = redis.Redis.from_url(deployment.outputs[out.REDIS_URL])
    with deployment.client() as http:
        pid = http.post("/products", json={"name": "cached", "price": 1, "stock": 1}).json()["id"]
        miss_then_hit(http, pid)
        ttl = cache.ttl(f"product:{pid}")
        assert 0 < ttl <= 60
        put = http.put(f"/products/{pid}", json={"name": "cached v2", "price": 2, "stock": 1})
        assert put.status_code == 200
        assert cache.exists(f"product:{pid}") == 0
        after = http.get(f"/products/{pid}")
    assert after.headers["X-Cache"] == "MISS"
    assert after.json()["name"] == "cached v2"
