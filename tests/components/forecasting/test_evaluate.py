import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest

from components.errors import ConfigError, DataError
from components.forecasting import backtest, evaluate
from components.forecasting.evaluate import ForecastEvaluateConfig
from pipelines.sales_forecast.pipeline import benchmark_reference_rows

# Two series, three steps. Model errors |e| = [[2, 0, 6], [0, 2, 2]]; the (0, 0) pair at step 2
# of the first series is a perfect forecast that sMAPE must count as 0, not 0/0.
ACTUAL = np.array([[10.0, 0.0, 20.0], [4.0, 8.0, 0.0]])
MODEL = np.array([[12.0, 0.0, 14.0], [4.0, 6.0, 2.0]])
SEASONAL_NAIVE = np.array([[8.0, 2.0, 20.0], [4.0, 8.0, 4.0]])  # |e| = [[2, 2, 0], [0, 0, 4]]
HOLIDAY = np.array([[False, False, True], [False, True, False]])
# Season 2: scale of series 0 = mean(|5 - 1|, |3 - 3|) = 2, of series 1 = mean(|1 - 0|, 0) = 0.5.
HISTORIES = [np.array([1.0, 3.0, 5.0, 3.0]), np.array([0.0, 1.0, 1.0, 1.0])]
DATES = np.datetime64("2012-10-05") + np.array([[0, 7, 14], [0, 7, 14]]).astype("timedelta64[D]")
CONFIG = ForecastEvaluateConfig(holiday_weight=5.0)


def scored(out_dir, config=CONFIG, forecasts=None, histories=HISTORIES, **kwargs):
    forecasts = forecasts or {"model": MODEL, "seasonal_naive": SEASONAL_NAIVE}
    ids = ["1_1", "2_7"]
    return evaluate.run(
        config, ACTUAL, forecasts, HOLIDAY, histories, ids, DATES, out_dir, 2, **kwargs
    ).load()


def test_every_metric_matches_a_hand_computation(tmp_path):
    metrics = scored(tmp_path / "m")
    model = metrics["models"]["model"]
    assert model["mae"] == pytest.approx(12 / 6)
    assert model["rmse"] == pytest.approx(math.sqrt((4 + 36 + 4 + 4) / 6))
    assert model["wape"] == pytest.approx(12 / 42)
    smape_terms = [4 / 22, 0.0, 12 / 34, 0.0, 4 / 14, 4 / 2]
    assert model["smape"] == pytest.approx(sum(smape_terms) / 6)
    # Holiday steps (errors 6 and 2) weigh 5: (2 + 0 + 5*6 + 0 + 5*2 + 2) / (4 + 5 + 5).
    assert model["wmae"] == pytest.approx(44 / 14)
    # Mean of per-series MASE ((8/3) / 2 and (4/3) / 0.5), not pooled MAE over pooled scale.
    assert model["mase"] == pytest.approx((4 / 3 + 8 / 3) / 2)
    assert metrics["mase_excluded"] == 0 and metrics["series"] == 2
    assert metrics["by_horizon"]["model"] == pytest.approx([1.0, 1.0, 4.0])
    assert metrics["models"]["seasonal_naive"]["wmae"] == pytest.approx(8 / 14)
    assert metrics["relative_to_seasonal_naive"]["model"] == pytest.approx(1 - 44 / 8)
    assert metrics["relative_to_seasonal_naive"]["seasonal_naive"] == 0
    assert "quantiles" not in metrics


def test_series_without_a_seasonal_scale_are_left_out_of_mase(tmp_path):
    flat_and_short = [np.array([7.0, 7.0, 7.0, 7.0]), np.array([1.0, 2.0])]
    metrics = scored(tmp_path / "m", histories=flat_and_short)
    assert metrics["mase_excluded"] == 2
    assert metrics["models"]["model"]["mase"] is None  # written as JSON null, not NaN

    one_flat = [HISTORIES[0], np.array([7.0, 7.0, 7.0, 7.0])]
    metrics = scored(tmp_path / "m2", histories=one_flat)
    assert metrics["mase_excluded"] == 1
    assert metrics["models"]["model"]["mase"] == pytest.approx((8 / 3) / 2)


