"""`wait_until`: the one poll loop, bounded in time, for every "until the stack is X" wait.

A check may raise while a dependency restarts (a refused connection, a container that is
not running yet); that only means "not yet", so the loop keeps polling and names the last
reason in its timeout message instead of failing on the first hiccup.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class WaitTimeout(AssertionError):
    """The condition did not hold in time. An AssertionError, so pytest shows it as a
    failed expectation; runners catch it like any other error."""


class NotYet(Exception):
    """Raised by a check to say why the condition does not hold yet (shown on timeout)."""


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    interval: float = 0.5,
) -> float:
    """Polls `check()` until it returns True; returns the seconds that took.

    Raises `WaitTimeout` after `timeout` seconds, naming `what` and the last exception
    the check raised (a `NotYet` carries the reason a check chose to give).
    """
    started = time.monotonic()
    deadline = started + timeout
    last = ""
    while True:
        try:
            if check():
                return time.monotonic() - started
            last = ""
        except Exception as exc:  # noqa: BLE001 (see the module docstring)
            last = str(exc)[:300] if isinstance(exc, NotYet) else f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            reason = f" (last: {last})" if last else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{reason}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
