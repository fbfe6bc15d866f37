"""A tuned sentiment run on synthetic reviews: every trial is a nested MLflow run, and train
(in the same run) builds the model with the best values; ``--tune`` is what adds the stage."""

import mlflow
import pytest

from pipelines.__main__ import main
from pipelines.registry import resolve_config
from pipelines.runner import run_pipeline
from pipelines.sentiment import pipeline as sentiment
from pipelines.spec import CONFIG_DIR
from tests.conftest import write_acl_imdb


@pytest.mark.e2e  # the real sentiment stages, tune and train included
def test_train_uses_the_best_values_of_the_tune_stage(tmp_path, mlflow_store):
    mirror = tmp_path / "mirror"
    write_acl_imdb(mirror, per_split=40)
    config = resolve_config(
        "sentiment",
        CONFIG_DIR / "sentiment.smoke.yaml",
        None,
        [
            "data.source=local",
            f"data.data_dir={mirror}",
            "preprocess.sequence_length=30",
            "train.epochs=1",
            "tune.max_trials=3",
            "tune.epochs_per_trial=1",
            # Neither is the smoke config's gru x 16, so train can only have them from tune.
            "tune.space[model.cell].choices=[lstm,simple_rnn]",
            "tune.space[model.units].choices=[4,6]",
        ],
    )
    stages = sentiment.SPEC.stages_to_run(tune=True, until="train")
    result = run_pipeline("sentiment", config, stages, tmp_path / "artifacts")

    tuned = result.outputs["tune"].load()
    best = tuned["best"]
    assert best["model.cell"] in ("lstm", "simple_rnn") and best["model.units"] in (4, 6)
    assert len(tuned["trials"]) == 3
    assert tuned["best_score"] == min(trial["score"] for trial in tuned["trials"])
    recurrent = result.outputs["train"].load().get_layer(f"{best['model.cell']}_0")
    assert recurrent.units == best["model.units"]

    runs = mlflow.search_runs(experiment_names=["sentiment"], output_format="list")
    by_name = {run.info.run_name: run for run in runs}
    trials = [run for run in runs if "trial" in run.data.tags]
    assert len(trials) == 3
    assert {run.data.tags["mlflow.parentRunId"] for run in trials} == {by_name["tune"].info.run_id}
    for trial in trials:
        assert trial.info.status == "FINISHED"
        assert trial.data.params["model.cell"] in ("lstm", "simple_rnn")
        assert {"loss", "val_loss", "score"} <= set(trial.data.metrics)
    assert by_name["tune"].data.params["best.model.cell"] == best["model.cell"]
    # Train logs the values it applied, so a comparison of runs shows what was trained.
    assert by_name["train"].data.params["model.cell"] == best["model.cell"]


def test_the_tune_stage_is_only_there_with_the_flag(tmp_path, mlflow_store, capsys):
    arguments = ["run", "sentiment", "--stage", "tune", "--artifacts-root", str(tmp_path)]
    assert main(arguments) == 2
    assert "unknown stage 'tune'" in capsys.readouterr().err
    assert main([*arguments, "--tune"]) == 2
    assert "stage tune needs the output of ['ingest', 'preprocess']" in capsys.readouterr().err
