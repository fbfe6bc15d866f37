import json
from pathlib import Path

import mlflow
import pytest

from components import bless, tracking
from components.artifacts import Metrics
from components.bless import BlessingConfig, ThresholdConfig
from components.errors import ConfigError
from components.export import ExportConfig


def metrics(folder: Path, scores: dict) -> Metrics:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(scores))
    return Metrics(folder)


def served(serving_dir: Path, version: int, scores: dict | None) -> Path:
    """A pushed version directory; ``scores``: the metrics its evaluation.json records."""
    version_dir = serving_dir / "model" / str(version)
    (version_dir / "assets.extra").mkdir(parents=True)
    if scores is not None:
        evaluation = {"blessed": True, "metrics": scores}
        (version_dir / "assets.extra" / "evaluation.json").write_text(json.dumps(evaluation))
    return version_dir


def thresholds_only(*thresholds: ThresholdConfig) -> BlessingConfig:
    return BlessingConfig(baseline="ignore", champion_tolerance=None, thresholds=list(thresholds))


def judge(tmp_path, scores: dict, *thresholds: ThresholdConfig, config=None) -> dict:
    export = ExportConfig(model_name="model", serving_dir=str(tmp_path / "models"))
    candidate = metrics(tmp_path / "candidate", scores)
    config = config or thresholds_only(*thresholds)
    verdict = bless.run(config, candidate, export.model_dir, tmp_path / "out")
    assert verdict.blessed == verdict.load()["blessed"]
    return verdict.load()


@pytest.mark.parametrize(
    ("value", "blessed"), [(0.85, True), (0.86, True), (0.8499, False), (float("nan"), False)]
)
def test_lower_bound(tmp_path, value, blessed):
    verdict = judge(tmp_path, {"accuracy": value}, ThresholdConfig("accuracy", lower_bound=0.85))
    assert verdict["blessed"] is blessed


@pytest.mark.parametrize(("value", "blessed"), [(120.0, True), (119.0, True), (120.5, False)])
def test_upper_bound_on_a_nested_metric(tmp_path, value, blessed):
    threshold = ThresholdConfig("test.perplexity", higher_is_better=False, upper_bound=120)
    verdict = judge(tmp_path, {"test": {"perplexity": value}}, threshold)
    assert verdict["blessed"] is blessed
    assert verdict["reasons"] == [
        f"test.perplexity {value:g} <= upper bound 120: {'pass' if blessed else 'FAIL'}"
    ]


@pytest.mark.parametrize(("value", "blessed"), [(0.875, True), (0.87, True), (0.869, False)])
def test_max_regression_below_the_served_model(tmp_path, value, blessed):
    served(tmp_path / "models", 1, {"accuracy": 0.88})
    threshold = ThresholdConfig("accuracy", max_regression=0.01)
    verdict = judge(tmp_path, {"accuracy": value}, threshold)
    assert verdict["blessed"] is blessed
    assert verdict["baseline"]["values"] == {"accuracy": 0.88}


@pytest.mark.parametrize(("value", "blessed"), [(101.9, True), (90.0, True), (102.1, False)])
def test_max_relative_regression_when_lower_is_better(tmp_path, value, blessed):
    served(tmp_path / "models", 1, {"wmae": 100.0})
    threshold = ThresholdConfig("wmae", higher_is_better=False, max_relative_regression=0.02)
    assert judge(tmp_path, {"wmae": value}, threshold)["blessed"] is blessed


def test_a_first_model_is_judged_on_its_absolute_bounds_alone(tmp_path):
    threshold = ThresholdConfig("accuracy", lower_bound=0.5, max_regression=0.0)
    verdict = judge(tmp_path, {"accuracy": 0.6}, threshold)
    assert verdict["blessed"] and verdict["baseline"] is None
    assert verdict["reasons"] == [
        "accuracy 0.6 >= lower bound 0.5: pass",
        "accuracy: no model is served yet, change checks skipped",
    ]
    failing = judge(tmp_path, {"accuracy": 0.4}, threshold)
    assert not failing["blessed"]


def test_the_baseline_is_the_newest_version_without_a_registry(tmp_path):
    served(tmp_path / "models", 1, {"accuracy": 0.95})
    served(tmp_path / "models", 2, {"accuracy": 0.80})
    verdict = judge(tmp_path, {"accuracy": 0.81}, ThresholdConfig("accuracy", max_regression=0))
    assert verdict["blessed"]
    assert verdict["baseline"]["version"] == 2
    assert verdict["baseline"]["source"] == "local folder (no active MLflow run)"


