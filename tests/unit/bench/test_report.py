"""Report rendering from a fixed Report: ratios against goals, markdown, JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.perf.report import (
    GOALS,
    INFO_RATIOS,
    Report,
    chart_ratios,
    evaluate,
    fmt,
    overhead,
    render_json,
    render_markdown,
    write_outputs,
)

LAG = {"samples": 3, "p50_ms": 1.0, "p99_ms": 250.0, "max_ms": 250.0, "behind_bytes_max": 4096}


def http(rate: float, p50: float, **extra: Any) -> dict[str, Any]:
    return {
        "label": "x",
        "kind": "http",
        "rate": rate,
        "rate_unit": "req/s",
        "requests": 1000,
        "p50_ms": p50,
        "p99_ms": p50 * 4,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        "status": {"2xx": 1000, "3xx": 0, "4xx": 0, "5xx": 0},
        "x_cache": {"hit": 990, "miss": 10, "bypass": 0, "nocache": 0},
        **extra,
    }


def pgbench(rate: float) -> dict[str, Any]:
    return {"label": "x", "kind": "pgbench", "rate": rate, "rate_unit": "TPS", "p50_ms": 1.0,
            "p99_ms": 3.0, "rounds_tps": [rate - 10, rate + 10]}  # fmt: skip


def fixed_report() -> Report:
    report = Report(
        meta={
            "run_id": "20260101T000000Z",
            "command": "python -m bench.perf.run --quick",
            "stack": "dev",
            "git_commit": "abc1234",
            "git_dirty": True,
            "host": {"cores": 2, "loadavg_start": [0.5, 0.4, 0.3], "loadavg_end": [1.0, 0.9, 0.8]},
            "api_workers": 1,
            "api_workers_config": None,
            "primary": "pg-0",
            "replicas": ["pg-1"],
            "wrk": "-t1 -c32",
            "pgbench": "-c8 -j2",
        },
        figures={
            "api_hit": http(7000.0, 2.0, server_cpu_us_per_req=100.0, server_cpu_cores=0.7),
            "api_miss": http(1500.0, 8.0),
            "bare": http(10000.0, 1.0, server_cpu_us_per_req=50.0, server_cpu_cores=0.5),
            "pg_write_direct": pgbench(1000.0),
            "pg_write_haproxy": pgbench(800.0),
        },
        # One phase, so the overall lag is that phase's.
        replication_lag={"interval_s": 0.1, "overall": LAG, "phases": {"api_post": LAG}},
        warnings=["the host was not idle."],
    )
    evaluate(report)
    return report


def test_evaluate_compares_each_ratio_with_its_goal() -> None:
    r = fixed_report().ratios
    assert list(r) == list(GOALS)
    assert r["hit_vs_bare"] == {
        "value": 0.7,
        "goal": ">= 0.7",
        "met": True,
        "meaning": GOALS["hit_vs_bare"][2],
    }
    assert (r["hit_vs_miss_p50"]["value"], r["hit_vs_miss_p50"]["met"]) == (0.25, True)
    # 1 - 800/1000 = 0.2 > 0.15: missed.
    assert (r["haproxy_write_overhead"]["value"], r["haproxy_write_overhead"]["met"]) == (
        0.2,
        False,
    )
    assert r["replication_lag_p99_ms"]["met"] is False


def test_evaluate_leaves_unmeasured_ratios_unknown() -> None:
    report = Report()
    evaluate(report)
    assert all(v["value"] is None and v["met"] is None for v in report.ratios.values())
    assert list(report.info_ratios) == list(INFO_RATIOS)


def test_evaluate_fills_supporting_ratios() -> None:
    info = fixed_report().info_ratios
    assert info["hit_vs_bare_cpu"]["value"] == 0.5
    assert info["hit_vs_miss_p50_c1"]["value"] is None


def test_markdown_has_every_section_and_row() -> None:
    md = render_markdown(fixed_report())
    for heading in (
        "# pgha bench 20260101T000000Z",
        "## Figures",
        "## Replication lag under write load",
        "## Ratios against goals",
        "Supporting ratios (no goal):",
        "## Warnings",
    ):
        assert heading in md
    assert "commit `abc1234` + local changes" in md
    assert "`pgha:apiWorkers` unset, default 1" in md
    assert "| API GET, cache hit | 7,000 req/s | 2.000 | 8.000 | 1,000 requests; " in md
    assert "| API PUT (-> HAProxy primary) | n/a | n/a | n/a | not measured |" in md
    assert "rounds 990, 1,010" in md
    assert "| **all write runs** | 3 | 1.00 | 250.00 | 250.00 | 4,096 |" in md
    assert "| `haproxy_write_overhead` | 0.200 | <= 0.15 | **no** |" in md
    assert md.endswith("- the host was not idle.\n")


def test_markdown_reports_a_failed_run() -> None:
    report = fixed_report()
    report.error = "BenchError: boom"
    assert "**The run failed:** BenchError: boom" in render_markdown(report)
    assert "The run failed" not in render_markdown(fixed_report())


def test_json_keeps_the_report_keys() -> None:
    data = json.loads(render_json(fixed_report()))
    assert list(data) == [
        "meta",
        "figures",
        "replication_lag",
        "ratios",
        "info_ratios",
        "warnings",
        "error",
    ]
    assert data["figures"]["bare"]["rate"] == 10000.0


def test_fmt_groups_thousands_and_marks_missing_values() -> None:
    assert (fmt(None), fmt(1234.5), fmt(0.12345, 3), fmt(12.0, 0)) == (
        "n/a",
        "1,234",
        "0.123",
        "12",
    )


def test_write_outputs_writes_json_markdown_and_a_png(tmp_path: Path) -> None:
    paths = write_outputs(fixed_report(), tmp_path, "run")
    assert [p.name for p in paths] == ["run.json", "run.md", "run.png"]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_compares_the_database_anchors_with_their_goals() -> None:
    report = fixed_report()
    report.figures |= {
        "bare_query": http(2000.0, 4.0, server_cpu_us_per_req=250.0, server_cpu_cores=0.5),
        "api_post": http(700.0, 20.0),
        "bare_insert": http(800.0, 18.0),
        "api_put": http(300.0, 40.0),
        "bare_update": http(600.0, 20.0),
        "twin_post_haproxy": http(450.0, 30.0),
        "twin_post_direct": http(500.0, 28.0),
    }
    report.figures["api_miss"] |= {"server_cpu_us_per_req": 1000.0, "server_cpu_cores": 0.9}
    evaluate(report)
    r = report.ratios
    # 1500/2000 = 0.75 < 0.9; 700/800 = 0.875 >= 0.8; 300/600 = 0.5; 1 - 450/500 = 0.1 <= 0.1.
    assert (r["miss_vs_bare_query"]["value"], r["miss_vs_bare_query"]["met"]) == (0.75, False)
    assert (r["post_vs_bare_insert"]["value"], r["post_vs_bare_insert"]["met"]) == (0.875, True)
    assert (r["put_vs_bare_update"]["value"], r["put_vs_bare_update"]["met"]) == (0.5, False)
    assert r["api_haproxy_write_overhead"]["met"] is True
    assert r["api_haproxy_write_overhead"]["goal"] == "<= 0.1"
    assert report.info_ratios["miss_vs_bare_query_cpu"]["value"] == 0.25
    md = render_markdown(report)
    assert "| `miss_vs_bare_query` | 0.750 | >= 0.9 | **no** |" in md
    assert "| `post_vs_bare_insert` | 0.875 | >= 0.8 | yes |" in md
    assert "| bare Starlette+psycopg SELECT (-> HAProxy replicas) | 2,000 req/s |" in md


def test_overhead_is_the_share_the_hop_costs() -> None:
    assert overhead(800.0, 1000.0) == pytest.approx(0.2)
    assert overhead(None, 1000.0) is None
    assert overhead(800.0, 0.0) is None


def test_chart_ratios_keeps_measured_unitless_ratios() -> None:
    rows = chart_ratios(fixed_report())
    assert [name for name, *_ in rows] == [
        "hit_vs_bare",
        "hit_vs_miss_p50",
        "haproxy_write_overhead",
    ]
    assert rows[2] == ("haproxy_write_overhead", 0.2, 0.15, False)


def test_the_direct_ratios_compare_one_instance_on_its_own_port_with_the_anchors() -> None:
    report = fixed_report()
    report.figures["twin_hit"] = http(9000.0, 1.5)
    report.figures["twin_miss"] = http(1800.0, 6.0)
    report.figures["bare_query"] = http(2000.0, 5.0)
    evaluate(report)
    r = report.ratios
    assert (r["hit_vs_bare_direct"]["value"], r["hit_vs_bare_direct"]["met"]) == (0.9, True)
    assert (r["miss_vs_bare_query_direct"]["value"], r["miss_vs_bare_query_direct"]["met"]) == (
        0.9,
        True,
    )
