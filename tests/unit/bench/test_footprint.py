"""CPU per 1,000 requests along the path and memory per container, from cgroups."""

from __future__ import annotations

from typing import Any

from bench.perf.footprint import (
    above_idle,
    cpu_seconds_between,
    cpu_table,
    memory_in_use,
    memory_table,
    parse_proc_cgroup,
    per_thousand,
    short,
    stat_value,
)
from bench.perf.tools import combine_http

V1 = """12:pids:/docker/abc
4:memory:/docker/abc
2:cpu,cpuacct:/docker/abc
1:name=systemd:/docker/abc
0::/docker/abc
"""


def test_parse_proc_cgroup_on_v1_and_v2() -> None:
    groups = parse_proc_cgroup(V1)
    assert (groups["cpuacct"], groups["cpu"], groups["memory"]) == ("/docker/abc",) * 3
    assert parse_proc_cgroup("0::/system.slice/docker-abc.scope\n") == {
        "": "/system.slice/docker-abc.scope"
    }


def test_memory_is_usage_minus_inactive_file_on_cgroup_v1_and_v2() -> None:
    v1 = "cache 500\ninactive_file 1\ntotal_inactive_file 300\n"
    assert memory_in_use(1000, v1) == 700
    assert memory_in_use(1000, "anon 10\ninactive_file 100\n") == 900
    assert memory_in_use(1000, "") == 1000
    assert memory_in_use(100, "inactive_file 300\n") == 100
    assert stat_value("usage_usec 42\nuser_usec 40\n", "usage_usec") == 42


def test_cpu_between_snapshots_keeps_containers_seen_twice() -> None:
    before = {"a": (1_000_000_000, None, 10.0), "b": (0, None, 10.5), "gone": (5, None, 10.0)}
    after = {"a": (3_500_000_000, 10, 13.0), "b": (0, None, 14.5), "new": (9, None, 14.0)}
    assert cpu_seconds_between(before, after) == {"a": (2.5, 3.0), "b": (0.0, 4.0)}


def test_per_thousand_gives_each_container_and_the_total() -> None:
    assert per_thousand({"api-1": 1.5, "haproxy": 0.5}, 2000) == {
        "api-1": 750.0,
        "haproxy": 250.0,
        "total": 1000.0,
    }
    assert per_thousand({"api-1": 1.0}, 0) == {}


def test_short_drops_the_stack_prefix() -> None:
    assert short("pgha-b15-api-1", "pgha-b15") == "api-1"
    assert short("other", "pgha-b15") == "other"


def test_markdown_tables() -> None:
    figures = {
        "api_hit": {"path_cpu_ms_per_1k": {"api-1": 90.0, "redis": 0.4, "total": 95.0}},
        "floor": {"path_cpu_ms_per_1k": {"pg-1": 50.0, "total": 50.0}},
    }
    assert cpu_table(figures, ["api_hit", "api_miss", "floor"], "floor")[2:] == [
        "| api_hit | 95 | 1.9 | api-1 90 |",
        "| floor | 50 | 1.0 | pg-1 50 |",
    ]
    assert cpu_table(figures, ["api_hit"], "none")[2] == "| api_hit | 95 | n/a | api-1 90 |"
    meta = {"memory_mib": {"redis": {"idle": 3.0}, "api-1": {"idle": 60.0, "after_load": 72.5}}}
    assert memory_table(meta)[2:] == ["| api-1 | 60.0 | 72.5 |", "| redis | 3.0 | n/a |"]


def test_combine_http_adds_the_path_cpu_of_rounds() -> None:
    def run(requests: int, cpu: dict[str, float]) -> dict[str, Any]:
        return {
            "rate": 100.0, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "p999_ms": 1.0,
            "mean_ms": 1.0, "max_ms": 1.0, "requests": requests, "repeated_ids": 0,
            "capped_threads": 0, "seconds": 1.0, "errors": {}, "status": {}, "x_cache": {},
            "path_cpu_s": cpu,
        }  # fmt: skip

    merged = combine_http([run(1000, {"api-1": 1.0, "pg-0": 0.5}), run(1000, {"api-1": 1.0})])
    assert merged["path_cpu_s"] == {"api-1": 2.0}
    assert merged["path_cpu_ms_per_1k"] == {"api-1": 1000.0, "total": 1000.0}


def test_above_idle_subtracts_each_containers_rest_rate_over_its_window() -> None:
    used = {"api-1": (1.0, 4.0), "pg-0": (0.1, 4.0), "bench-bare": (0.5, 4.0), "r": (0.5, 10.0)}
    assert above_idle(used, {"api-1": 0.05, "pg-0": 0.05, "r": 0.04}) == {
        "api-1": 0.8,
        "pg-0": 0.0,
        "bench-bare": 0.5,
        "r": 0.1,
    }