def test_pinball_loss_and_coverage_of_the_outermost_interval(tmp_path):
    low = np.array([[8.0, 1.0, 15.0], [5.0, 0.0, 0.0]])
    high = np.array([[12.0, 2.0, 19.0], [6.0, 9.0, 1.0]])
    metrics = scored(tmp_path / "m", quantiles={0.9: high, 0.1: low, 0.5: MODEL})
    quantiles = metrics["quantiles"]
    # q=0.1, actual - forecast = [2, -1, 5, -1, 8, 0]: 0.1 * over, 0.9 * under.
    assert quantiles["pinball"]["p10"] == pytest.approx((0.2 + 0.9 + 0.5 + 0.9 + 0.8) / 6)
    # q=0.9, actual - forecast = [-2, -2, 1, -2, -1, -1].
    assert quantiles["pinball"]["p90"] == pytest.approx((0.2 + 0.2 + 0.9 + 0.2 + 0.1 + 0.1) / 6)
    assert quantiles["pinball"]["p50"] == pytest.approx(0.5 * 2.0)  # half the MAE
    # Inside [low, high], bounds included: 10 in [8, 12], 8 in [0, 9], 0 in [0, 1].
    assert quantiles["coverage"] == {"interval": "p10_p90", "observed": 0.5, "nominal": 0.8}


def test_writes_forecasts_and_plots(tmp_path):
    out_dir = tmp_path / "not" / "yet"
    scored(out_dir, quantiles={0.1: MODEL - 1, 0.9: MODEL + 1})
    table = pd.read_parquet(out_dir / "forecasts.parquet")
    assert list(table.columns) == [
        *evaluate.TABLE_COLUMNS,
        "model",
        "seasonal_naive",
        "model_p10",
        "model_p90",
    ]
    second = table[table["series"] == "2_7"]
    assert second["actual"].tolist() == [4.0, 8.0, 0.0]
    assert second["step"].tolist() == [1, 2, 3] and second["holiday"].tolist() == [0, 1, 0]
    assert second["date"].iloc[1] == pd.Timestamp("2012-10-12")
    for plot in ("forecast_vs_actual.png", "error_by_horizon.png"):
        assert (out_dir / plot).read_bytes().startswith(b"\x89PNG")
    assert json.loads((out_dir / "metrics.json").read_text())["series"] == 2


def test_logs_metrics_with_valid_mlflow_names(mlflow_store, tmp_path):
    forecasts = {"gru": MODEL, "seasonal_naive": SEASONAL_NAIVE, "ets+trend": MODEL}
    with mlflow.start_run() as run:
        scored(tmp_path / "m", forecasts=forecasts, model_name="gru")
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert logged["test_wmae"] == pytest.approx(44 / 14)
    assert logged["test_seasonal_naive_wmae"] == pytest.approx(8 / 14)
    assert logged["test_ets_trend_wmae"] == pytest.approx(44 / 14)
    assert logged["test_wmae_skill_vs_seasonal_naive"] == pytest.approx(1 - 44 / 8)
    artifacts = {item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"forecast_vs_actual.png", "error_by_horizon.png"} <= artifacts


def test_mismatched_shapes_are_named(tmp_path):
    with pytest.raises(DataError, match=r"forecasts\['seasonal_naive'\] has shape \(2, 2\)"):
        scored(tmp_path, forecasts={"model": MODEL, "seasonal_naive": SEASONAL_NAIVE[:, :2]})
    with pytest.raises(DataError, match="histories has 1 entries for 2 series"):
        scored(tmp_path, histories=HISTORIES[:1])
    with pytest.raises(ConfigError, match="model_name='lstm'"):
        scored(tmp_path, model_name="lstm")
    gap = MODEL.copy()
    gap[1, 2] = np.nan
    with pytest.raises(DataError, match=r"forecasts\['model'\] has 1 non-finite"):
        scored(tmp_path, forecasts={"model": gap})


