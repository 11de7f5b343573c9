"""Jepsen-style history of writes and reads against the API, and its one check: stale reads.

A write is known from the moment its PUT returned (`acked`); a read from the moment its GET
was sent (`started`). A read is stale if some write of the same product had already
returned when the read started, and the read saw an older version. Clocks are the host's
monotonic clock, read by the threads that made the calls, so "before" is real-time order.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Write:
    product: int
    version: int
    acked: float
    # Seconds from sending the PUT to its answer: the write stall a failover costs.
    took: float = 0.0


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
    # When each PUT that did not answer 200 was sent (status or transport error).
    failed_writes: list[float] = field(default_factory=list)
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

    def write_failed(self, sent: float) -> None:
        with self._lock:
            self.failed_writes.append(sent)


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


class HistoryLoad:
    """Writers PUT increasing versions of `pids` while readers GET them, into one `History`.

    Writers split the products between them, so each product's versions come from one
    thread and a PUT's acknowledgement is the only time that matters for staleness. Bounded
    by the stop event and by `max_seconds`; `pace_s` is the pause between a thread's calls
    (0 for the tightest loop the host allows, which is what the e2e history test uses),
    `write_pace_s` the writers' own if they should write less often than readers read.
    """

    def __init__(
        self,
        api_url: str,
        pids: list[int],
        *,
        writers: int = 2,
        readers: int = 4,
        pace_s: float = 0.0,
        write_pace_s: float | None = None,
        timeout_s: float = 10.0,
        max_seconds: float = 600.0,
    ) -> None:
        self.api_url, self.pids = api_url, pids
        self.writers, self.readers = writers, readers
        self.pace_s, self.timeout_s = pace_s, timeout_s
        self.write_pace_s = pace_s if write_pace_s is None else write_pace_s
        self.deadline = 0.0
        self.max_seconds = max_seconds
        self.history = History()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.deadline = time.monotonic() + self.max_seconds
        for n in range(self.writers):
            mine = self.pids[n :: self.writers]
            self._threads.append(threading.Thread(target=self._write, args=(mine,), daemon=True))
        for n in range(self.readers):
            rng = random.Random(n)
            self._threads.append(threading.Thread(target=self._read, args=(rng,), daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout_s * 3)

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self.deadline

    def _write(self, pids: list[int]) -> None:
        with httpx.Client(base_url=self.api_url, timeout=self.timeout_s) as http:
            n = 0
            while self._running() and pids:
                pid = pids[n % len(pids)]
                n += 1
                body = {"name": f"w{n}", "price": "1.00", "stock": n}
                sent = time.monotonic()
                try:
                    res = http.put(f"/products/{pid}", json=body)
                except httpx.HTTPError:
                    self.history.status(-1)
                    self.history.write_failed(sent)
                    continue
                acked = time.monotonic()
                self.history.status(res.status_code)
                if res.status_code == 200:
                    version = int(res.json()["version"])
                    self.history.wrote(Write(pid, version, acked, round(acked - sent, 4)))
                else:
                    self.history.write_failed(sent)
                time.sleep(self.write_pace_s)

    def _read(self, rng: random.Random) -> None:
        with httpx.Client(base_url=self.api_url, timeout=self.timeout_s) as http:
            while self._running():
                pid = rng.choice(self.pids)
                started = time.monotonic()
                try:
                    res = http.get(f"/products/{pid}")
                except httpx.HTTPError:
                    self.history.status(-1)
                    continue
                self.history.status(res.status_code)
                if res.status_code == 200:
                    version = int(res.json()["version"])
                    self.history.read(Read(pid, started, version, res.headers["X-Cache"]))
                time.sleep(self.pace_s)
