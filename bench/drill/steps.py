"""The drill's stack operations: deploy, fill, back up, restore with timings, rebuild a
replica, lose every node. Each returns what it measured; none asserts (a drill reports).

Stacks come from pgha_testkit's `Deployment` (the e2e harness): a unique name, its own
ports, destroyed at the end. Timings are wall-clock seconds on this host.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pulumi import automation as auto

from bench.common import log
from infra import outputs as out
from pgha_testkit import backup, patroni
from pgha_testkit.deployment import Deployment
from pgha_testkit.nodes import exec_as_postgres
from pgha_testkit.poll import NotYet, wait_until
from pgha_testkit.stack import NAMESPACE

# The image's PostgreSQL 15 binaries (not on PATH: Debian's wrappers are for clients).
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
STREAMING_COUNT = "select count(*) from pg_stat_replication where state = 'streaming'"


def deploy(nodes: list[str], mode: str) -> Deployment:
    source = Deployment.throwaway(nodes)
    started = time.monotonic()
    source.up(failoverMode=mode)
    if mode == "patroni":
        patroni.wait_whole(source, timeout=180)
    else:
        source.wait_streaming(timeout=180)
    log(f"source {source.stack.name} up in {time.monotonic() - started:.0f} s")
    return source


def leader(dep: Deployment, mode: str) -> str:
    return patroni.leader(dep) if mode == "patroni" else dep.primary


def fill(dep: Deployment, node: str, scale: int) -> dict[str, Any]:
    """pgbench's tables at `scale` (about 15 MB each) in the app database, logged, so their
    WAL is archived like any other."""
    started = time.monotonic()
    code, text = exec_as_postgres(
        dep.container_name(node), [PGBENCH, "-i", "-q", "-s", str(scale), "pgha"]
    )
    if code != 0:
        raise RuntimeError(f"pgbench -i failed: {text}")
    size = int(dep.sql(node, "select pg_database_size('pgha')"))
    return {"scale": scale, "db_bytes": size, "fill_s": round(time.monotonic() - started, 1)}


def seed(dep: Deployment, node: str, count: int) -> list[int]:
    """`count` products written with SQL: what the operator's DELETE destroys."""
    ids = dep.sql(
        node,
        "insert into pgha.products(name, price, stock) "
        f"select 'seed-' || g, 1, 1 from generate_series(1, {count}) g returning id",
    )
    return [int(i) for i in ids.split()]


def full_backup(dep: Deployment) -> dict[str, Any]:
    started = time.time()
    backup.backup_now(dep, "full")
    ended = time.time()
    status = backup.status(dep)
    return {"start": started, "end": ended, "seconds": round(ended - started, 1), **status}


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Watch:
    """Polls a new stack's first node from the moment `up` starts: when it first answers
    writable (out of recovery), and when every replica streams from it."""

    def __init__(self, dep: Deployment, first: str, replicas: int) -> None:
        self.dep, self.first, self.replicas = dep, first, replicas
        self.started = time.time()
        self.writable_at: float | None = None
        self.streaming_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._thread.start()

    def _ask(self, query: str) -> str:
        # By name, not from the outputs: those exist only once `up` has returned.
        code, text = exec_as_postgres(
            f"{self.dep.prefix}-{self.first}", ["psql", "-XAtq", "-d", "postgres", "-c", query]
        )
        return text if code == 0 else ""

    def _run(self) -> None:
        while not self._stop.is_set() and self.streaming_at is None:
            try:
                if self.writable_at is None and self._ask("select pg_is_in_recovery()") == "f":
                    self.writable_at = time.time()
                if self.writable_at is not None:
                    streaming = self._ask(STREAMING_COUNT)
                    if streaming and int(streaming) >= self.replicas:
                        self.streaming_at = time.time()
            except Exception:  # noqa: BLE001 - the container does not exist yet, or restarts
                pass
            self._stop.wait(1.0)

    def stop(self) -> dict[str, float | None]:
        self._stop.set()
        self._thread.join(timeout=10)

        def since(at: float | None) -> float | None:
            return None if at is None else round(at - self.started, 1)

        return {"writable_s": since(self.writable_at), "all_streaming_s": since(self.streaming_at)}


