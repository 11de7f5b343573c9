"""The drill's load: a ledger of products POSTed through the API, and a GET latency probe.

Why client times are enough for exactness: the API, PostgreSQL and this process read the
same host clock (containers share the kernel's). A write acknowledged before the target
committed before it, so it must survive a restore to the target; a write sent after the
target committed after it, so it must not. A write in flight across the target may go
either way: it is counted as such, never as an error (Jepsen's "indeterminate").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import percentile


@dataclass
class Entry:
    name: str
    sent: float
    acked: float | None = None
    product_id: int | None = None


@dataclass
class _Loop:
    """A daemon thread running `_run` until `stop`: the ledger's and the probe's shared part."""

    api_url: str

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        raise NotImplementedError


@dataclass
class Ledger(_Loop):
    """POSTs one product every `interval` seconds until stopped; remembers each outcome."""

    prefix: str
    interval: float = 0.05
    entries: list[Entry] = field(default_factory=list)

    def _run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=5.0) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                entry = Entry(f"{self.prefix}-{n}", time.time())
                self.entries.append(entry)
                try:
                    res = http.post(
                        "/products", json={"name": entry.name, "price": "1.00", "stock": 1}
                    )
                    if res.status_code == 201:
                        entry.product_id = int(res.json()["id"])
                        entry.acked = time.time()
                except httpx.HTTPError:
                    pass
                self._stop.wait(self.interval)

    def latencies(self, start: float, end: float) -> list[float]:
        """Milliseconds of the acknowledged POSTs sent in [start, end]."""
        return [
            (e.acked - e.sent) * 1000
            for e in list(self.entries)
            if e.acked is not None and start <= e.sent <= end
        ]

    def acked(self) -> list[Entry]:
        return [e for e in list(self.entries) if e.acked is not None]


def exactness(entries: list[Entry], present: set[str], target: float) -> dict[str, int]:
    """Jepsen-style counts against a restore to `target` (epoch seconds): `lost` were
    acknowledged by the target and are missing; `phantom` were sent after it and are there."""
    before = [e for e in entries if e.acked is not None and e.acked <= target]
    after = [e for e in entries if e.sent > target]
    return {
        "acked_before_target": len(before),
        "present_before_target": sum(e.name in present for e in before),
        "lost": sum(e.name not in present for e in before),
        "sent_after_target": len(after),
        "phantom": sum(e.name in present for e in after),
        "in_flight_at_target": sum(
            1 for e in entries if e.sent <= target and (e.acked is None or e.acked > target)
        ),
    }


def rpo(
    entries: list[Entry], present: set[str], loss: float, since: float | None = None
) -> dict[str, Any]:
    """What a total loss at `loss` cost: acknowledged writes missing after the restore, and
    how long before the loss the oldest of them was acknowledged (the window lost).

    `since`: the drill's own `DELETE FROM products` on the source; rows acknowledged before
    it were deleted on purpose, so their absence after a `latest` restore is correct, not
    lost. (The first published drill counted them: 215 of its 284 "lost" writes.)
    """
    acked = [
        e
        for e in entries
        if e.acked is not None and e.acked <= loss and (since is None or e.acked > since)
    ]
    missing = [e for e in acked if e.name not in present]
    oldest = min((e.acked for e in missing if e.acked is not None), default=None)
    return {
        "acked_before_loss": len(acked),
        "acked_lost": len(missing),
        "lost_window_s": None if oldest is None else round(loss - oldest, 1),
    }


def p99(values: list[float]) -> float | None:
    value = percentile(values, 99)
    return None if value is None else round(value, 1)


@dataclass
class Probe(_Loop):
    """GETs seeded products one after another (cache misses mostly go to the replica):
    the read side of "the API's p99 during a backup"."""

    ids: list[int]
    samples: list[tuple[float, float]] = field(default_factory=list)

    def _run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=5.0) as http:
            i = 0
            while not self._stop.is_set():
                i += 1
                started = time.time()
                try:
                    res = http.get(f"/products/{self.ids[i % len(self.ids)]}")
                    if res.status_code == 200:
                        self.samples.append((started, (time.time() - started) * 1000))
                except httpx.HTTPError:
                    pass
                self._stop.wait(0.02)

    def latencies(self, start: float, end: float) -> list[float]:
        return [ms for at, ms in list(self.samples) if start <= at <= end]