def registered(tmp_path, scores: dict | None, serving_version: int) -> int:
    """A registered version of ``model`` made champion, as export leaves one, pushed to
    ``serving_version`` of some other machine's folder: its evaluation.json (unless ``scores`` is
    None) lives only in the registry, under the SavedModel the registered model carries."""
    source = tmp_path / "registry" / str(serving_version)
    extra = source / "artifacts" / tracking.SAVED_MODEL_ARTIFACT / "assets.extra"
    extra.mkdir(parents=True)
    if scores is not None:
        evaluation = {"blessed": True, "metrics": scores, "dataset": "imdb"}
        (extra / "evaluation.json").write_text(json.dumps(evaluation))
    client = mlflow.MlflowClient()
    if not client.search_registered_models("name = 'model'"):
        client.create_registered_model("model")
    version = int(client.create_model_version("model", source=str(source)).version)
    tags = {"serving_version": serving_version, "serving_path": f"gs://other/model/{version}"}
    tracking.tag_registered_version("model", version, tags)
    tracking.set_champion("model", version)
    return version


def test_the_registrys_champion_is_the_baseline_not_a_stale_local_folder(tmp_path, mlflow_store):
    served(tmp_path / "models", 1, {"accuracy": 0.80})  # this machine's folder: old and worse
    threshold = ThresholdConfig("accuracy", max_regression=0)
    tracking.configure("tests")
    with mlflow.start_run():
        registered(tmp_path, {"accuracy": 0.95}, serving_version=3)
        verdict = judge(tmp_path, {"accuracy": 0.81}, threshold)
    assert not verdict["blessed"]
    assert verdict["baseline"] == {
        "version": 3,
        "registered_version": 1,
        "source": "registry",
        "values": {"accuracy": 0.95},
    }


def test_without_a_champion_in_the_registry_the_local_folder_is_the_baseline(
    tmp_path, mlflow_store
):
    served(tmp_path / "models", 1, {"accuracy": 0.80})
    tracking.configure("tests")
    with mlflow.start_run() as run:
        verdict = judge(tmp_path, {"accuracy": 0.81}, ThresholdConfig("accuracy", max_regression=0))
    assert verdict["blessed"] and verdict["baseline"]["version"] == 1
    assert verdict["baseline"]["source"] == "local folder (no champion in the MLflow registry)"
    assert mlflow.get_run(run.info.run_id).data.tags["blessed"] == "True"


def test_a_champion_whose_evaluation_cannot_be_read_blesses_nothing(tmp_path, mlflow_store):
    served(tmp_path / "models", 1, {"accuracy": 0.80})
    tracking.configure("tests")
    with mlflow.start_run():
        registered(tmp_path, None, serving_version=1)
        verdict = judge(tmp_path, {"accuracy": 0.99}, ThresholdConfig("accuracy", lower_bound=0.5))
    assert not verdict["blessed"] and verdict["baseline"]["source"] == "registry"
    assert verdict["reasons"][0].startswith(
        "cannot read assets.extra/evaluation.json of registered version 1 of model"
    )
    assert verdict["reasons"][0].endswith("refusing to judge without it: FAIL")


def test_the_cache_key_follows_the_registrys_champion(tmp_path, mlflow_store):
    model_dir = ExportConfig(model_name="model", serving_dir=str(tmp_path / "models")).model_dir
    tracking.configure("tests")
    with mlflow.start_run():
        registered(tmp_path, {"accuracy": 0.9}, serving_version=1)
        first = bless.serving_baseline(model_dir)
        registered(tmp_path, {"accuracy": 0.9}, serving_version=2)
        second = bless.serving_baseline(model_dir)
    assert first["baseline"]["registered_version"] == 1
    assert second["baseline"]["registered_version"] == 2


def test_a_baseline_without_the_metric_skips_the_change_checks(tmp_path):
    served(tmp_path / "models", 1, None)  # pushed before blessings recorded an evaluation
    verdict = judge(tmp_path, {"accuracy": 0.5}, ThresholdConfig("accuracy", max_regression=0))
    assert verdict["blessed"]
    assert verdict["reasons"] == [
        "version 1 has no recorded accuracy to compare with, change checks skipped"
    ]


def test_placeholders_name_top_level_strings_of_the_metrics(tmp_path):
    scores = {"model_name": "gru_x1", "mean": {"gru_x1": {"wmae": 10.0}}}
    threshold = ThresholdConfig("mean.{model_name}.wmae", higher_is_better=False, upper_bound=12)
    verdict = judge(tmp_path, scores, threshold)
    assert verdict["blessed"] and verdict["candidate"] == {"mean.{model_name}.wmae": 10.0}


