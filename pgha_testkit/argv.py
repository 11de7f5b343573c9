"""Every command line that ran on this host while a block ran, sampled from /proc.

Why sample: a password passed as an argument is readable by every user of the Docker
host (`/proc/<pid>/cmdline`) for as long as the process lives, and bootstrap processes
(initdb, psql, pg_basebackup) live for a second or two, so a check after `pulumi up`
never sees them. Containers' processes are the host's processes, so the host's /proc
shows them all.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType


class ArgvSampler:
    """`with ArgvSampler() as s: ...` then `s.seen`: each distinct argv, NUL-joined bytes."""

    def __init__(self, interval: float = 0.05) -> None:
        self.seen: set[bytes] = set()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="argv-sampler", daemon=True)

    def __enter__(self) -> ArgvSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read()
            except OSError:  # the process ended between listdir and open
                continue
            if argv:
                self.seen.add(argv)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)
