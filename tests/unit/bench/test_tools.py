"""Parsers and command builders of bench/perf/tools.py, on output captured from the real tools."""

from __future__ import annotations

import pytest

from bench.common import BenchError
from bench.perf.tools import (
    MAX_HTTP_RATE,
    combine_http,
    http_failures,
    parse_pgbench,
    parse_pgbench_log,
    parse_redis_csv,
    parse_wrk,
    pgbench_args,
    pgbench_figure,
    redis_benchmark_command,
    wrk_command,
)

WRK_STDOUT = """\
Running 3s test @ http://127.0.0.1:8000
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.01ms    1.20ms  40.00ms   90.00%
  6000 requests in 3.00s, 1.50MB read
Requests/sec:   2000.00
PGHA_BENCH_JSON {"requests":6000.000,"duration_us":3000000.000,"bytes":1500000.000,\
"err_connect":0.000,"err_read":1.000,"err_write":0.000,"err_status":2.000,"err_timeout":3.000,\
"lat_min_us":900.000,"lat_mean_us":5012.500,"lat_stdev_us":1200.000,"lat_max_us":40000.000,\
"lat_p50_us":4800.000,"lat_p90_us":6500.000,"lat_p99_us":9999.400,"lat_p99.9_us":20000.000,\
"c_2xx":5990.000,"c_3xx":0.000,"c_4xx":2.000,"c_5xx":8.000,"c_hit":5900.000,"c_miss":90.000,\
"c_bypass":0.000,"c_nocache":10.000,"c_repeats":4.000,"c_capped":0.000}
"""

# redis-benchmark 7 with --csv (one row per test).
REDIS_CSV = """\
"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"GET","98039.22","0.180","0.056","0.167","0.279","0.383","1.047"
"""

PGBENCH_STDOUT = """\
pgbench (15.8 (Debian 15.8-0+deb12u1))
transaction type: <builtin: simple update>
scaling factor: 1
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 8 s
number of transactions actually processed: 12345
number of failed transactions: 7 (0.057%)
latency average = 5.184 ms
initial connection time = 12.020 ms
tps = 1543.125000 (without initial connection time)
"""

# pgbench -l: client, tx no, latency us, script, epoch s, epoch us (failed tx say "failed").
PGBENCH_LOG = """\
0 1 1500 0 1700000000 100
0 2 2500 0 1700000000 200
1 1 failed 0 1700000000 300
1 2 500 0 1700000000 400
"""


def test_parse_wrk_reads_the_tagged_line_in_ms_and_counts() -> None:
    fig = parse_wrk(WRK_STDOUT, "api_hit")
    assert fig["rate"] == 2000.0
    assert fig["requests"] == 6000
    assert fig["seconds"] == 3.0
    assert (fig["p50_ms"], fig["p90_ms"], fig["p99_ms"], fig["p999_ms"]) == (4.8, 6.5, 9.999, 20.0)
    assert fig["mean_ms"] == 5.013
    assert fig["max_ms"] == 40.0
    assert fig["errors"] == {"connect": 0, "read": 1, "write": 0, "status": 2, "timeout": 3}
    assert fig["status"] == {"2xx": 5990, "3xx": 0, "4xx": 2, "5xx": 8}
    assert fig["x_cache"] == {"hit": 5900, "miss": 90, "bypass": 0, "nocache": 10}
    assert fig["repeated_ids"] == 4
    assert fig["capped_threads"] == 0
    assert fig["kind"] == "http" and fig["rate_unit"] == "req/s"


def test_parse_wrk_without_the_report_line_is_an_error() -> None:
    with pytest.raises(BenchError, match="no report line"):
        parse_wrk("Requests/sec: 2000.00\n", "bare")


def test_http_failures_adds_transport_errors_4xx_and_5xx() -> None:
    assert http_failures(parse_wrk(WRK_STDOUT, "x")) == 6 + 2 + 8


def _run(rate: float, requests: int, p99: float, cpu: float | None = None) -> dict[str, object]:
    fig = parse_wrk(WRK_STDOUT, "x")
    fig.update(rate=rate, requests=requests, p99_ms=p99, seconds=3.0)
    if cpu is not None:
        fig.update(server_cpu_us_per_req=cpu, server_cpu_cores=0.5)
    return fig