def test_a_missing_metric_names_the_path_and_the_keys_there(tmp_path):
    threshold = ThresholdConfig("test.perplexity", upper_bound=100)
    with pytest.raises(ConfigError, match=r"'test.perplexity'.*no 'perplexity' at test.*\['bits'"):
        judge(tmp_path, {"test": {"bits": 1.0}}, threshold)
    with pytest.raises(ConfigError, match=r"\{unit\} is not a top-level string.*\['model_name'\]"):
        judge(tmp_path, {"model_name": "m"}, ThresholdConfig("test.nats_per_{unit}", upper_bound=2))
    with pytest.raises(ConfigError, match=r"'test' is \{'bits': 1.0\}, not a number"):
        judge(tmp_path, {"test": {"bits": 1.0}}, ThresholdConfig("test", upper_bound=2))


def test_no_thresholds_bless_every_model(tmp_path):
    assert judge(tmp_path, {"accuracy": 0.1})["reasons"] == ["no checks configured"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "checks nothing"),
        ({"lower_bound": 2.0, "upper_bound": 1.0}, "lower_bound=2.0 must not exceed"),
        ({"max_regression": -0.1}, r"max_regression=-0.1 must be >= 0"),
    ],
)
def test_thresholds_are_validated(settings, message):
    with pytest.raises(ConfigError, match=rf"blessing.thresholds\[accuracy\].*{message}"):
        ThresholdConfig("accuracy", **settings)


def test_a_champion_of_another_data_set_is_no_baseline(tmp_path):
    """Reusing a model name for other data: its scores do not compare, so nothing is blessed."""
    version = served(tmp_path / "models", 1, {"accuracy": 0.80})
    evaluation = version / "assets.extra" / "evaluation.json"
    evaluation.write_text(json.dumps({**json.loads(evaluation.read_text()), "dataset": "imdb"}))
    model_dir = ExportConfig(model_name="model", serving_dir=str(tmp_path / "models")).model_dir
    candidate = metrics(tmp_path / "candidate", {"accuracy": 0.95})
    threshold = ThresholdConfig("accuracy", lower_bound=0.5)
    other = bless.run(thresholds_only(threshold), candidate, model_dir, tmp_path / "a", "spam")
    verdict = other.load()
    assert not verdict["blessed"] and verdict["dataset"] == "spam"
    assert verdict["reasons"][0].startswith(
        "version 1 of model serves a model of data set 'imdb', this one is of 'spam'"
    )
    assert verdict["reasons"][0].endswith("its own export.model_name: FAIL")
    same = bless.run(thresholds_only(threshold), candidate, model_dir, tmp_path / "b", "imdb")
    assert same.load()["blessed"]


def scored(model: float, baseline: float, higher_is_better: bool = True) -> dict:
    """metrics.json with the block an evaluation writes: the model and the best baseline."""
    comparison = bless.baseline_comparison(
        "accuracy", higher_is_better, model, {"majority": 0.5, "tfidf_logreg": baseline}
    )
    return {"accuracy": model, "baseline_comparison": comparison}


@pytest.mark.parametrize(
    ("model", "blessed", "verb"),
    [(0.91, True, "beats"), (0.90, True, "ties"), (0.89, False, "does not beat")],
)
def test_by_default_the_model_must_match_or_beat_the_best_baseline(tmp_path, model, blessed, verb):
    verdict = judge(tmp_path, scored(model, 0.90), config=BlessingConfig())
    assert verdict["blessed"] is blessed and verdict["below_baseline"] is not blessed
    assert verdict["reasons"][0] == (
        f"accuracy {model:g} {verb} the best simple baseline, tfidf_logreg 0.9: "
        f"{'pass' if blessed else 'FAIL'}"
    )


def test_warn_blesses_a_model_below_the_baseline_and_says_so(tmp_path, mlflow_store):
    with mlflow.start_run() as run:
        verdict = judge(tmp_path, scored(0.87, 0.9058), config=BlessingConfig(baseline="warn"))
    assert verdict["blessed"] and verdict["below_baseline"]
    assert verdict["reasons"][0].endswith("WARNING, blessed anyway (blessing.baseline=warn)")
    assert mlflow.get_run(run.info.run_id).data.tags["below_baseline"] == "True"
    lower_is_better = bless.baseline_comparison("wmae", False, 90.0, {"naive": 120, "ets": 95})
    assert (lower_is_better["best_baseline"], lower_is_better["baseline"]) == ("ets", 95)


def test_ignore_blesses_a_model_below_the_baseline_without_a_baseline_reason(
    tmp_path, mlflow_store
):
    with mlflow.start_run() as run:
        verdict = judge(tmp_path, scored(0.8, 0.9), config=BlessingConfig(baseline="ignore"))
    assert verdict["blessed"] and verdict["below_baseline"] is None
    assert verdict["reasons"] == ["accuracy: no model is served yet, champion check skipped"]
    assert "below_baseline" not in mlflow.get_run(run.info.run_id).data.tags