def restore(
    source: Deployment, target: str, nodes: list[str], mode: str
) -> tuple[Deployment, dict[str, Any]]:
    """A new stack restored from `source`'s repository to `target` (as `make restore`
    does), with timings from the start of its `up`."""
    restored = Deployment.throwaway(nodes)
    backup.restore_config(restored.stack, source, target)
    restored.stack.set_config(f"{NAMESPACE}:failoverMode", auto.ConfigValue(value=mode))
    watch = Watch(restored, nodes[0], len(nodes) - 1)
    started = time.time()
    restored.up()
    up_s = round(time.time() - started, 1)
    if mode == "patroni":
        patroni.wait_whole(restored, timeout=300)
    else:
        restored.wait_streaming(timeout=300)
    timings: dict[str, Any] = {"up_started": watch.started, "up_s": up_s, **watch.stop()}
    timings["restore_timeline"] = restored.outputs.get(out.RESTORE_TIMELINE)
    timings["restore_lsn"] = restored.outputs.get(out.RESTORE_LSN)
    log(f"restored {source.stack.name} to {target} into {restored.stack.name}: {timings}")
    return restored, timings


def names(dep: Deployment, node: str, prefix: str) -> set[str]:
    text = dep.sql(node, f"select name from pgha.products where name like '{prefix}-%'")
    return set(text.split())


def _tx_bytes(dep: Deployment, node: str) -> int:
    code, text = exec_as_postgres(
        dep.container_name(node), ["cat", "/sys/class/net/eth0/statistics/tx_bytes"]
    )
    return int(text) if code == 0 and text.isdigit() else 0


def rebuild_replica(dep: Deployment, replica: str) -> dict[str, Any]:
    """failoverMode patroni: reinitialise `replica` (Patroni wipes it and runs its
    create_replica_methods); how it was created, the time to streaming, and the bytes the
    leader sent meanwhile (its network counter: WAL, base backup, and everything else)."""
    primary = patroni.leader(dep)
    sent = _tx_bytes(dep, primary)
    since = int(time.time())
    started = time.time()
    code, text = patroni.request(dep, replica, "POST", "/reinitialize", {"force": True})
    if code != 200:
        raise RuntimeError(f"reinitialize {replica}: {code} {text}")

    def method() -> str:
        logs = dep.container(replica).logs(since=since).decode(errors="replace")
        found = re.findall(r"replica has been created using (\w+)", logs)
        if not found:
            raise NotYet("not created yet")
        return found[-1]

    wait_until(lambda: bool(method()), 900, f"{replica} rebuilt")
    patroni.wait_whole(dep, timeout=600)
    return {
        "method": method(),
        "to_streaming_s": round(time.time() - started, 1),
        "primary_sent_bytes": _tx_bytes(dep, primary) - sent,
    }


def lose_every_node(dep: Deployment, nodes: list[str]) -> float:
    """Removes every PostgreSQL container of `dep` and its data volume (the repository
    stays); returns when the last one was gone."""
    for node in nodes:
        dep.container(node).remove(force=True, v=True)
    for node in nodes:
        for volume in dep.docker.volumes.list(filters={"name": f"{dep.prefix}-{node}-data"}):
            volume.remove(force=True)
    return time.time()


def destroy(dep: Deployment) -> None:
    """Destroys a stack, after a refresh so that what the drill removed by hand is gone
    from the state too."""
    try:
        dep.stack.refresh(on_output=lambda _line: None)
    except Exception as exc:  # noqa: BLE001 - destroy anyway
        log(f"refresh of {dep.stack.name} failed: {exc}")
    left = dep.teardown()
    if any(left.values()):
        log(f"left after destroying {dep.stack.name}: {left}")
