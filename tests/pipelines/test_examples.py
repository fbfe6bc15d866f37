"""Each worked example of README's "Your own data" runs end to end on tiny data made here."""

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.__main__ import main
from tests.conftest import CONFIGS, synthetic_reviews

pytestmark = pytest.mark.e2e
EXAMPLES = CONFIGS / "examples"


def run(tmp_path, pipeline: str, example: str, settings: dict[str, str]):
    arguments = ["run", pipeline, "--config", str(EXAMPLES / example)]
    arguments += ["--artifacts-root", str(tmp_path / "artifacts")]
    settings = {
        "export.register": "false",
        "export.serving_dir": str(tmp_path / "models"),
        **settings,
    }
    arguments += [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    assert main(arguments) == 0
    (run_dir,) = (tmp_path / "artifacts" / pipeline).glob("2*")
    return run_dir


def _reviews_csv(folder) -> dict[str, str]:
    rows = synthetic_reviews(200)
    table = pd.DataFrame(
        {"review": [t for t, _ in rows], "verdict": ["good" if y else "bad" for _, y in rows]}
    )
    table.loc[7, "review"] = "   "  # skipped and counted, as the example's bad_records says
    table.to_csv(folder / "my_reviews.csv", index=False)
    return {"data.data_dir": str(folder), "preprocess.sequence_length": "30"}


def test_reviews_in_a_csv_of_ones_own(tmp_path, mlflow_store):
    settings = _reviews_csv(tmp_path)
    run_dir = run(tmp_path, "sentiment", "reviews_csv.yaml", {**settings, "train.epochs": "4"})
    statistics = json.loads((run_dir / "ingest" / "examples" / "statistics.json").read_text())
    assert statistics["dataset"] == "my_reviews" and statistics["skipped"] == {"empty_text": 1}
    assert statistics["splits"]["test"]["examples"] == 40
    metrics = json.loads((run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.7  # the example's own bar: the model is blessed and pushed
    assert set(metrics["baselines"]) == {"majority", "tfidf_logreg", "nbsvm"}
    blessing = json.loads((run_dir / "bless" / "blessing" / "blessing.json").read_text())
    assert blessing["blessed"] and blessing["below_baseline"] is False
    assert (tmp_path / "models" / "my_reviews" / "1").is_dir()


def test_the_reviews_example_does_not_push_a_model_below_its_baselines(tmp_path, mlflow_store):
    """The example's ``blessing.baseline: require`` is a gate: a recurrent model alone, a few
    units trained one epoch, does not beat NBSVM on these reviews and is not pushed."""
    settings = {
        **_reviews_csv(tmp_path),
        "ngrams.enabled": "false",
        "model.units": "2",
        "model.embedding_dim": "2",
        "train.epochs": "1",
        "blessing.thresholds": "[]",  # the baseline alone decides
    }
    run_dir = run(tmp_path, "sentiment", "reviews_csv.yaml", settings)
    metrics = json.loads((run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["accuracy"] < metrics["baselines"][metrics["best_baseline"]]["accuracy"]
    blessing = json.loads((run_dir / "bless" / "blessing" / "blessing.json").read_text())
    assert not blessing["blessed"] and blessing["below_baseline"] is True
    assert "does not beat the best simple baseline" in blessing["reasons"][0]
    assert blessing["reasons"][0].endswith("FAIL")
    assert not (tmp_path / "models" / "my_reviews").exists()


def test_monthly_sales_in_a_wide_table(tmp_path, mlflow_store):
    months = pd.date_range("2016-01-01", periods=60, freq="MS")
    rng = np.random.default_rng(0)
    season = np.sin(2 * np.pi * np.arange(60) / 12)
    growth = 1 + 0.015 * np.arange(60)  # a shop that grows: last year's same month is too low
    table = pd.DataFrame({"Month": [f"{m:%Y-%m}" for m in months]})
    for product, level in (("tea", 100), ("coffee", 300)):
        sales = level * (1.5 + season) * growth + rng.normal(0, 3, 60)
        table[product] = sales.round(1).astype(str)
    # '*' in the training span, and one in each fold's scored span: forecast, no actual to score.
    filled_cells = {30: "tea", 50: "coffee", 56: "tea"}
    for row, product in filled_cells.items():
        table.loc[row, product] = "*"
    table.to_csv(tmp_path / "monthly_sales.csv", index=False)
    settings = {"ingest.data_dir": str(tmp_path), "train.epochs": "2", "model.units": "8"}
    run_dir = run(tmp_path, "sales_forecast", "monthly_wide.yaml", settings)
    metrics = json.loads((run_dir / "backtest" / "metrics" / "metrics.json").read_text())
    assert metrics["folds"] == 2 and metrics["season_length"] == 12
    # Each fold's scores are over the cells the file has: recomputed from the forecasts written,
    # leaving out the filled '*' cell, they are the MAEs reported.
    written = table.melt(id_vars="Month", var_name="series", value_name="cell")
    written["date"] = pd.to_datetime(written.pop("Month"), format="%Y-%m")
    folds = {
        "2020-09-01": run_dir / "evaluate" / "metrics",  # fold 0, the test split
        "2020-03-01": run_dir / "backtest" / "metrics" / "fold_1" / "evaluate",
    }
    for filled_date, evaluated in folds.items():
        scored = json.loads((evaluated / "metrics.json").read_text())
        forecasts = pd.read_parquet(evaluated / "forecasts.parquet")
        forecasts = forecasts.merge(written, on=["series", "date"], how="left", validate="1:1")
        assert forecasts["cell"].notna().all() and len(forecasts) == 12
        filled = forecasts["cell"] == "*"
        product = filled_cells[int(months.get_loc(pd.Timestamp(filled_date)))]
        assert forecasts.loc[filled, ["series", "date"]].values.tolist() == [
            [product, pd.Timestamp(filled_date)]
        ]
        kept = forecasts[~filled]  # the rows scored: every cell of the file, no filled one
        names = set(forecasts.columns) - {*written.columns, "step", "holiday", "actual"}
        assert set(scored["models"]) == names
        for name, scores in scored["models"].items():
            mae = (kept[name] - kept["actual"]).abs().mean()
            assert scores["mae"] == pytest.approx(mae, rel=1e-6), (filled_date, name)
        assert kept["actual"].to_numpy() == pytest.approx(kept["cell"].astype(float), abs=1e-4)
        assert scored["filled_not_scored"] == 1 and forecasts.loc[filled, "actual"].isna().all()
    # Two epochs on two series: the validation blocks weigh the network against the classical
    # forecasts, and what is blessed and served is at least as good as the best baseline.
    weights = metrics["combination_weights"]
    assert len(weights) == 2 and {"network", "auto_ets", "mstl"} <= set(weights[0])
    comparison = metrics["baseline_comparison"]
    assert comparison["model"] <= comparison["baseline"]
    blessing = json.loads((run_dir / "bless" / "blessing" / "blessing.json").read_text())
    assert blessing["blessed"], blessing["reasons"]
    assert blessing["reasons"][0].startswith("wmae ")  # against the best baseline's
    assert "the best simple baseline" in blessing["reasons"][0]
    assert (tmp_path / "models" / "monthly_sales" / "1").is_dir()


def test_a_language_model_of_ones_own_text(tmp_path, mlflow_store):
    (tmp_path / "book.txt").write_text(
        "It was the best of times, it was the worst of times.\n" * 80
    )
    settings = {
        "data.path": str(tmp_path / "book.txt"),
        "model.units": "16",
        "model.layers": "1",
        "windows.num_steps": "20",
        "train.epochs": "1",
        "train.batch_size": "8",
        "evaluate.sample_tokens": "20",
    }
    run_dir = run(tmp_path, "language_model", "own_text.yaml", settings)
    metrics = json.loads((run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["unit"] == "char" and metrics["test"]["tokens"] > 0
    # The example's `blessing.baseline: require`: judged against the count-based baselines, and
    # blessed only if it beats them.
    blessing = json.loads((run_dir / "bless" / "blessing" / "blessing.json").read_text())
    comparison = metrics["baseline_comparison"]
    beats = comparison["model"] <= comparison["baseline"]  # nats: lower is better
    assert "the best simple baseline" in blessing["reasons"][0]
    assert blessing["below_baseline"] is (not beats)
    assert blessing["reasons"][0].endswith("pass" if beats else "FAIL")
    if not beats:
        assert not blessing["blessed"] and not (tmp_path / "models" / "own_text").exists()
