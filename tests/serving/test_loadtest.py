"""The serving load test: its report, and a few requests against the test server."""

from __future__ import annotations

import dataclasses

import pytest

from serving import loadtest
from serving.batching import BatchingParameters
from serving.load_generator import Level
from serving.server import LocalModelServer

OFF, ON = loadtest.MODES["off"], loadtest.MODES["on"]


def test_overhead_targets_and_the_batching_gain_are_stated_under_the_table():
    floor = Level("in-process signature call (floor)", 1, [0.001] * 3, 0, 0.003)
    single = Level(OFF, 1, [0.0045] * 3, 0, 0.0135)
    batched_single = Level(ON, 1, [0.0065] * 3, 0, 0.0195)
    busy, batched_busy = Level(OFF, 8, [0.01] * 10, 0, 1.0), Level(ON, 8, [0.01] * 25, 0, 1.0)
    levels = [floor, single, busy, batched_single, batched_busy]
    text = loadtest.results_text(levels, "sentiment 1", "make bench-serving", "Setup.")
    assert "`make bench-serving`" in text and "Machine: " in text
    header = "| mode | concurrency | requests | errors | requests/s | mean | p50 | p95 | p99 |"
    assert header + " model call, mean |" in text
    assert f"| {ON} | 8 | 25 | 0 | 25 |" in text
    # The overhead is the unbatched server's: a batch's wait for company is not overhead.
    assert "one request at a time: p50 3.50 ms over the floor's (target p50 ≤ 2 ms: missed)" in text
    assert "with batching over without: ×0.69 at concurrency 1, ×2.50 at concurrency 8." in text
    assert "Errors: 0 (target 0: met)" in text


def test_with_the_servers_model_calls_the_overhead_is_judged_within_the_server():
    floor = Level("in-process signature call (floor)", 1, [0.001] * 3, 0, 0.003)
    single = dataclasses.replace(Level(OFF, 1, [0.0045] * 3, 0, 0.0135), model_call_ms=3.0)
    text = loadtest.results_text([floor, single], "sentiment 1", "make bench-serving", "Setup.")
    assert (
        "p50 3.50 ms over the floor's; mean latency 4.50 ms over the mean model call inside "
        "the server 3.00 ms: 1.50 ms (target p50 ≤ 2 ms: met)."
    ) in text


def test_with_each_requests_own_model_time_its_p50_overhead_is_judged():
    floor = Level("in-process signature call (floor)", 1, [0.001] * 3, 0, 0.003)
    # A slow tail of model calls lifts the mean, not the requests' own overheads.
    single = Level(OFF, 1, [0.004, 0.004, 0.040], 0, 0.048, model_call_ms=12.0)
    single.overheads_s = [0.0010, 0.0012, 0.0050]
    text = loadtest.results_text([floor, single], "sentiment 1", "make bench-serving", "Setup.")
    assert "mean model call inside the server 12.00 ms: 4.00 ms" in text
    assert (
        "each request's latency minus its own model call (`Server-Timing`, 3 requests): "
        "**p50 1.20 ms**"
    ) in text
    assert text.rstrip().split("\n")[-2].endswith("(target p50 ≤ 2 ms: met).")


@pytest.mark.parametrize("batching", ["off", "on"])
def test_a_tiny_run_against_the_test_server_has_no_errors(
    batching, exported_models, tmp_path, capsys
):
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\nkept\n")
    parameters = BatchingParameters() if batching == "on" else None
    with LocalModelServer(exported_models, port=0, batching_parameters=parameters) as server:
        arguments = ["--models-dir", str(exported_models), "--url", server.url]
        arguments += ["--batching", batching, "--concurrency", "1", "4"]
        arguments += ["--requests", "12", "--warmup", "2", "--floor-calls", "5"]
        assert loadtest.main([*arguments, "--output", str(output)]) == 0
    text = output.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n")
    section = text[
        text.index("<!-- bench:serving:start -->") : text.index("<!-- bench:serving:end")
    ]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")][2:]
    mode = loadtest.MODES[batching]
    assert [(row[0], row[1], row[2], row[3]) for row in rows[1:]] == [
        (f"| {mode}", "1", "12", "0"),
        (f"| {mode}", "4", "12", "0"),
    ]
    # The server's runtime metric gives each level its mean model call.
    assert all(row[-1].endswith(" ms |") for row in rows)
    assert (rows[0][1], rows[0][2]) == ("1", "5")
    assert "`python -m serving.loadtest --models-dir" in section
    assert ("Batching: `--enable-batching`, batches of up to 32" in section) == (batching == "on")
    assert "Errors: 0 (target 0: met)" in section
    # Unbatched, each answer carries its own model time: the judged overhead is per request.
    assert ("minus its own model call (`Server-Timing`, 12 requests)" in section) == (
        batching == "off"
    )
    assert f"sentiment version 1 from {exported_models}" in capsys.readouterr().out


def test_a_running_server_is_measured_in_the_one_mode_it_runs(capsys):
    with pytest.raises(SystemExit):
        loadtest.main(["--url", "http://127.0.0.1:8501"])
    assert "add --batching off or on" in capsys.readouterr().err
