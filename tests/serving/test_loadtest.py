"""The serving load test: its statistics and table, and a few requests against the test server."""

from __future__ import annotations

import math

import pytest

from serving import loadtest
from serving.server import LocalModelServer


def test_percentiles_interpolate_and_rows_format_milliseconds():
    latencies = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert loadtest.percentiles_ms(latencies) == pytest.approx([50.5, 95.05, 99.01])
    assert all(math.isnan(value) for value in loadtest.percentiles_ms([]))
    level = loadtest.Level("server, loopback HTTP", 8, latencies, errors=2, wall_s=0.5)
    assert level.row() == {
        "mode": "server, loopback HTTP",
        "concurrency": "8",
        "requests": "102",
        "errors": "2",
        "requests/s": "200",
        "p50": "50.50 ms",
        "p95": "95.05 ms",
        "p99": "99.01 ms",
    }
    failed = loadtest.Level("server, loopback HTTP", 1, [], errors=3, wall_s=0.0).row()
    assert (failed["requests/s"], failed["p50"], failed["errors"]) == ("-", "-", "3")


def test_overhead_and_targets_are_stated_under_the_table():
    floor = loadtest.Level("in-process signature call (floor)", 1, [0.001] * 3, 0, 0.003)
    single = loadtest.Level("server, loopback HTTP", 1, [0.0045] * 3, 0, 0.0135)
    text = loadtest.results_text([floor, single], "sentiment 1", "make bench-serving", "Setup.")
    assert "`make bench-serving`" in text and "Machine: " in text
    assert "| mode | concurrency | requests | errors | requests/s | p50 | p95 | p99 |" in text
    assert "at p50, one request at a time: 3.50 ms (target ≤ 2 ms: missed)" in text
    assert "Errors: 0 (target 0: met)" in text


def test_a_tiny_run_against_the_test_server_has_no_errors(exported_models, tmp_path, capsys):
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\nkept\n")
    with LocalModelServer(exported_models, port=0) as server:
        arguments = ["--models-dir", str(exported_models), "--url", server.url]
        arguments += ["--concurrency", "1", "4", "--requests", "12", "--warmup", "2"]
        assert loadtest.main([*arguments, "--floor-calls", "5", "--output", str(output)]) == 0
    text = output.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n")
    section = text[
        text.index("<!-- bench:serving:start -->") : text.index("<!-- bench:serving:end")
    ]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")][2:]
    assert [(row[1], row[2], row[3]) for row in rows] == [
        ("1", "5", "0"),
        ("1", "12", "0"),
        ("4", "12", "0"),
    ]
    assert "`python -m serving.loadtest --models-dir" in section
    assert "Errors: 0 (target 0: met)" in section
    assert f"sentiment version 1 from {exported_models}" in capsys.readouterr().out
