"""`make bench-multihost`: host-failure RTO over three hosts, next to the single-host kill RTO.

What it starts, one after the other (never two stacks at once):
1. the multi-host test bed, removed and started afresh (`scripts/hosts.sh`), so the first
   `pulumi up` is cold: every host builds its images from the base image (`--warm`
   keeps running hosts and their image cache);
2. a stack spread over it (`pgha_testkit.multihost`: pg-N and etcd-N on host N+1, HAProxy,
   Redis and the API on host 1, synchronous mode), timed from `pulumi up` to its end,
   then `--kills` host failures (the leader's whole DinD host killed under two writers,
   then started again and rejoined), then destroyed;
3. unless `--no-single-host`, a single-host 3-node patroni stack with synchronous mode,
   where the leader's container is killed `--kills` times under the same load.
Both RTOs are "failure -> first acknowledged write sent after it", measured by the same
function (`multihost.failure_under_load`), so they compare. Writes the API acknowledged
and later lost are counted too. Report: bench/results/multihost-<time>.{json,md}.
Figures, never assertions. The test bed stays up; `make hosts-down` removes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from typing import Any

from bench.common import RESULTS_DIR, log, utc_now
from pgha_testkit import hosts, multihost, patroni
from pgha_testkit.deployment import Deployment


def _multihost(kills: int, warm: bool) -> dict[str, Any]:
    if not warm:
        # Fresh hosts: no image cache on them, so the up below is a cold one.
        subprocess.run([str(hosts.SCRIPT), "down", "3"], check=True)
    bed = hosts.bring_up(3)
    deployed = multihost.throwaway(bed)
    rtos, lost, up_s = [], 0, 0.0
    try:
        up_s = multihost.deploy(deployed, bed)
        log(f"pulumi up over 3 hosts ({'warm' if warm else 'cold'}): {up_s:.0f} s")
        for i in range(kills):
            failure = multihost.host_failure(deployed, bed, f"bench-host-{i}-{time.time_ns()}")
            rtos.append(round(failure.rto_s, 2))
            lost += failure.ledger.lost
            log(f"host failure {i + 1}: {failure.victim} RTO {failure.rto_s:.2f} s")
            hosts.start(next(h for h in bed if h.name == failure.victim))
            patroni.wait_whole(deployed, timeout=180)
    finally:
        for host in bed:
            hosts.start(host)
        left = deployed.teardown()
    return {"up_s": round(up_s, 1), "warm": warm, "rtos_s": rtos, "lost": lost, "left": left}


def _single_host(kills: int) -> dict[str, Any]:
    deployed = Deployment.throwaway(list(multihost.NODES))
    rtos, lost = [], 0
    try:
        deployed.up(failoverMode="patroni", synchronous="true")
        for i in range(kills):
            old = patroni.wait_whole(deployed)
            kill = deployed.container(old).kill
            failure = multihost.failure_under_load(deployed, old, old, kill, f"bench-1h-{i}")
            rtos.append(round(failure.rto_s, 2))
            lost += failure.ledger.lost
            log(f"container kill {i + 1}: RTO {failure.rto_s:.2f} s")
            deployed.container(old).start()
            patroni.wait_whole(deployed)
    finally:
        left = deployed.teardown()
    return {"rtos_s": rtos, "lost": lost, "left": left}


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "n/a"


def report(result: dict[str, Any]) -> str:
    spread, single = result["multihost"], result.get("single_host")
    lines = [
        f"# Multi-host placement: host failure vs. container kill ({result['at']})",
        "",
        "| what | runs | each (s) | median | lost acknowledged writes |",
        "|---|---|---|---|---|",
        f"| leader's host killed (3 DinD hosts) | {len(spread['rtos_s'])} | "
        f"{', '.join(map(str, spread['rtos_s']))} | {_median(spread['rtos_s'])} "
        f"| {spread['lost']} |",
    ]
    if single:
        lines.append(
            f"| leader's container killed (one host) | {len(single['rtos_s'])} | "
            f"{', '.join(map(str, single['rtos_s']))} | {_median(single['rtos_s'])} "
            f"| {single['lost']} |"
        )
    kind = "Warm `pulumi up` (images cached on the hosts)" if spread["warm"] else "Cold `pulumi up`"
    lines += ["", f"{kind} over 3 hosts: {spread['up_s']} s.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--no-single-host", action="store_true")
    parser.add_argument(
        "--warm", action="store_true", help="keep the running hosts (and their image cache)"
    )
    args = parser.parse_args()
    at = utc_now().strftime("%Y%m%dT%H%M%SZ")
    result: dict[str, Any] = {"at": at, "multihost": _multihost(args.kills, args.warm)}
    if not args.no_single_host:
        result["single_host"] = _single_host(args.kills)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"multihost-{at}.json").write_text(json.dumps(result, indent=2))
    text = report(result)
    (RESULTS_DIR / f"multihost-{at}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
