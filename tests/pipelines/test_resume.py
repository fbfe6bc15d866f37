"""A pipeline killed with SIGKILL mid-training resumes from its last epoch when rerun."""

import json
import os
import signal
import subprocess
import sys

import mlflow
import pytest

from pipelines.__main__ import main
from tests.conftest import CONFIGS, REPOSITORY, wait_for_epochs

pytestmark = pytest.mark.e2e
SMOKE_CONFIG = CONFIGS / "sentiment.smoke.yaml"
EPOCHS = 5


def test_sigkilled_run_resumes_training_and_reuses_finished_stages(
    imdb_mirror, mlflow_store, tmp_path
):
    arguments = ["run", "sentiment", "--config", str(SMOKE_CONFIG), "--until", "train"]
    arguments += ["--artifacts-root", str(tmp_path / "artifacts")]
    for setting in (
        f"train.epochs={EPOCHS}",
        f"train.early_stopping_patience={EPOCHS}",
    ):
        arguments += ["--set", setting]
    # The working directory is tmp_path (mlflow_store moved there), so MLflow's ./mlruns lands
    # there too; PYTHONPATH makes `-m pipelines` this checkout's code, as in the rerun below.
    python_path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", *arguments],
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PYTHONPATH": python_path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pipeline_dir = tmp_path / "artifacts" / "sentiment"
    try:
        wait_for_epochs(process, pipeline_dir, epochs=2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    (killed_run,) = pipeline_dir.glob("2*")
    assert not (killed_run / "train").exists()

    assert main(arguments) == 0
    rerun = max(pipeline_dir.glob("2*"))
    manifests = {
        stage: json.loads((rerun / stage / "manifest.json").read_text())
        for stage in ("ingest", "preprocess", "train")
    }
    assert manifests["ingest"]["cached_from"]["run_id"] == killed_run.name
    assert manifests["preprocess"]["cached_from"]["run_id"] == killed_run.name
    assert "cached_from" not in manifests["train"]
    summary = json.loads((rerun / "train" / "trained_model" / "training.json").read_text())
    assert summary["resumed_after_epoch"] >= 1 and summary["epochs_run"] == EPOCHS

    killed = {
        run.info.run_id: run.info.status
        for run in mlflow.search_runs(experiment_names=["sentiment"], output_format="list")
    }
    assert [killed[i] for i in manifests["train"]["resumed_from_mlflow_runs"]] == ["KILLED"] * 2
    assert (tmp_path / "mlruns").is_dir()  # both attempts' MLflow artifacts stayed under tmp
