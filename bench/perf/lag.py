"""Streaming-replication lag on the primary, sampled while write runs are open.

Samples come from one long-lived ``psql`` on the primary, attached over the Docker SDK's
exec socket. Why not psycopg from the host: ``replay_lag`` is hidden from the unprivileged
app role. Why not an exec per sample: that costs far more CPU than the sample itself.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from docker import DockerClient

from bench.common import BenchError, percentile

MAX_LAG_SAMPLES = 20_000
LSN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")
# NULL replay_lag means the replica reported it is fully caught up with nothing in flight.
LAG_SQL = (
    "SELECT coalesce(extract(epoch FROM max(replay_lag)), -1)::float8, "
    "coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), -1)::bigint, "
    "count(*) FROM pg_stat_replication"
)
STDOUT = 1


class FrameDecoder:
    """Docker's multiplexed exec stream (no TTY): 8-byte header, then the payload.

    Header: stream (1 stdout, 2 stderr), three zero bytes, big-endian payload length.
    Returns the stdout payload fed so far; other streams are dropped.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        out = b""
        while len(self._pending) >= 8:
            size = int.from_bytes(self._pending[4:8], "big")
            if len(self._pending) < 8 + size:
                break
            if self._pending[0] == STDOUT:
                out += self._pending[8 : 8 + size]
            self._pending = self._pending[8 + size :]
        return out


class _RawSocket(Protocol):
    def fileno(self) -> int: ...
    def sendall(self, data: bytes) -> None: ...
    def recv(self, size: int) -> bytes: ...
    def shutdown(self, how: int) -> None: ...
    def close(self) -> None: ...


class PrimarySession:
    """One ``psql`` on the primary node as postgres (peer auth), fed statements on stdin."""

    END = "__pgha_bench_end__"

    def __init__(self, client: DockerClient, container: str) -> None:
        api = client.api
        exec_id = api.exec_create(
            container,
            ["psql", "-d", "pgha", "-AtqX", "-v", "ON_ERROR_STOP=0"],
            stdin=True,
            stdout=True,
            stderr=False,
            user="postgres",
        )["Id"]
        # Kept referenced: when the SocketIO and its HTTP response are collected, the
        # connection, and with it the socket below, may be closed.
        self._attached = api.exec_start(exec_id, socket=True)
        # docker-py hands back a SocketIO over a unix socket; select/send need the socket.
        attached = self._attached
        self._sock = cast(_RawSocket, getattr(attached, "_sock", attached))
        self._frames = FrameDecoder()
        self._buffer = b""
        self._lock = threading.Lock()

    def query(self, sql: str, timeout: float = 10.0) -> list[str]:
        """Run one statement; returns its output lines (none if it failed)."""
        with self._lock:
            try:
                self._sock.sendall(f"{sql};\n\\echo {self.END}\n".encode())
            except OSError as exc:
                raise BenchError("psql session on the primary is gone") from exc
            lines: list[str] = []
            deadline = time.monotonic() + timeout
            while True:
                while b"\n" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\n", 1)
                    line = raw.decode(errors="replace")
                    if line == self.END:
                        return lines
                    lines.append(line)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("psql on the primary did not answer in time")
                ready, _, _ = select.select([self._sock.fileno()], [], [], left)
                if ready:
                    try:
                        chunk = self._sock.recv(65536)
                    except OSError as exc:
                        raise BenchError("psql session on the primary broke") from exc
                    if not chunk:
                        raise BenchError("psql session on the primary ended")
                    self._buffer += self._frames.feed(chunk)

    def close(self) -> None:
        # EOF on stdin ends psql, which ends the exec; then the socket can go.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            self._sock.close()


def wait_replayed(session: PrimarySession, replicas: int, seconds: float = 60) -> None:
    """Block until every replica has replayed everything the primary had written so far."""
    lsn = session.query("SELECT pg_current_wal_lsn()")[0]
    if not LSN.match(lsn):
        raise BenchError(f"unexpected LSN {lsn!r}")
    deadline = time.monotonic() + seconds
    sql = (
        f"SELECT count(*) FILTER (WHERE replay_lsn >= '{lsn}'::pg_lsn), count(*) "
        "FROM pg_stat_replication"
    )
    while time.monotonic() < deadline:
        done, total = (int(x) for x in session.query(sql)[0].split("|"))
        if total >= replicas and done == total:
            return
        time.sleep(0.1)
    raise BenchError(f"replicas did not replay up to {lsn} within {seconds:.0f}s")


@dataclass
class LagSample:
    t: float
    lag_ms: float | None
    behind_bytes: int | None
    replicas: int


def parse_lag_row(line: str, t: float) -> LagSample:
    """One LAG_SQL row (`lag_s|behind|count`; -1 stands for NULL) as a sample."""
    lag_s, behind, count = line.split("|")
    lag = float(lag_s)
    return LagSample(
        t, None if lag < 0 else lag * 1000, None if int(behind) < 0 else int(behind), int(count)
    )


def summarize_lag(samples: Sequence[LagSample]) -> dict[str, Any]:
    # A NULL lag is "caught up, nothing in flight", i.e. 0 ms; counted so it stays visible.
    lags = [s.lag_ms if s.lag_ms is not None else 0.0 for s in samples]
    behind = [s.behind_bytes for s in samples if s.behind_bytes is not None]
    return {
        "samples": len(samples),
        "null_samples": sum(1 for s in samples if s.lag_ms is None),
        "no_replica_samples": sum(1 for s in samples if s.replicas == 0),
        "p50_ms": percentile(lags, 50),
        "p99_ms": percentile(lags, 99),
        "max_ms": max(lags) if lags else None,
        "behind_bytes_p99": percentile(behind, 99),
        "behind_bytes_max": max(behind) if behind else None,
    }


class LagSampler:
    """Samples replication lag on the primary, but only while a write phase is open."""

    def __init__(self, session: PrimarySession, interval: float, deadline_s: float) -> None:
        self._session = session
        self._interval = interval
        self._deadline = time.monotonic() + deadline_s
        self._phase: str | None = None
        self._stop = threading.Event()
        self.samples: dict[str, list[LagSample]] = {}
        self.errors = 0
        self._thread = threading.Thread(target=self._loop, name="lag-sampler", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.samples.setdefault(name, [])
        self._phase = name
        try:
            yield
        finally:
            self._phase = None

    def _loop(self) -> None:
        taken = 0
        while not self._stop.is_set() and taken < MAX_LAG_SAMPLES:
            if time.monotonic() > self._deadline:
                return
            phase = self._phase
            if phase is None:
                self._stop.wait(self._interval)
                continue
            try:
                lines = self._session.query(LAG_SQL, timeout=5)
                sample = parse_lag_row(lines[0], time.monotonic())
            except (BenchError, IndexError, ValueError):
                self.errors += 1
                self._stop.wait(self._interval)
                continue
            self.samples[phase].append(sample)
            taken += 1
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def report(self, interval: float) -> dict[str, Any]:
        """The report's `replication_lag` section: overall and per phase."""
        every = [s for v in self.samples.values() for s in v]
        return {
            "interval_s": interval,
            "sampler_errors": self.errors,
            "overall": summarize_lag(every),
            "phases": {k: summarize_lag(v) for k, v in self.samples.items()},
        }
