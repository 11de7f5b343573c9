"""Cache-aside through Sentinel: MISS then HIT, and a PUT invalidates, on the current primary."""

from __future__ import annotations

from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment, miss_then_hit
from pgha_testkit.poll import wait_until


def test_get_misses_then_hits_and_put_invalidates(deployment: Deployment) -> None:
    primary = sentinel.wait_whole(deployment)
    with deployment.client() as http:
        pid = deployment.write(http, "sentinel cached")
        # Each instance bypasses the cache for its first seconds on a primary (the grace
        # period, app/cache/sentinel.py): wait until both use it.
        wait_until(
            lambda: all(
                http.get(f"/products/{pid}").headers["X-Cache"] != "BYPASS" for _ in range(4)
            ),
            30,
            "every instance using the cache",
        )
        sentinel.ask(deployment, primary, "DEL", f"product:{pid}")
        miss_then_hit(http, pid)
        # The body is tagged with the primary's epoch (its replication id).
        epoch = sentinel.info(deployment, primary)["master_replid"]
        stored = sentinel.ask(deployment, primary, "GET", f"product:{pid}")
        assert stored.startswith(f"1|{epoch}|")
        put = http.put(f"/products/{pid}", json={"name": "sentinel v2", "price": 2, "stock": 1})
        assert put.status_code == 200
        assert sentinel.ask(deployment, primary, "EXISTS", f"product:{pid}") == "0"
        after = http.get(f"/products/{pid}")
    assert after.headers["X-Cache"] == "MISS"
    assert after.json()["name"] == "sentinel v2"
