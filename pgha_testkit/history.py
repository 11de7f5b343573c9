"""Jepsen-style history of writes and reads against the API, and its one check: stale reads.

A write is known from the moment its PUT returned (`acked`); a read from the moment its GET
was sent (`started`). A read is stale if some write of the same product had already
returned when the read started, and the read saw an older version. Clocks are the host's
monotonic clock, read by the threads that made the calls, so "before" is real-time order.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Write:
    product: int
    version: int
    acked: float


@dataclass(frozen=True)
class Read:
    product: int
    started: float
    version: int
    cache: str


@dataclass
class History:
    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrote(self, write: Write) -> None:
        with self._lock:
            self.writes.append(write)

    def read(self, read: Read) -> None:
        with self._lock:
            self.reads.append(read)

    def status(self, code: int) -> None:
        with self._lock:
            self.statuses[code] += 1


def stale_reads(writes: list[Write], reads: list[Read]) -> list[tuple[Read, int]]:
    """Each stale read, with the newest version acknowledged before it started."""
    acked: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for w in writes:
        acked[w.product].append((w.acked, w.version))
    # Per product: ack times in order, with the highest version acknowledged up to each.
    times: dict[int, list[float]] = {}
    highest: dict[int, list[int]] = {}
    for product, entries in acked.items():
        entries.sort()
        times[product] = [t for t, _ in entries]
        running, best = [], 0
        for _, version in entries:
            best = max(best, version)
            running.append(best)
        highest[product] = running
    stale = []
    for r in reads:
        if r.product not in times:
            continue
        i = bisect.bisect_left(times[r.product], r.started)
        if i and highest[r.product][i - 1] > r.version:
            stale.append((r, highest[r.product][i - 1]))
    return stale
