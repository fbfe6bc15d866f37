"""Distributed tuning with KerasTuner's chief and two worker processes on loopback."""

import json
import os

import mlflow
import pytest

from components.errors import DataError, PipelineError
from pipelines import tune_workers
from pipelines.__main__ import main
from pipelines.spec import CONFIG_DIR
from tests.conftest import REPOSITORY, write_acl_imdb


def settings(mirror) -> list[str]:
    values = [
        "data.source=local",
        f"data.data_dir={mirror}",
        "preprocess.sequence_length=30",
        "train.epochs=1",
        "tune.algorithm=random",
        "tune.max_trials=4",
        "tune.epochs_per_trial=1",
        "tune.space[model.cell].choices=[lstm,gru]",
        "tune.space[model.units].choices=[4,6,8,10]",
    ]
    return [item for value in values for item in ("--set", value)]


@pytest.mark.e2e  # three processes, each a sentiment pipeline's tune stage
def test_every_trial_runs_once_across_the_workers_and_train_uses_the_best(
    tmp_path, mlflow_store, monkeypatch
):
    # The chief and the workers are subprocesses: they import this checkout's code, not that of
    # whichever checkout the virtual environment was installed from.
    python_path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", python_path)
    mirror = tmp_path / "mirror"
    write_acl_imdb(mirror, per_split=40)
    arguments = ["run", "sentiment", "--config", str(CONFIG_DIR / "sentiment.smoke.yaml")]
    arguments += ["--tune", "--tune-workers", "2", "--until", "train"]
    arguments += ["--artifacts-root", str(tmp_path / "runs")]
    arguments += settings(mirror)

    assert main(arguments) == 0

    [run_dir] = (tmp_path / "runs" / "sentiment").glob("2*")
    chief = json.loads((run_dir / "tune" / "hyperparameters" / "hyperparameters.json").read_text())
    assert len(chief["trials"]) == 4 and all(t["score"] is not None for t in chief["trials"])
    ran = {}
    for record in sorted(run_dir.glob("tune_workers/*/hyperparameters.json")):
        worker = json.loads(record.read_text())
        ran[worker["tuner_id"]] = worker["trials_run"]
    every = [trial for trials in ran.values() for trial in trials]
    # Each trial the oracle handed out ran exactly once, on one of the workers.
    assert sorted(every) == sorted(t["trial"] for t in chief["trials"])
    assert set(ran) <= {"tuner0", "tuner1"}
    manifest = json.loads((run_dir / "train" / "manifest.json").read_text())
    assert manifest["tuned_values"] == chief["best"]

    runs = mlflow.search_runs(experiment_names=["sentiment"], output_format="list")
    trial_runs = [run for run in runs if "trial" in run.data.tags]
    assert sorted(run.data.tags["trial"] for run in trial_runs) == sorted(
        f"trial_{trial}" for trial in every
    )
    workers = {run.data.tags["tune_worker"] for run in runs if "tune_worker" in run.data.tags}
    assert workers == set(ran)
    # Both workers ran trials: one worker running all four would pass every check above.
    assert sorted(ran) == ["tuner0", "tuner1"] and all(ran.values()), ran


def test_a_worker_needs_the_oracle_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("KERASTUNER_ORACLE_IP", raising=False)
    with pytest.raises(PipelineError, match="KERASTUNER_ORACLE_IP"):
        tune_workers.run_worker("sentiment", None, tmp_path, "some-run")


def test_a_failing_worker_stops_the_search_and_fails_the_command(tmp_path, monkeypatch):
    # A config the worker cannot load fails it at once; the chief must not wait for it forever.
    monkeypatch.setenv("RNN_DATA_DIR", str(tmp_path / "nowhere"))
    code = tune_workers.launch(
        "sentiment", 1, ["--set", "train.epochz=1"], tmp_path / "runs", pin_cores=False
    )
    assert code == 1
    assert not os.path.exists(tmp_path / "runs" / "sentiment" / "tune")


def test_a_worker_record_has_no_best_values(tmp_path):
    from components.artifacts import Hyperparameters

    (tmp_path / "hyperparameters.json").write_text('{"tuner_id": "tuner0", "trials_run": []}')
    with pytest.raises(DataError, match="the chief's run"):
        Hyperparameters(tmp_path).overrides()
