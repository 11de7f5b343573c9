"""A bounded mixed load through the API: writers POST unique names, readers GET ids.

Bounded three ways, because it runs on a shared 2-core host: a stop event, a request
count per thread and a deadline. Each request becomes an `Event` (kind, start, end,
status), and every write goes through a `Ledger`, so the lost-write check and the
outage timings come from the same run.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

import httpx

from pgha_testkit.ledger import Ledger


@dataclass(frozen=True)
class Event:
    kind: str
    start: float
    end: float
    status: str

    @property
    def ok(self) -> bool:
        return self.status.startswith("2")


@dataclass(frozen=True)
class LoadSpec:
    writers: int = 2
    readers: int = 2
    # 2 s turns a frozen dependency into a visible error quickly, while staying above the
    # API's own 1.5 s pool wait, so its 503s are seen as 503s, not as timeouts.
    timeout_s: float = 2.0
    # ~40 requests/s per thread keeps two cores free enough for the stack itself.
    pace_s: float = 0.025
    # After consecutive errors the pause doubles from error_backoff_s up to
    # error_backoff_max_s: a long outage is not hammered 20 times a second per thread, yet
    # the first success after recovery is still seen within a fraction of a second, so
    # recovery times measure the stack, not this client.
    error_backoff_s: float = 0.05
    error_backoff_max_s: float = 0.2
    max_requests_per_thread: int = 5000
    deadline_s: float = 600.0
    # Times a writer sends a POST again, with the same Idempotency-Key, when no response
    # came back at all (the connection was cut). 0 measures what HAProxy alone masks.
    resend_cut_posts: int = 0


def pause_after(failures: int, spec: LoadSpec) -> float:
    """Pause before the next request of a thread after `failures` consecutive errors."""
    if failures == 0:
        return spec.pace_s
    return min(spec.error_backoff_max_s, spec.error_backoff_s * 2.0 ** min(failures - 1, 16))


class Load:
    """Writers and readers against `api_url`; names are `<tag>-w<writer>-<seq>`.

    Use as a context manager (start on enter, stop on exit) or call start()/stop().
    Every write carries an `Idempotency-Key`, fresh per name: one name is one logical
    write, so HAProxy may send a POST again after its instance died, and a client retry
    of the same name would have to reuse the same key.
    Readers pick among `seed_ids` and every acknowledged id; an acknowledged id that
    answers 404 is an error like any other.
    """

    def __init__(
        self,
        api_url: str,
        tag: str,
        spec: LoadSpec | None = None,
        seed_ids: Iterable[int] = (),
        ledger: Ledger | None = None,
    ) -> None:
        self.api_url = api_url
        self.tag = tag
        self.spec = spec or LoadSpec()
        self.ledger = ledger or Ledger()
        self.events: list[Event] = []
        # Names of the writes that needed a resend after a cut connection.
        self.resent: list[str] = []
        self._readable = list(seed_ids)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        workers: list[Callable[[int], None]] = [self._writer] * self.spec.writers
        workers += [self._reader] * self.spec.readers
        for n, target in enumerate(workers):
            thread = threading.Thread(target=target, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.spec.timeout_s * 3)

    def of_kind(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    def _record(self, kind: str, start: float, status: str) -> None:
        with self._lock:
            self.events.append(Event(kind, start, time.monotonic(), status))

    def _loop(self, step: Callable[[httpx.Client, int], str], kind: str) -> None:
        spec = self.spec
        deadline = time.monotonic() + spec.deadline_s
        failures = 0
        # httpx drops a connection that failed and opens a fresh one for the next request,
        # also after the API restarted under an idle keep-alive connection: no reconnect
        # logic of our own is needed, only the pause between attempts.
        with httpx.Client(base_url=self.api_url, timeout=spec.timeout_s) as http:
            for seq in range(spec.max_requests_per_thread):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                started = time.monotonic()
                try:
                    status = step(http, seq)
                except httpx.TimeoutException:
                    status = "timeout"
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self._record(kind, started, status)
                failures = 0 if status.startswith("2") else failures + 1
                time.sleep(pause_after(failures, spec))

    def _writer(self, n: int) -> None:
        def step(http: httpx.Client, seq: int) -> str:
            name = f"{self.tag}-w{n}-{seq}"
            self.ledger.attempt(name)
            key = uuid.uuid4().hex
            for resends_left in range(self.spec.resend_cut_posts, -1, -1):
                try:
                    res = http.post(
                        "/products",
                        json={"name": name, "price": "1.00", "stock": seq},
                        headers={"Idempotency-Key": key},
                    )
                    break
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    # HTTP cannot promise an answer when the server dies after the proxy
                    # began to relay its reply; the key makes asking again safe.
                    if not resends_left:
                        raise
                    with self._lock:
                        self.resent.append(name)
            if res.status_code == 201:
                pid = int(res.json()["id"])
                self.ledger.ack(name, pid)
                with self._lock:
                    self._readable.append(pid)
            return str(res.status_code)

        self._loop(step, "write")

    def _reader(self, n: int) -> None:
        rng = random.Random(n)

        def step(http: httpx.Client, _: int) -> str:
            with self._lock:
                pid = rng.choice(self._readable) if self._readable else None
            if pid is None:
                return str(http.get("/products", params={"limit": 5}).status_code)
            return str(http.get(f"/products/{pid}").status_code)

        self._loop(step, "read")