def test_no_scored_baseline_skips_the_check_without_failing(tmp_path):
    verdict = judge(tmp_path, {"accuracy": 0.7}, config=BlessingConfig())
    assert verdict["blessed"]
    assert verdict["reasons"] == ["no simple baseline was scored: baseline check skipped"]


@pytest.mark.parametrize(("model", "blessed"), [(0.93, True), (0.9, True), (0.89, False)])
def test_by_default_the_primary_metric_may_fall_2_percent_below_the_champion(
    tmp_path, model, blessed
):
    served(tmp_path / "models", 1, scored(0.918, 0.5))
    verdict = judge(tmp_path, scored(model, 0.5), config=BlessingConfig())
    assert verdict["blessed"] is blessed
    assert verdict["reasons"][1].startswith(f"accuracy {model:g} vs 0.918 of serving version 1")
    assert verdict["reasons"][1].endswith(
        f"at most 2.0% = 0.01836: {'pass' if blessed else 'FAIL'}"
    )


def scored_wmae(model: float, baseline: float = 120.0) -> dict:
    """As ``scored``, for a lower-is-better metric (a forecaster's WMAE)."""
    comparison = bless.baseline_comparison("wmae", False, model, {"seasonal_naive": baseline})
    return {"wmae": model, "baseline_comparison": comparison}


@pytest.mark.parametrize(("model", "blessed"), [(101.5, True), (102.5, False)])
def test_a_lower_is_better_metric_may_rise_2_percent_above_the_champion(tmp_path, model, blessed):
    served(tmp_path / "models", 1, scored_wmae(100.0))
    verdict = judge(tmp_path, scored_wmae(model), config=BlessingConfig())
    assert verdict["blessed"] is blessed
    assert verdict["reasons"] == [
        f"wmae {model:g} beats the best simple baseline, seasonal_naive 120: pass",
        f"wmae {model:g} vs 100 of serving version 1: worse by {model - 100:g}, at most 2.0% = 2: "
        f"{'pass' if blessed else 'FAIL'}",
    ]


@pytest.mark.parametrize(("model", "blessed"), [(0.82, True), (0.8, False)])
def test_a_champion_tolerance_of_10_percent(tmp_path, model, blessed):
    served(tmp_path / "models", 1, scored(0.9, 0.5))
    config = BlessingConfig(champion_tolerance=0.1)
    verdict = judge(tmp_path, scored(model, 0.5), config=config)
    assert verdict["blessed"] is blessed
    assert verdict["reasons"][1] == (
        f"accuracy {model:g} vs 0.9 of serving version 1: worse by {0.9 - model:.6g}, "
        f"at most 10.0% = 0.09: {'pass' if blessed else 'FAIL'}"
    )


def test_a_null_champion_tolerance_does_not_compare_with_the_champion(tmp_path):
    served(tmp_path / "models", 1, scored(0.918, 0.5))
    verdict = judge(tmp_path, scored(0.6, 0.55), config=BlessingConfig(champion_tolerance=None))
    assert verdict["blessed"]
    assert verdict["reasons"] == [
        "accuracy 0.6 beats the best simple baseline, tfidf_logreg 0.55: pass"
    ]


def test_a_champion_scored_on_another_metric_skips_the_champion_check(tmp_path):
    champion = bless.baseline_comparison("macro_f1", True, 0.99, {"tfidf_logreg": 0.5})
    served(tmp_path / "models", 1, {"macro_f1": 0.99, "baseline_comparison": champion})
    verdict = judge(tmp_path, scored(0.6, 0.55), config=BlessingConfig())
    assert verdict["blessed"]
    assert verdict["reasons"][1] == "version 1 has no recorded accuracy: champion check skipped"


def test_blessing_settings_are_validated():
    with pytest.raises(ConfigError, match="blessing.baseline"):
        BlessingConfig(baseline="maybe")
    with pytest.raises(ConfigError, match="champion_tolerance=-0.1 must be >= 0"):
        BlessingConfig(champion_tolerance=-0.1)


def test_a_templated_metric_is_named_filled_in_in_the_reasons(tmp_path):
    scores = {"unit": "char", "test": {"nats_per_char": 1107.5}}
    verdict = judge(tmp_path, scores, ThresholdConfig("test.nats_per_{unit}", upper_bound=3.5))
    assert not verdict["blessed"]
    assert "test.nats_per_char 1107.5 <= upper bound 3.5: FAIL" in verdict["reasons"]
