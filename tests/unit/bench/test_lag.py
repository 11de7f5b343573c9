"""The lag sampler's pure parts: Docker's exec stream framing, LAG_SQL rows, summaries."""

from __future__ import annotations

from bench.perf.lag import FrameDecoder, LagSample, parse_lag_row, summarize_lag


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_frame_decoder_keeps_stdout_and_drops_stderr() -> None:
    data = frame(1, b"12|3\n") + frame(2, b"WARNING\n") + frame(1, b"__end__\n")
    assert FrameDecoder().feed(data) == b"12|3\n__end__\n"


def test_frame_decoder_reassembles_frames_split_anywhere() -> None:
    data = frame(1, b"hello ") + frame(1, b"world\n")
    decoder = FrameDecoder()
    out = b"".join(decoder.feed(data[i : i + 3]) for i in range(0, len(data), 3))
    assert out == b"hello world\n"


def test_parse_lag_row_turns_minus_one_into_none() -> None:
    assert parse_lag_row("0.0125|2048|1", 5.0) == LagSample(5.0, 12.5, 2048, 1)
    assert parse_lag_row("-1|-1|0", 6.0) == LagSample(6.0, None, None, 0)


def test_summarize_lag_counts_null_lag_as_caught_up() -> None:
    samples = [
        LagSample(0, None, 0, 1),
        LagSample(1, 4.0, 100, 1),
        LagSample(2, 50.0, 9000, 1),
        LagSample(3, 2.0, None, 0),
    ]
    s = summarize_lag(samples)
    assert s["samples"] == 4
    assert s["null_samples"] == 1
    assert s["no_replica_samples"] == 1
    assert (s["p50_ms"], s["p99_ms"], s["max_ms"]) == (2.0, 50.0, 50.0)
    assert (s["behind_bytes_p99"], s["behind_bytes_max"]) == (9000, 9000)


def test_summarize_lag_of_no_samples_has_no_figures() -> None:
    s = summarize_lag([])
    assert (s["samples"], s["p99_ms"], s["max_ms"], s["behind_bytes_max"]) == (0, None, None, None)
