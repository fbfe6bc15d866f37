"""The client against `python -m serving.server` in its own process, as `make serve` runs it."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from components.forecasting import requests
from serving import client
from tests.conftest import synthetic_review

REPOSITORY = Path(__file__).resolve().parents[2]
POSITIVE, NEGATIVE = (synthetic_review(label, random.Random(11)) for label in (1, 0))


@pytest.fixture(scope="module")
def server_url(exported_models, tmp_path_factory):
    """`python -m serving.server` on a free port over the exported models, for the module."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    command = [sys.executable, "-m", "serving.server", "--models-dir", str(exported_models)]
    command += ["--no-grpc"]  # the gRPC API has its own tests; a fixed port could be taken here
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, log_path)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)  # as docker stop and Kubernetes stop it
        try:
            assert process.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("the server did not stop within 30 s of SIGTERM")


def _wait_until_serving(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            client.call(url, client.model_path("sentiment"))
            return
        except client.ServingClientError:
            time.sleep(0.5)
    pytest.fail(f"the server did not answer in time:\n{log_path.read_text()}")


def test_texts_print_the_label_name_its_score_and_the_text(server_url, capsys):
    arguments = ["--url", server_url, "--model", "sentiment", "--text", POSITIVE]
    assert client.main([*arguments, "--text", NEGATIVE]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(label, text) for label, _, text in lines] == [
        ("positive", POSITIVE),
        ("negative", NEGATIVE),
    ]
    assert float(lines[0][1]) > 0.5 and float(lines[1][1]) > 0.5  # the chosen class's score


def test_a_prompt_calls_the_generate_signature(server_url, capsys):
    arguments = ["--url", server_url, "--model", "lm_char", "--prompt", "abc", "--length", "12"]
    assert client.main([*arguments, "--temperature", "0", "--label", "stable"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("abc") and len(printed) == len("abc") + 12 + 1  # and print's "\n"
    same = client.generate(server_url, "lm_char", "abc", 12, temperature=0.0, version=1)
    assert printed == same + "\n"


def test_other_models_print_each_prediction_as_json(server_url, capsys):
    assert client.main(["--url", server_url, "--model", "lm_char", "--text", "ab"]) == 0
    prediction = json.loads(capsys.readouterr().out)
    assert set(prediction) == {"log_probabilities", "next_token", "next_token_id"}


def test_status_and_metadata(server_url, capsys):
    assert client.main(["--url", server_url, "--model", "sentiment", "--status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert client.main(["--url", server_url, "--model", "lm_char", "--metadata"]) == 0
    signatures = json.loads(capsys.readouterr().out)["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "generate"} <= set(signatures)


def test_a_sales_history_csv_is_forecast_as_the_forecast_command_does(
    server_url, exported_models, tmp_path, capsys
):
    history = exported_models.parent / "shop.csv"
    output = tmp_path / "forecast.csv"
    arguments = ["--url", server_url, "--model", "shop", "--csv", str(history)]
    local = ["--models-dir", str(exported_models)]
    assert client.main([*arguments, *local, "--output", str(output)]) == 0
    served = pd.read_csv(output)
    assert len(served) == 4 * 8 and sorted(served["step"].unique()) == list(range(1, 9))
    direct = requests.run(exported_models / "shop" / "1", history, tmp_path / "direct.csv")
    assert list(served.columns) == list(direct.columns)
    assert (served["week"] == direct["week"]).all() and (served["sku"] == direct["sku"]).all()
    assert served["forecast"].to_numpy() == pytest.approx(direct["forecast"].to_numpy(), rel=1e-5)
    capsys.readouterr()
    info = exported_models / "shop" / "1" / "assets.extra" / requests.REQUEST_INFO
    assert client.main([*arguments, "--request-info", str(info)]) == 0  # the CSV on stdout
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == ",".join(direct.columns) and len(printed.splitlines()) == 33
    assert client.main([*arguments, "--models-dir", str(tmp_path)]) == 1
    assert "pass --request-info" in capsys.readouterr().err


def test_errors_print_the_server_message_and_exit_1(server_url, capsys):
    assert client.main(["--url", server_url, "--model", "nope", "--text", "x"]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert client.main(["--url", server_url, "--version", "7", "--text", "x"]) == 1
    assert "Servable not found for request: Specific(sentiment, 7)" in capsys.readouterr().err
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert client.main(["--url", closed, "--text", "x"]) == 1
    assert "cannot reach" in capsys.readouterr().err
