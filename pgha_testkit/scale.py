"""One scale cycle of a deployed stack under load: add a node, check it, remove it again.

Shared by the e2e suites of both failover modes (tests/e2e/test_scale.py,
tests/e2e_patroni/test_scale.py) and usable from a drill: writers and readers run through
the API for the whole cycle, every write goes through the ledger, and the ids of every
container are taken before, between and after the two `pulumi up`s, so the caller can
assert that nothing but the added node was created or replaced.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

import psycopg

from infra import outputs as out
from pgha_testkit import nodes
from pgha_testkit.deployment import Deployment, record
from pgha_testkit.ledger import Ledger, LedgerCheck, check, ids_present
from pgha_testkit.load import Load, LoadSpec
from pgha_testkit.poll import NotYet, wait_until
from pgha_testkit.stack import config_value

# The node the cycle adds; any name pgha:nodes accepts that the stack does not use.
EXTRA_NODE = "pg-scale"
# Containers a change of nodes still replaces: the backup repository (pgha:backup), whose
# pgBackRest config lists the nodes in its env. It is on no request path: archiving
# retries until the new one is up, and its volume keeps the repository.
REPLACED_ON_SCALE = frozenset({"backup"})


@dataclass
class ScaleCycle:
    added: str
    # role (as the `containers` output names it) -> container id, before the scale out,
    # after it, and after the scale in.
    before: dict[str, str]
    grown: dict[str, str]
    after: dict[str, str]
    # Wall time of each `pulumi up`, in seconds.
    up_seconds: dict[str, float]
    failed_writes: list[str]
    failed_reads: list[str]
    ledger: LedgerCheck
    # The added node, once it streamed: had every write acknowledged so far, and answered
    # a query sent to HAProxy's read port.
    caught_up: bool
    served_read: bool
    # Replication slots on the primary after the scale in.
    slots_after: list[str] = field(default_factory=list)
    # Seconds from the first `up`: when each up ran, and each failed request (kind, status).
    timeline: dict[str, object] = field(default_factory=dict)

    def changed(self, later: dict[str, str]) -> dict[str, tuple[str, str]]:
        """Containers present before whose id differs (or that are gone) in `later`, but for
        REPLACED_ON_SCALE."""
        return {
            role: (cid, later.get(role, ""))
            for role, cid in self.before.items()
            if later.get(role) != cid and role not in REPLACED_ON_SCALE
        }


def container_ids(deployment: Deployment) -> dict[str, str]:
    """Role -> container id of every container the stack's outputs name."""
    return {
        str(role): str(deployment.docker.containers.get(str(name)).id)
        for role, name in deployment.outputs[out.CONTAINERS].items()
    }


def primary_of(deployment: Deployment, node_names: list[str]) -> str:
    """The node that is a writable primary right now (either failover mode)."""
    for node in node_names:
        try:
            if deployment.sql(node, "select pg_is_in_recovery()", db="postgres") == "f":
                return node
        except Exception:  # noqa: BLE001 (a node that does not answer is not the primary)
            continue
    raise NotYet("no writable primary")


def _streams(deployment: Deployment, primary: str, node: str) -> bool:
    """Whether `node` streams from `primary`: pgha names its walreceiver after the slot
    (`pg_1`), Patroni after the member (`pg-1`)."""
    names = nodes.streaming_replicas(deployment.container_name(primary), client=deployment.docker)
    return node in names or nodes.slot_name(node) in names


def _served_by(deployment: Deployment, node: str, tries: int = 40) -> bool:
    """Whether HAProxy's read port hands a connection to `node` (round robin)."""
    address = deployment.container(node).attrs["NetworkSettings"]["Networks"]
    ips = {str(n["IPAddress"]) for n in address.values()}
    for _ in range(tries):
        with psycopg.connect(deployment.outputs[out.READ_DSN], connect_timeout=5) as conn:
            row = conn.execute("select host(inet_server_addr())").fetchone()
        if row and str(row[0]) in ips:
            return True
    return False


