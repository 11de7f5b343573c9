"""What a request costs the whole stack, and what the stack holds in memory.

CPU and memory come from each container's cgroup, read on the host (as the runner already
reads /proc) just before and just after each measured run: cumulative CPU time counts every
process of a container, also PostgreSQL backends forked during the run, which the /proc
sampling of the server's PIDs cannot see. (Docker's stats API gives the same numbers, but
its engine here ignores one-shot and spends a second per container per call.) Summed over
every container of the stack plus the measured server, per 1,000 requests, it compares
paths, designs and machines: unlike req/s it does not drop when neighbours steal cycles.
Each container's idle rate (health checks, pool probes, replication), measured once at
rest, is subtracted: it is no request's cost, and over a slow path's run it would weigh
more than over a fast one's.

Memory is what `docker stats` shows: usage minus the inactive page cache.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.common import BenchError
from bench.perf.containers import Docker

CGROUP_ROOT = Path("/sys/fs/cgroup")

# container -> (CPU ns so far, memory bytes, time.monotonic() of the reading)
Snapshot = dict[str, tuple[int, int | None, float]]


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup -> {controller: path}; cgroup v2's single line is under ``""``."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def stat_value(text: str, key: str) -> int | None:
    """One ``key value`` line of a cgroup ``*.stat`` file."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


def memory_in_use(usage: int, stat_text: str) -> int:
    """Usage minus inactive file pages, as the docker CLI computes it (cgroup v1 and v2)."""
    inactive = stat_value(stat_text, "total_inactive_file")
    if inactive is None:
        inactive = stat_value(stat_text, "inactive_file") or 0
    return usage - inactive if inactive < usage else usage


class Cgroups:
    """Reads containers' cgroup counters; each container's directories are found once."""

    def __init__(self, dock: Docker) -> None:
        self.docker = dock
        self.dirs: dict[str, dict[str, str]] = {}

    def _dirs(self, name: str) -> dict[str, str]:
        if name not in self.dirs:
            pid = int(self.docker.container(name).attrs["State"]["Pid"])
            self.dirs[name] = parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
        return self.dirs[name]

    def read(self, name: str) -> tuple[int, int | None]:
        groups = self._dirs(name)
        if "cpuacct" in groups:  # cgroup v1
            cpu = int(self._v1("cpuacct", groups["cpuacct"], "cpuacct.usage"))
            mem_dir = groups.get("memory")
            if mem_dir is None:
                return cpu, None
            usage = int(self._v1("memory", mem_dir, "memory.usage_in_bytes"))
            return cpu, memory_in_use(usage, self._v1("memory", mem_dir, "memory.stat"))
        unified = CGROUP_ROOT / groups[""].lstrip("/")
        usec = stat_value((unified / "cpu.stat").read_text(), "usage_usec") or 0
        usage = int((unified / "memory.current").read_text())
        return usec * 1000, memory_in_use(usage, (unified / "memory.stat").read_text())

    @staticmethod
    def _v1(controller: str, path: str, leaf: str) -> str:
        # Mounted alone or together with cpu ("cpu,cpuacct"), depending on the distribution.
        for mount in (controller, f"cpu,{controller}", f"{controller},cpu"):
            candidate = CGROUP_ROOT / mount / path.lstrip("/") / leaf
            if candidate.exists():
                return candidate.read_text()
        raise FileNotFoundError(f"{leaf} of {path}")

    def snapshot(self, names: Iterable[str]) -> Snapshot:
        """A reading of each container (one that is gone is left out), with its own time."""
        taken: Snapshot = {}
        for name in names:
            try:
                cpu, mem = self.read(name)
            except (BenchError, OSError, KeyError, ValueError):
                # A helper already removed, a restarted container: that cell stays empty.
                self.dirs.pop(name, None)
                continue
            taken[name] = (cpu, mem, time.monotonic())
        return taken


def cpu_seconds_between(
    before: Mapping[str, tuple[int, int | None, float]],
    after: Mapping[str, tuple[int, int | None, float]],
) -> dict[str, tuple[float, float]]:
    """(CPU seconds used, seconds elapsed) per container between two snapshots."""
    return {
        name: (
            round(max(0, after[name][0] - before[name][0]) / 1e9, 4),
            max(0.0, after[name][2] - before[name][2]),
        )
        for name in before
        if name in after
    }


def above_idle(
    used: Mapping[str, tuple[float, float]], idle_cores: Mapping[str, float]
) -> dict[str, float]:
    """CPU seconds each container used beyond its idle rate over its window (never < 0)."""
    return {
        name: round(max(0.0, s - idle_cores.get(name, 0.0) * elapsed), 4)
        for name, (s, elapsed) in used.items()
    }


def per_thousand(cpu_s: Mapping[str, float], requests: int) -> dict[str, float]:
    """CPU-ms per 1,000 requests for each container and their ``total``."""
    if not requests:
        return {}
    costs = {name: round(s * 1e6 / requests, 1) for name, s in cpu_s.items()}
    costs["total"] = round(sum(cpu_s.values()) * 1e6 / requests, 1)
    return costs


def short(name: str, prefix: str) -> str:
    """``pgha-b15-api-1`` -> ``api-1``: the report names roles, not one stack's names."""
    return name.removeprefix(f"{prefix}-")


def memory_table(meta: Mapping[str, Any]) -> list[str]:
    """Markdown rows of ``meta["memory_mib"]``: {container: {"idle": MiB, "after_load": MiB}}."""
    rows = ["| container | idle MiB | after the load phases MiB |", "|---|---:|---:|"]
    for name, mib in sorted((meta.get("memory_mib") or {}).items()):
        idle, loaded = mib.get("idle"), mib.get("after_load")
        rows.append(
            f"| {name} | {'n/a' if idle is None else f'{idle:.1f}'} "
            f"| {'n/a' if loaded is None else f'{loaded:.1f}'} |"
        )
    return rows


def cpu_table(
    figures: Mapping[str, Mapping[str, Any]], order: Iterable[str], floor: str
) -> list[str]:
    """Markdown rows: each figure's CPU-ms per 1,000 requests (or transactions), total, as a
    multiple of the ``floor`` figure's total, and by container."""
    floor_costs = (figures.get(floor) or {}).get("path_cpu_ms_per_1k") or {}
    floor_total = floor_costs.get("total")
    rows = [
        f"| figure | total CPU-ms / 1k | x {floor} | by container (CPU-ms / 1k, >= 1) |",
        "|---|---:|---:|---|",
    ]
    for key in order:
        costs = (figures.get(key) or {}).get("path_cpu_ms_per_1k")
        if not costs:
            continue
        parts = sorted(((v, n) for n, v in costs.items() if n != "total" and v >= 1), reverse=True)
        detail = ", ".join(f"{n} {v:,.0f}" for v, n in parts)
        times = f"{costs['total'] / floor_total:.1f}" if floor_total else "n/a"
        rows.append(f"| {key} | {costs['total']:,.0f} | {times} | {detail} |")
    return rows
