"""What every part of the benchmark runner shares: paths, the error type, logging, bounded
host commands, and the two statistics every figure is built from.

Statistics are nearest-rank and plain ratios on purpose: every reported value was
observed, and a missing input gives None instead of a made-up number.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pgha_testkit.env import ROOT
from pgha_testkit.poll import WaitTimeout, wait_until
from pgha_testkit.stack import Outputs

LUA_DIR = ROOT / "bench" / "perf" / "lua"
RESULTS_DIR = ROOT / "bench" / "results"

_started = time.monotonic()


def api_containers(stack: Outputs) -> list[str]:
    """Every API instance of the stack (`api-1` ... `api-N`; `api` on older stacks): the
    load goes through HAProxy's frontend, so the server CPU of a run is theirs together."""
    names = [n for key, n in stack.containers.items() if key == "api" or key.startswith("api-")]
    return sorted(names)


class BenchError(RuntimeError):
    """A step failed; the message is safe to print (no secrets)."""


def log(message: str) -> None:
    print(f"[bench +{time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def run(
    cmd: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a host command with a hard timeout; secrets travel only in ``env``, never in ``cmd``."""
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, env=full_env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(cmd[:3])} ... timed out after {timeout:.0f}s") from exc
    except OSError as exc:  # not installed, not executable
        raise BenchError(f"{cmd[0]}: {exc.strerror or exc}") from exc
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise BenchError(f"{' '.join(cmd[:3])} ... exited {proc.returncode}: {tail}")
    return proc


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every reported value was observed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without floats drifting
    return float(ordered[min(len(ordered), int(rank)) - 1])


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_http_ok(url: str, seconds: float) -> None:
    try:
        wait_until(lambda: http_status(url) == 200, seconds, f"{url} to answer", interval=0.2)
    except WaitTimeout as exc:
        raise BenchError(f"{url} did not answer 200 within {seconds:.0f}s") from exc


def wait_for_idle(seconds: int) -> float:
    """Wait (bounded) for the host to calm down; returns the seconds waited."""
    cores = os.cpu_count() or 1
    started = time.monotonic()
    if seconds and os.getloadavg()[0] >= cores:
        log(f"waiting up to {seconds}s for the load average to fall below {cores}")
    while seconds and os.getloadavg()[0] >= cores and time.monotonic() - started < seconds:
        time.sleep(5)
    return round(time.monotonic() - started, 1)