def run_cycle(deployment: Deployment, spec: LoadSpec | None = None) -> ScaleCycle:
    """Scales the stack out by `EXTRA_NODE` and back in, under load through the API."""
    base = json.loads(config_value(deployment.stack.name, "nodes") or "[]")
    assert base and EXTRA_NODE not in base, base
    grown_nodes = [*base, EXTRA_NODE]
    tag = f"scale-{secrets.token_hex(3)}"
    ledger = Ledger()
    up_s: dict[str, float] = {}
    before = container_ids(deployment)
    caught_up = served = False
    t0 = in_at = time.monotonic()
    t0_utc = ""
    load = Load(deployment.api, tag, spec or LoadSpec(), ledger=ledger)
    try:
        with load:
            wait_until(lambda: len(ledger.acked) >= 5, 60, "the first acknowledged writes")
            started = t0 = time.monotonic()
            t0_utc = time.strftime("%H:%M:%S", time.gmtime())
            deployment.up(nodes=json.dumps(grown_nodes))
            up_s["out"] = round(time.monotonic() - started, 1)
            grown = container_ids(deployment)
            primary = primary_of(deployment, grown_nodes)
            wait_until(
                lambda: _streams(deployment, primary, EXTRA_NODE),
                120,
                f"{EXTRA_NODE} streaming from {primary}",
            )
            acked = ledger.acked_ids()
            new_container = deployment.container_name(EXTRA_NODE)
            wait_until(
                lambda: ids_present(new_container, acked, client=deployment.docker) == set(acked),
                60,
                f"{EXTRA_NODE} has every acknowledged write",
            )
            caught_up = True
            served = _served_by(deployment, EXTRA_NODE)
            started = time.monotonic()
            in_at = round(started - t0, 1)
            deployment.up(nodes=json.dumps(base))
            up_s["in"] = round(time.monotonic() - started, 1)
            # Writes after the scale in, through the stack as it is now.
            count = len(ledger.acked)
            wait_until(lambda: len(ledger.acked) >= count + 5, 60, "writes after the scale in")
    finally:
        if json.loads(config_value(deployment.stack.name, "nodes") or "[]") != base:
            deployment.up(nodes=json.dumps(base))
    after = container_ids(deployment)
    primary = primary_of(deployment, base)
    slots = deployment.sql(
        primary, "select slot_name from pg_replication_slots order by 1", db="postgres"
    ).split()
    result = ScaleCycle(
        added=EXTRA_NODE,
        before=before,
        grown=grown,
        after=after,
        up_seconds=up_s,
        failed_writes=[e.status for e in load.of_kind("write") if not e.ok],
        failed_reads=[e.status for e in load.of_kind("read") if not e.ok],
        ledger=check(ledger, deployment.container_name(primary), tag, client=deployment.docker),
        caught_up=caught_up,
        served_read=served,
        slots_after=slots,
        timeline={
            "t0_utc": t0_utc,
            "up_out": [0.0, up_s.get("out")],
            "up_in": [in_at, up_s.get("in")] if "in" in up_s else None,
            "failed": [
                (e.kind, e.status, round(e.start - t0, 2))
                for e in load.events
                if not e.ok and e.start >= t0
            ],
        },
    )
    record(
        "scale_cycle",
        {
            "up_seconds": up_s,
            "writes": len(load.of_kind("write")),
            "failed_writes": len(result.failed_writes),
            "failed_reads": len(result.failed_reads),
            "lost": result.ledger.lost,
            "timeline": result.timeline,
        },
    )
    return result


def assert_untouched_and_lossless(cycle: ScaleCycle) -> None:
    """What a scale cycle must show in every failover mode: no other container replaced or
    restarted, the new node caught up and served a read, no failed write, no lost write,
    and the removed node's slot gone."""
    assert cycle.changed(cycle.grown) == {}
    assert cycle.changed(cycle.after) == {}
    assert cycle.caught_up
    assert cycle.served_read
    assert cycle.failed_writes == []
    assert cycle.ledger.lost == 0
    assert nodes.slot_name(cycle.added) not in cycle.slots_after