def test_combine_http_averages_rates_and_percentiles_and_adds_counters() -> None:
    merged = combine_http([_run(1000, 3000, 10.0, cpu=100), _run(3000, 9000, 20.0, cpu=200)])
    assert merged["rate"] == 2000.0
    assert merged["p99_ms"] == 15.0
    assert merged["requests"] == 12000
    assert merged["seconds"] == 6.0
    assert merged["status"]["5xx"] == 16
    assert merged["rounds_rate"] == [1000, 3000]
    # CPU per request is weighted by requests: (100*3000 + 200*9000) / 12000.
    assert merged["server_cpu_us_per_req"] == 175.0


def test_combine_http_of_one_run_keeps_it_and_lists_its_rate() -> None:
    only = _run(1234.5, 10, 1.0)
    merged = combine_http([only])
    assert merged["rate"] == 1234.5
    assert merged["rounds_rate"] == [1234.5]


def test_parse_redis_csv_takes_the_get_row() -> None:
    fig = parse_redis_csv(REDIS_CSV)
    assert fig["rate"] == 98039.22
    assert (fig["p50_ms"], fig["p99_ms"], fig["mean_ms"], fig["max_ms"]) == (
        0.167,
        0.383,
        0.18,
        1.047,
    )


def test_parse_redis_csv_without_a_get_row_is_an_error() -> None:
    with pytest.raises(BenchError):
        parse_redis_csv('"test","rps"\n"SET","1"\n')


def test_parse_pgbench_reads_tps_count_failures_and_latency() -> None:
    assert parse_pgbench(PGBENCH_STDOUT) == {
        "tps": 1543.125,
        "transactions": 12345.0,
        "failed": 7.0,
        "latency_avg_ms": 5.184,
    }


def test_parse_pgbench_without_tps_is_an_error() -> None:
    with pytest.raises(BenchError, match="tps"):
        parse_pgbench("pgbench: error: connection refused\n")


def test_parse_pgbench_log_skips_failed_transactions() -> None:
    assert parse_pgbench_log(PGBENCH_LOG) == [1.5, 2.5, 0.5]


def test_pgbench_figure_means_tps_and_pools_latencies() -> None:
    runs = [
        ({"tps": 100.0, "transactions": 800.0, "failed": 0}, [1.0, 2.0]),
        ({"tps": 300.0, "transactions": None, "failed": 2.0}, [3.0, 4.0]),
    ]
    fig = pgbench_figure("pgbench write", runs)
    assert fig["rate"] == 200.0
    assert fig["rounds_tps"] == [100.0, 300.0]
    assert (fig["p50_ms"], fig["p99_ms"], fig["mean_ms"]) == (2.0, 4.0, 2.5)
    assert fig["transactions"] == 800
    assert fig["failed"] == 2


def test_wrk_command_caps_threads_and_bounds_requests_per_thread() -> None:
    cmd = wrk_command("http://127.0.0.1:1", "plain.lua", ["a"], threads=4, connections=2, seconds=3)
    assert cmd.threads == 2
    assert cmd.argv[:4] == ["wrk", "-t2", "-c2", "-d3s"]
    assert cmd.argv[-2:] == ["--", "a"]
    assert cmd.env["PGHA_BENCH_MAX_REQUESTS_PER_THREAD"] == str(MAX_HTTP_RATE * 3 // 2)


def test_redis_benchmark_command_keeps_the_password_out_of_argv() -> None:
    cmd = redis_benchmark_command("bench-user", 20000, 32)
    assert cmd[-3:] == ["bench-user", "20000", "32"]
    # Single mode's container has PGHA_REDIS_PASSWORD, a sentinel-mode node only the health
    # env; the script must reach either, and argv must hold no password.
    assert '-a "${PGHA_REDIS_PASSWORD:-$PGHA_HEALTH_PASSWORD}"' in cmd[2]


def test_pgbench_args_are_bounded_by_time_and_log_every_transaction() -> None:
    args = pgbench_args(
        "haproxy", 5432, clients=8, jobs=2, seconds=5, log_prefix="/tmp/x/tx", extra=["-N"]
    )
    assert args[args.index("-T") + 1] == "5"
    assert args[args.index("--log-prefix") + 1] == "/tmp/x/tx"
    assert args[-2:] == ["-N", "pgha"]
