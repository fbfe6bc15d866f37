"""The HTTP-layer comparison behind the server's choice: both layers measured, errors compared."""

from __future__ import annotations

from serving import http_layers


def test_both_layers_are_measured_and_their_answers_to_malformed_requests_shown(tmp_path):
    output = tmp_path / "BENCHMARKS.md"

    assert http_layers.main(["--rounds", "2", "--requests", "20", "--output", str(output)]) == 0

    section = output.read_text()
    assert "`make bench-http-layers`" in section
    rows = [line for line in section.splitlines() if line.startswith(("| ours", "| uvicorn"))]
    assert len(rows) == 4  # two layers x concurrency 1 and 8
    garbage = next(line for line in section.splitlines() if line.startswith("| garbage"))
    # Ours answers the HTTP layer's own errors with TF Serving's JSON error body.
    assert '`HTTP/1.1 400 Bad Request` \'{"error"' in garbage.split(" | ")[1]
