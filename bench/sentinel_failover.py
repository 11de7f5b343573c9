"""Cache failover time in cacheMode sentinel: ``python -m bench.sentinel_failover [--runs 5]``.

Deploys a throwaway sentinel-mode stack (pgha_testkit), then, per run: caches a product,
`docker kill`s the Redis primary and GETs the product every 100 ms until it is a HIT
again; every answer must be a 200. The killed node is started again and the next run waits
until it streams from the new primary. Prints and saves (bench/results/) each run's seconds
from kill to the first HIT and their median; the stack is destroyed at the end. Figures,
never assertions: the goal (issue 13) is within `sentinelDownAfterMs` + 5 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from pgha_testkit import sentinel
from pgha_testkit.deployment import Deployment
from pgha_testkit.env import ROOT
from pgha_testkit.poll import wait_until


def one_run(deployment: Deployment, n: int) -> dict[str, object]:
    old = sentinel.wait_whole(deployment)
    with deployment.client() as http:
        pid = deployment.write(http, f"failover bench {n}")
        wait_until(lambda: http.get(f"/products/{pid}").headers["X-Cache"] == "HIT", 30, "hit")
        statuses: dict[str, int] = {}
        killed = time.monotonic()
        deployment.container(old).kill()
        while True:
            res = http.get(f"/products/{pid}")
            key = f"{res.status_code} {res.headers.get('X-Cache', '')}"
            statuses[key] = statuses.get(key, 0) + 1
            if res.status_code == 200 and res.headers.get("X-Cache") == "HIT":
                break
            if time.monotonic() - killed > 120:
                raise RuntimeError("no cache hit within 120 s of the kill")
            time.sleep(0.1)
        took = time.monotonic() - killed
    deployment.container(old).start()
    sentinel.wait_whole(deployment)
    return {"killed": old, "hits_after_s": round(took, 2), "answers": statuses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    deployment = Deployment.throwaway(["pg-0", "pg-1"])
    runs: list[dict[str, object]] = []
    try:
        deployment.up(cacheMode="sentinel")
        deployment.wait_streaming()
        sentinel.wait_whole(deployment)
        for n in range(args.runs):
            runs.append(one_run(deployment, n))
            print(json.dumps(runs[-1]), flush=True)
    finally:
        left = deployment.teardown()
        print(f"teardown; left over: {left}")
    seconds = [float(str(r["hits_after_s"])) for r in runs]
    report = {"runs": runs, "median_hits_after_s": statistics.median(seconds)}
    out = ROOT / "bench" / "results" / f"sentinel-failover-{time.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"median seconds from kill to the first HIT: {report['median_hits_after_s']} ({out})")


if __name__ == "__main__":
    main()
