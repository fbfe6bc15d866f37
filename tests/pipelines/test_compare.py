"""``compare`` reads finished pipeline runs back from MLflow into a table, a plot and a report run.

The runs here go through the real runner and MLflow store with stand-in stages that log what the
sentiment pipeline's train and evaluate stages log, so no model is trained.
"""

import dataclasses

import mlflow
import pandas as pd
import pytest

from components import tracking
from components.artifacts import Metrics
from components.errors import DataError
from pipelines import compare
from pipelines.__main__ import main
from pipelines.runner import run_pipeline
from pipelines.spec import Stage


@dataclasses.dataclass
class TinyConfig:
    @dataclasses.dataclass
    class Model:
        cell: str = "gru"
        units: int = 8
        tuned_units: int | None = None
        """Stands in for a tune stage: train logs it as the model.units it used."""

    model: Model = dataclasses.field(default_factory=Model)


def stage(metrics):
    def run(config, inputs, out_dir):
        out_dir.mkdir(parents=True)
        (out_dir / "metrics.json").write_text("{}")
        tracking.log_metrics(metrics(config.model))
        if config.model.tuned_units is not None:
            tracking.log_params({"model.units": config.model.tuned_units})
        return Metrics(out_dir)

    return run


def failing(config, inputs, out_dir):
    raise DataError("interrupted")


ACCURACY = {"gru": 0.8, "lstm": 0.9}
STAGES = [
    Stage(
        "train",
        stage(lambda model: {"train_wall_time_s": 10.0}),
        Metrics,
        config_sections=("model",),
    ),
    Stage(
        "evaluate",
        stage(lambda model: {"test_accuracy": ACCURACY[model.cell], "test_loss": 0.4}),
        Metrics,
        ("train",),
        config_sections=("model",),
    ),
]


def pipeline_run(tmp_path, cell: str, tuned_units: int | None = None, stages=STAGES):
    config = TinyConfig(TinyConfig.Model(cell=cell, tuned_units=tuned_units))
    return run_pipeline("sentiment", config, stages, tmp_path / "artifacts")


def test_finished_runs_become_a_table_a_plot_and_a_compare_run(tmp_path, mlflow_store, capsys):
    gru = pipeline_run(tmp_path, "gru")
    lstm = pipeline_run(tmp_path, "lstm", tuned_units=32)
    with pytest.raises(DataError):
        pipeline_run(tmp_path, "lstm", stages=[STAGES[0], Stage("evaluate", failing, Metrics)])

    table_path = compare.run("sentiment", tmp_path / "compare")

    table = pd.read_csv(tmp_path / "compare" / "compare.csv", dtype={"model.units": str})
    assert list(table["run"]) == [lstm.run_id, gru.run_id]  # newest first; the failed run left out
    assert list(table["model.cell"]) == ["lstm", "gru"]
    assert list(table["model.units"]) == ["32", "8"]  # the value train logged wins
    assert "model.tuned_units" in table  # it differs too; equal params are left out
    assert list(table["test_accuracy"]) == [0.9, 0.8]
    assert list(table["train_wall_time_s"]) == [10.0, 10.0]
    assert "test_roc_auc" not in table  # not logged by any run
    assert table_path.read_text().splitlines()[2].startswith("| run | model.cell |")
    assert (tmp_path / "compare" / "compare.png").stat().st_size > 0

    (report,) = mlflow.search_runs(
        experiment_names=["sentiment"],
        filter_string="tags.report = 'compare'",
        output_format="list",
    )
    assert report.info.run_name == "compare" and report.info.status == "FINISHED"
    logged = {item.path for item in mlflow.MlflowClient().list_artifacts(report.info.run_id)}
    assert logged == {"compare.md", "compare.csv", "compare.png"}

    # The report run is not a pipeline run: comparing again still sees the same two, or the last.
    output = str(tmp_path / "again")
    assert main(["compare", "sentiment", "--last", "1", "--output-dir", output]) == 0
    printed = capsys.readouterr().out
    assert lstm.run_id in printed and gru.run_id not in printed


def test_no_finished_runs_is_a_clear_error(tmp_path, mlflow_store, capsys):
    assert main(["compare", "sentiment", "--output-dir", str(tmp_path / "compare")]) == 2
    assert "no finished sentiment run with test metrics" in capsys.readouterr().err
    assert not (tmp_path / "compare").exists()