def test_filled_periods_are_not_scored(tmp_path):
    """A period ingest filled (no value in the file) is no actual: a 0 there would score the
    model's 6 at step 3 of series 0 as an error of 6 against a sale that never was recorded."""
    observed = np.array([[True, True, False], [True, True, True]])
    metrics = scored(tmp_path / "m", observed=observed)
    model = metrics["models"]["model"]
    # Model errors without the (0, 2) entry: [2, 0] and [0, 2, 2] -> MAE 6 / 5.
    assert model["mae"] == pytest.approx(6 / 5)
    assert model["wape"] == pytest.approx(6 / (10 + 0 + 4 + 8 + 0))
    # WMAE: step 2 of series 1 is a holiday (weight 5); the unscored holiday of series 0 is out.
    assert model["wmae"] == pytest.approx((2 + 0 + 0 + 5 * 2 + 2) / (1 + 1 + 1 + 5 + 1))
    assert metrics["filled_not_scored"] == 1
    assert metrics["by_horizon"]["model"] == pytest.approx([1.0, 1.0, 2.0])
    table = pd.read_parquet(tmp_path / "m" / "forecasts.parquet")
    unscored = table[(table["series"] == "1_1") & (table["step"] == 3)]
    assert unscored["actual"].isna().all() and unscored["model"].tolist() == [14.0]


def test_nothing_observed_to_score_is_an_error(tmp_path):
    with pytest.raises(DataError, match="at least one observed actual"):
        scored(tmp_path / "m", observed=np.zeros(ACTUAL.shape, bool))


def test_skill_names_naive_when_every_series_was_too_short_for_seasonal_naive(
    mlflow_store, tmp_path
):
    """Histories of one period, season 2: seasonal naive fell back to naive for both series, so
    the skill is over naive and MASE has no scale; both are said, not hidden."""
    from pipelines.sales_forecast.pipeline import headline

    short = [np.array([9.0]), np.array([3.0])]
    with mlflow.start_run() as run:
        metrics = scored(tmp_path / "m", histories=short, baseline_fallbacks={"seasonal_naive": 2})
    assert metrics["reference"] == {
        "baseline": "naive",
        "label": "naive (seasonal naive needs 2 periods)",
        "series_fell_back": 2,
    }
    assert metrics["models"]["model"]["mase"] is None
    assert metrics["mase_note"].startswith("MASE is not defined for any of the 2 series")
    assert "more than 2 periods of history" in metrics["mase_note"]
    assert "WMAE vs naive (seasonal naive needs 2 periods), " in headline(metrics)
    logged = mlflow.get_run(run.info.run_id).data
    assert "test_wmae_skill_vs_naive" in logged.metrics
    assert not any(name.endswith("vs_seasonal_naive") for name in logged.metrics)
    assert logged.tags["skill_reference"] == "naive (seasonal naive needs 2 periods)"


def test_skill_over_seasonal_naive_says_how_many_series_fell_back(tmp_path):
    from pipelines.sales_forecast.pipeline import headline

    metrics = scored(tmp_path / "m", baseline_fallbacks={"seasonal_naive": 1})
    label = "seasonal naive (naive for 1 of 2 series shorter than 2 periods)"
    assert metrics["reference"]["label"] == label
    assert f"WMAE vs {label}, " in headline(metrics)
    assert "mase_note" not in metrics  # every series has a scale
    metrics = scored(tmp_path / "m2")
    assert "WMAE vs seasonal naive, " in headline(metrics)


def test_baseline_fit_times_and_fallback_reasons_reach_metrics_mlflow_and_the_backtest(
    mlflow_store, tmp_path
):
    reasons = {"seasonal_naive": {"shorter than a season (2 periods): naive": 1}}
    with mlflow.start_run() as run:
        folds = [
            scored(
                tmp_path / f"fold_{fold}",
                baseline_fallbacks={"seasonal_naive": 1},
                baseline_fallback_reasons=reasons,
                baseline_fit_seconds={"seasonal_naive": seconds},
            )
            for fold, seconds in enumerate([0.25, 0.5])
        ]
    assert folds[0]["baseline_fit_seconds"] == {"seasonal_naive": 0.25}
    assert folds[0]["baseline_fallback_reasons"] == reasons
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert logged["test_seasonal_naive_fit_seconds"] == 0.5  # the last fold's, logged last
    summary = backtest._backtest_summary(folds)
    assert summary["baseline_fit_seconds"] == {"seasonal_naive": 0.75}
    assert summary["baseline_fallback_reasons"] == {
        "seasonal_naive": {"shorter than a season (2 periods): naive": 2}
    }
    rows = {row["run"]: row for row in benchmark_reference_rows(summary)}
    assert rows["baseline: seasonal_naive"]["train wall time, all folds"] == "0.8 s (fit)"
