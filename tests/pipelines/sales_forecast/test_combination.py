"""The network combined with classical forecasts, end to end: weighted per fold on its validation
block, scored beside the network alone, and served from a CSV as it was evaluated."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipelines.__main__ import main
from pipelines.sales_forecast.pipeline import headline
from tests.conftest import SHOP_INGEST, write_shop_sales
from tests.pipelines.sales_forecast.test_pipeline import run_pipeline, scored_forecasts

pytestmark = pytest.mark.e2e
CANDIDATES = ["seasonal_naive", "mstl", "svd_seasonal_naive"]


@pytest.fixture(scope="module")
def combined_run(module_mlflow_store):
    root = module_mlflow_store
    write_shop_sales(root / "data", series=6, weeks=130)
    settings = {
        **SHOP_INGEST,
        "ingest.data_dir": str(root / "data"),
        "ensemble.members": "[]",
        "model.units": "8",
        "train.epochs": "2",
        "train.batch_size": "32",
        "backtest.folds": "2",
        "baselines.names": "[naive, seasonal_naive, moving_average, mstl, svd_seasonal_naive]",
        "baselines.svd_group_by": "region",
        "baselines.svd_rank": "1",
        "combination.candidates": f"[{', '.join(CANDIDATES)}]",
        "blessing.thresholds": "[]",
        "blessing.baseline": "ignore",
        "export.model_name": "shop_combined",
    }
    return root, run_pipeline(root, None, settings)


def test_each_fold_weighs_the_network_and_the_candidates_on_its_own_validation_block(
    combined_run,
):
    _, run_dir = combined_run
    (combine,) = [p for p in (run_dir / "combine").iterdir() if p.is_dir()]
    report = json.loads((combine / "combination.json").read_text())
    assert set(report["weights"]) == {"network", *CANDIDATES}
    assert sum(report["weights"].values()) == pytest.approx(1.0)
    assert min(report["weights"].values()) >= 0
    # On the validation block the fitted mix is at least as good as any candidate alone.
    validation = report["validation_wmae"]
    assert validation["combined"] <= min(v for k, v in validation.items() if k != "combined") + 1e-6
    backtest = json.loads((run_dir / "backtest" / "metrics" / "metrics.json").read_text())
    assert len(backtest["combination_weights"]) == 2
    assert backtest["combination_weights"][0] == report["weights"]
    fold_1 = json.loads(
        (run_dir / "backtest" / "metrics" / "fold_1" / "combine" / "combination.json").read_text()
    )
    assert backtest["combination_weights"][1] == fold_1["weights"]
    # The combination is the model; the network alone is scored beside it, not as a baseline.
    model = backtest["model_name"]
    assert model.endswith("_combined") and "network_alone" in backtest["mean"]
    assert backtest["baseline_comparison"]["best_baseline"] != "network_alone"
    # The headline names the bar: the best baseline on the test fold, not seasonal naive.
    test_fold = json.loads((run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    scores = {name: s["wmae"] for name, s in test_fold["models"].items()}
    best = min((n for n in scores if n not in (model, "network_alone")), key=scores.get)
    skill = 1 - scores[model] / scores[best]
    assert f"{skill:+.1%} vs the best baseline, {best} (" in headline(test_fold)
    logged = mlflow.search_runs(experiment_names=["sales_forecast"])
    assert logged["metrics.combination_weight_network"].notna().any()


def test_the_forecast_cli_serves_what_was_evaluated(combined_run):
    """The CSV client fits the baselines the model takes from the CSV's histories and sends them
    with the history: forecasting the test weeks from the rows before them gives the forecasts
    the evaluate stage scored, for every series."""
    root, run_dir = combined_run
    version = root / "models" / "shop_combined" / "1"
    info = json.loads((version / "assets.extra" / "forecast_request.json").read_text())
    assert info["baseline_inputs"]["names"] == ["mstl", "svd_seasonal_naive"]
    history = pd.read_csv(root / "data" / "shop.csv")
    weeks = pd.to_datetime(history["week"], format="%d/%m/%Y")
    test_weeks = weeks >= sorted(weeks.unique())[-8]
    history["units"] = history["units"].astype(object)
    history.loc[test_weeks, "units"] = ""  # the promotions of those weeks stay: known ahead
    history.to_csv(root / "until_test.csv", index=False)
    output = root / "test_weeks.csv"
    arguments = ["forecast", "--input", str(root / "until_test.csv"), "--output", str(output)]
    models = str(root / "models")
    assert main([*arguments, "--serving-dir", models, "--model-name", "shop_combined"]) == 0
    served = pd.read_csv(output).sort_values(["sku", "step"])
    scored, model_name = scored_forecasts(run_dir / "evaluate" / "metrics")
    scored = scored.sort_values(["series", "step"])
    assert len(served) == len(scored) == 6 * 8
    np.testing.assert_allclose(served["forecast"], scored[model_name], rtol=1e-4, atol=1e-3)
    # The SavedModel's own signature names the extra inputs.
    import tensorflow as tf

    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    assert {"baseline_mstl", "baseline_svd_seasonal_naive"} <= set(
        signature.structured_input_signature[1]
    )
