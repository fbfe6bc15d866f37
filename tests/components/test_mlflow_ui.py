"""The run page link a pipeline prints, opened in a real headless Chromium against `mlflow server`.

MLflow 3's UI starts a fresh browser in its GenAI view; the link must land on the run among the
experiment's training runs, with its metrics. `.ci/run` installs Debian's chromium when missing.
"""

from __future__ import annotations

import html
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest

from components import tracking

GENAI_ONLY = ("Observability", "Evaluation runs", "Playground")


@pytest.fixture(scope="module")
def ui(tmp_path_factory, monkeypatch_module, empty_mlflow_db):
    root = tmp_path_factory.mktemp("mlflow-ui")
    shutil.copyfile(empty_mlflow_db, root / "mlflow.db")  # migrated: the server starts sooner
    store = f"sqlite:///{root / 'mlflow.db'}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store]
    command += ["--default-artifact-root", str(root / "artifacts"), "--workers", "1"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    previous_uri = mlflow.get_tracking_uri()
    try:
        _wait_for(url, server)
        monkeypatch_module.setenv("MLFLOW_TRACKING_URI", url)
        yield url
    finally:
        mlflow.set_tracking_uri(previous_uri)
        server.terminate()
        server.wait(30)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _wait_for(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow server exited"
        try:
            with urllib.request.urlopen(url + "/health", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"mlflow server not up at {url} after {timeout:.0f} s")


def rendered_text(url: str) -> str:
    """The page's text once its scripts have run (Chromium's DOM after 20 s of virtual time)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed (apt-get install chromium; .ci/run does it)"
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    command += ["--virtual-time-budget=20000", "--dump-dom", url]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    dom = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", dom, flags=re.S)
    return html.unescape(re.sub(r"\s*(<[^>]+>\s*)+", " | ", dom))


def test_the_printed_run_page_opens_the_run_among_training_runs(ui):
    tracking.configure("sentiment-ui-check")
    with mlflow.start_run(run_name="sentiment-ui-check-run") as run:
        mlflow.log_metric("test_accuracy", 0.8716)
    link = tracking.run_page_url(run.info.run_id)
    assert link.startswith(ui + "/#/experiments/")

    page = rendered_text(link)

    assert "sentiment-ui-check-run" in page and "test_accuracy | 0.8716" in page
    assert "| Runs |" in page  # the breadcrumb: the experiment's training runs
    assert not any(word in page for word in GENAI_ONLY)
    # The bare link (no view asked for) lands in the GenAI view: why the link carries it.
    bare = rendered_text(link.split("?")[0])
    assert "Observability" in bare
