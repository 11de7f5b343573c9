"""A stack spread over the test bed's hosts, and a host failure, for the tests and the bench.

`throwaway` deploys the issue's layout (pg-N and etcd-N on host N+1, HAProxy, Redis and
the API on host 1), with pgha:primary pg-1 so the leader starts off the API's host, and
synchronous mode on; `two_proxies` adds an HAProxy and API instances on host 2, and
`request_any` is the client that reaches whichever of them answers. `host_failure`
kills the DinD container of the leader's host under two writers and reports what
happened; the callers decide what it means (tests/e2e_multihost asserts,
bench/multihost.py reports).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from pgha_testkit import hosts, patroni
from pgha_testkit.deployment import Deployment, log
from pgha_testkit.ledger import Ledger, LedgerCheck, check
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import NotYet, wait_until

NODES = ("pg-0", "pg-1", "pg-2")


def placement(bed: Sequence[hosts.TestHost]) -> dict[str, str]:
    """pg-N and etcd-N on host N+1; HAProxy, Redis and the API on host 1."""
    spread = {f"pg-{i}": bed[i].name for i in range(3)}
    spread |= {f"etcd-{i}": bed[i].name for i in range(3)}
    return spread | {"haproxy": bed[0].name, "redis": bed[0].name, "api": bed[0].name}


def two_proxies(bed: Sequence[hosts.TestHost]) -> dict[str, str | list[str]]:
    """`placement`, with an HAProxy and API instances on host 1 and on host 2, and Redis on
    host 3: what a user with two API hosts deploys, the cache on neither so that it
    survives the loss of either."""
    both = [bed[0].name, bed[1].name]
    return {**placement(bed), "haproxy": both, "api": both, "redis": bed[2].name}


def request_any(
    urls: Sequence[str], method: str, path: str, connect_s: float = 1.0, **kwargs: Any
) -> httpx.Response:
    """One request to the first of `urls` that takes the connection, as a client given
    several addresses for one name should behave (README, "Two HAProxies"): the next URL
    is tried only when connecting failed, when nothing was sent, so even a POST without
    an Idempotency-Key is never sent twice. A dead host's address refuses nothing, so
    the connect timeout is what bounds the detour."""
    timeout = httpx.Timeout(10.0, connect=connect_s)
    for url in urls[:-1]:
        try:
            return httpx.request(method, url + path, timeout=timeout, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            log(f"{url} did not take the connection; trying the next address")
    return httpx.request(method, urls[-1] + path, timeout=timeout, **kwargs)


def throwaway(bed: Sequence[hosts.TestHost]) -> Deployment:
    """A new stack over `bed` (not deployed yet: call `deploy`)."""
    deployed = Deployment.throwaway(NODES)
    deployed.engines = hosts.engines({h.name: h.url for h in bed})
    return deployed


def deploy(deployed: Deployment, bed: Sequence[hosts.TestHost]) -> float:
    """`pulumi up` of the spread stack, then waits until it is whole; the up's seconds."""
    started = time.monotonic()
    deployed.up(
        failoverMode="patroni",
        primary="pg-1",
        synchronous="true",
        hosts=json.dumps(hosts.hosts_config(bed)),
        placement=json.dumps(placement(bed)),
    )
    took = time.monotonic() - started
    patroni.wait_whole(deployed)
    return took


def lead_off(deployment: Deployment, host: str) -> str:
    """Moves the leader off `host` (the API's host must survive the failure); the leader.

    In synchronous mode Patroni accepts only the synchronous standby as a switchover
    candidate (412 otherwise), so that one is preferred when it is off `host`.
    """
    leader = patroni.wait_whole(deployment)
    if deployment.host_of(leader) != host:
        return leader
    roles = {str(m["name"]): m.get("role") for m in patroni.members(deployment)}
    away = [n for n in patroni.pg_nodes(deployment) if deployment.host_of(n) != host]
    target = next((n for n in away if roles.get(n) == "sync_standby"), away[0])
    status, body = patroni.request(
        deployment, target, "POST", "/switchover", {"leader": leader, "candidate": target}
    )
    if status != 200:
        raise RuntimeError(f"switchover to {target} refused: {status} {body}")
    patroni.wait_leader(deployment, 60, not_=leader)
    return patroni.wait_whole(deployment)


def first_write_sent_after(load: Load, started: float) -> float:
    """Seconds from `started` to the end of the first acknowledged write sent after it."""
    done = [e.end for e in load.of_kind("write") if e.ok and e.start > started]
    if not done:
        raise NotYet("no write acknowledged since the kill")
    return min(done) - started


@dataclass(frozen=True)
class Failure:
    """One leader failure under two writers: where the lock went and what it cost."""

    victim: str
    old_leader: str
    new_leader: str
    # Failure asked for -> end of the first acknowledged write sent once it was done.
    rto_s: float
    ledger: LedgerCheck


def failure_under_load(
    deployment: Deployment, old: str, victim: str, fail: Callable[[], None], tag: str
) -> Failure:
    """Runs `fail` (which takes the leader `old` down) under two writers through the API;
    returns once writes go on on another leader. The ledger is checked on that leader
    while the old one is still down. Used for a host failure here and for the
    single-host container kill in bench/multihost.py, so both RTOs mean the same thing."""
    patroni.wait_sync_standby(deployment)
    ledger = Ledger()
    with Load(deployment.api, tag, LoadSpec(writers=2, readers=0), ledger=ledger) as load:
        wait_until(lambda: len(ledger.acked_ids()) >= 20, 30, "writes before the failure")
        started = time.monotonic()
        fail()
        # Only writes sent once `fail` returned count as "after": on a busy machine the
        # kill takes a while to land, and a write sent meanwhile may still succeed on
        # the old leader (one did, 0.09 s after the kill was asked for).
        failed = time.monotonic()
        log(f"took down {victim}, which held the leader {old}")
        new = patroni.wait_leader(deployment, 60, not_=old)
        wait_until(lambda: first_write_sent_after(load, failed) > 0, 60, "writes resumed")
        rto = failed - started + first_write_sent_after(load, failed)
        acked = len(ledger.acked_ids())
        wait_until(lambda: len(ledger.acked_ids()) >= acked + 20, 30, "writes on the new leader")
    result = check(ledger, deployment.container_name(new), tag, client=deployment.client_for(new))
    return Failure(victim, old, new, rto, result)


def host_failure(deployment: Deployment, bed: Sequence[hosts.TestHost], tag: str) -> Failure:
    """Kills the whole host of the leader (moved off the API's host first); the victim
    stays down: the caller starts it again (`hosts.start`) and checks the rejoin."""
    old = lead_off(deployment, deployment.host_of("haproxy"))
    victim = next(h for h in bed if h.name == deployment.host_of(old))
    return failure_under_load(deployment, old, victim.name, lambda: hosts.kill(victim), tag)
