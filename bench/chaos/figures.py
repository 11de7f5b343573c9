"""The chaos figures, as pure functions of a cell's load events, history and node samples.

Unit-tested on made-up timelines (tests/unit/bench), so what a report calls an outage, an
RTO, a stale read, a resumed cache or a split brain is pinned down apart from any Docker
run. Every campaign's report is built from these.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pgha_testkit.history import Read
from pgha_testkit.load import Event

# The goal of every recover_s figure: a path needs at most this long once its container is
# healthy again.
RECOVER_GOAL_S = 2.0
# A pause between two cache hits shorter than this is the load's own rhythm (a product
# just written is a MISS until refilled), not an interruption of the cache.
HIT_GAP_S = 1.0
# How far before the fault the last hit is looked for, so the gap it opens is measured.
LOOKBACK_S = 5.0


def longest_error_streak(events: Sequence[Event]) -> float:
    """Longest run of failures with no success in between: first failing start to last
    failing end, in order of completion."""
    longest = 0.0
    streak_start: float | None = None
    for event in sorted(events, key=lambda e: e.end):
        if event.ok:
            streak_start = None
            continue
        if streak_start is None:
            streak_start = event.start
        longest = max(longest, event.end - streak_start)
    return round(longest, 2)


def longest_gap_without_2xx(events: Sequence[Event]) -> float:
    """Longest time between two successful completions: the outage as a client feels it.

    Unlike the error streak it also covers time spent waiting, e.g. on a paused component
    whose backlog is answered once it is unpaused.
    """
    ends = sorted(e.end for e in events if e.ok)
    return round(max((b - a for a, b in zip(ends, ends[1:], strict=False)), default=0.0), 2)


def first_write_after(
    events: Sequence[Event], t_fault: float, t_done: float | None = None
) -> float | None:
    """Seconds from the fault to the end of the first 2xx write that started once the fault
    was in place (`t_done`: the Docker call returned): the RTO as a client sees it.

    A write started earlier proves nothing: under load `docker kill` itself took long
    enough for writes sent during the call to succeed 0.03 s "after" the fault.
    """
    since = t_fault if t_done is None else t_done
    ends = [e.end for e in events if e.kind == "write" and e.ok and e.start >= since]
    return round(min(ends) - t_fault, 2) if ends else None


def summarize(
    events: Sequence[Event], kind: str, t_fault: float, t_lift: float, t_done: float | None = None
) -> dict[str, Any]:
    """One kind's (`write` or `read`) figures for a cell whose fault ran t_fault..t_lift."""
    mine = [e for e in events if e.kind == kind]
    errors = Counter(e.status for e in mine if not e.ok)
    resumed = [e.end - t_lift for e in mine if e.ok and e.start >= t_lift]
    since = t_fault if t_done is None else t_done
    after_fault = [e.end - t_fault for e in mine if e.ok and e.start >= since]
    before = [e for e in mine if e.end < t_fault]
    return {
        "requests": len(mine),
        "ok": sum(e.ok for e in mine),
        "errors": dict(sorted(errors.items())),
        "errors_before_fault": sum(not e.ok for e in before),
        "errors_after_lift": sum(not e.ok for e in mine if e.start >= t_lift),
        "longest_error_streak_s": longest_error_streak(mine),
        "longest_gap_without_2xx_s": longest_gap_without_2xx(mine),
        "first_2xx_after_fault_s": round(min(after_fault), 2) if after_fault else None,
        "first_2xx_after_lift_s": round(min(resumed), 2) if resumed else None,
    }


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and max of a series; a run with no value (None) is counted as missing."""
    seen = [v for v in values if v is not None]
    return {
        "runs": len(values),
        "missing": len(values) - len(seen),
        "median": round(statistics.median(seen), 2) if seen else None,
        "max": round(max(seen), 2) if seen else None,
        "values": list(values),
    }


def slow_recoveries(cells: Sequence[Mapping[str, Any]], goal: float = RECOVER_GOAL_S) -> list[str]:
    """Every cell (and phase, traffic or quiet) whose path needed longer than `goal` after
    its container was healthy, or never recovered (None)."""
    slow = []
    for c in cells:
        for phase, value in (c.get("recover_s") or {}).items():
            if value is None or value > goal:
                took = "never" if value is None else f"{value:.2f} s"
                slow.append(f"{c['cell']} ({c['mode']}, {phase}): {took}")
    return slow


# --- patroni: split brain ---------------------------------------------------------------


@dataclass(frozen=True)
class NodeState:
    # HAProxy can reach it: running, not paused, on the stack network.
    reachable: bool
    # pg_is_in_recovery() = false; None when it did not answer.
    writable: bool | None


# (seconds since the fault, node -> state)
Sample = tuple[float, Mapping[str, NodeState]]


def split_brain_samples(samples: Sequence[Sample]) -> list[float]:
    """When two nodes that HAProxy could both reach were writable at once.

    A writable node that is cut off (disconnected, paused) is not a split brain by the
    issue's definition: no client can reach it, and it must only stop writing within ttl.
    """
    return [
        t
        for t, states in samples
        if sum(1 for s in states.values() if s.reachable and s.writable is True) > 1
    ]


# --- sentinel: the cache under a history ------------------------------------------------


def hits_resume_s(reads: Sequence[Read], t_fault: float) -> float | None:
    """Seconds from the fault to the first HIT that ends the longest run without hits
    (longer than HIT_GAP_S) reaching past the fault; 0.0 if hits never paused that long,
    None if no HIT came after the fault at all."""
    hits = sorted(
        r.started for r in reads if r.cache == "HIT" and r.started >= t_fault - LOOKBACK_S
    )
    before = [h for h in hits if h <= t_fault]
    # The run without hits that the fault may have opened starts at the last hit before it.
    prev = before[-1] if before else t_fault
    longest, resumed = 0.0, None
    for hit in (h for h in hits if h > t_fault):
        if hit - prev > longest:
            longest, resumed = hit - prev, hit
        prev = hit
    if resumed is None:
        return None
    return 0.0 if longest <= HIT_GAP_S else round(resumed - t_fault, 2)


def server_errors(statuses: Mapping[int, int]) -> int:
    """5xx answers, plus requests that got no answer at all (status -1: timeout, reset)."""
    return sum(n for code, n in statuses.items() if code >= 500 or code < 0)


def stall(latencies: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max of write latencies (s), nearest rank; None without writes."""
    if not latencies:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(latencies)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"p50": rank(0.5), "p99": rank(0.99), "max": ordered[-1]}
