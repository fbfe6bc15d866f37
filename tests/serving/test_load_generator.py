"""The serving benchmark's load: latency percentiles and the table row of a level."""

from __future__ import annotations

import math

import pytest

from serving import load_generator


def test_percentiles_interpolate_and_rows_format_milliseconds():
    latencies = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert load_generator.percentiles_ms(latencies) == pytest.approx([50.5, 95.05, 99.01])
    assert all(math.isnan(value) for value in load_generator.percentiles_ms([]))
    level = load_generator.Level("server, loopback HTTP", 8, latencies, errors=2, wall_s=0.5)
    assert level.row() == {
        "mode": "server, loopback HTTP",
        "concurrency": "8",
        "requests": "102",
        "errors": "2",
        "requests/s": "200",
        "mean": "50.50 ms",
        "p50": "50.50 ms",
        "p95": "95.05 ms",
        "p99": "99.01 ms",
        "model call, mean": "-",  # known only from a server's metrics
    }
    failed = load_generator.Level("server, loopback HTTP", 1, [], errors=3, wall_s=0.0).row()
    assert (failed["requests/s"], failed["p50"], failed["errors"]) == ("-", "-", "3")


@pytest.mark.parametrize(
    "header, model_ms",
    [
        ("model;dur=18.625", 18.625),
        ('db;dur=3, model;desc="signature call";dur=7.5', 7.5),
        ("total;dur=9", None),
        (None, None),
    ],
)
def test_the_model_time_is_read_from_a_server_timing_header(header, model_ms):
    assert load_generator._model_ms(header) == model_ms
