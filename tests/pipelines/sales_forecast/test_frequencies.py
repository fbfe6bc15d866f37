"""The sales pipeline on frequencies other than weekly: the season, the seasonal baseline, MASE
and the calendar follow ``ingest.frequency``, and too short a history is refused, not fitted."""

import json

import numpy as np
import pandas as pd
import pytest

from components.errors import ConfigError
from pipelines.__main__ import main
from pipelines.registry import resolve_config
from tests.pipelines.sales_forecast.test_pipeline import run_pipeline

pytestmark = pytest.mark.e2e

MONTHLY_INGEST = {
    "ingest.path": "monthly.csv",
    "ingest.date_column": "month",
    "ingest.date_format": "'%Y-%m-%d'",
    "ingest.target": "sales",
    "ingest.series_id": "[store]",
    "ingest.joins": "[]",
    "ingest.known_future": "[]",
    "ingest.past_covariates": "[]",
    "ingest.static_categorical": "[]",
    "ingest.static_numeric": "[]",
    "ingest.frequency": "MS",
    "ingest.filled_are_actuals": "false",  # the shipped Walmart config's reading, not this data's
    "backtest.holiday_column": "null",
    "combination.candidates": "[]",  # the shipped one weighs the Walmart departments' baselines
}


def write_monthly(folder, stores: int = 3, months: int = 60):
    """Monthly sales with a strong 12-month cycle, month starts from January 2015."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2015-01-01", periods=months, freq="MS")
    rows = [
        (f"S{store}", f"{date:%Y-%m-%d}", round(value, 2))
        for store in range(stores)
        for date, value in zip(
            dates,
            100 * (store + 1) * (1.5 + np.sin(2 * np.pi * np.arange(months) / 12 + store))
            + rng.normal(0, 2, months),
            strict=True,
        )
    ]
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows, columns=["store", "month", "sales"])
    table.to_csv(folder / "monthly.csv", index=False)
    return table


def settings(data, **more):
    return {
        **MONTHLY_INGEST,
        "ingest.data_dir": str(data),
        "windows.lookback": "24",
        "windows.horizon": "6",
        "model.units": "8",
        "train.epochs": "2",
        "ensemble.members": "[]",
        **more,
    }


MARKED_MISSING = {("S1", "2019-08-01"), ("S1", "2019-09-01")}  # inside the test months of S1


@pytest.fixture(scope="module")
def monthly_run(module_mlflow_store):
    """One run on 60 months of three stores, two of S1's test months marked ``*`` (missing)."""
    root = module_mlflow_store
    table = write_monthly(root / "data")
    text = (root / "data" / "monthly.csv").read_text().splitlines()
    for number, line in enumerate(text):
        store, month, _ = line.split(",")
        if (store, month) in MARKED_MISSING:
            text[number] = f"{store},{month},*"
    (root / "data" / "monthly.csv").write_text("\n".join(text) + "\n")
    monthly = settings(root / "data", **{"ingest.na_values": "['*']"})
    return table, run_pipeline(root, None, monthly, until="evaluate")


def test_monthly_data_gets_a_12_month_season_everywhere(monthly_run):
    table, run_dir = monthly_run
    metrics = json.loads((run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["season_length"] == 12
    assert metrics["baseline_fallbacks"]["seasonal_naive"] == 0
    # Seasonal naive repeats the value 12 months before each forecast month.
    scored = pd.read_parquet(run_dir / "evaluate" / "metrics" / "forecasts.parquet")
    values = table.assign(month=pd.to_datetime(table["month"])).set_index(["store", "month"])
    year_before = [
        values.loc[(row.series, row.date - pd.DateOffset(months=12)), "sales"]
        for row in scored.itertuples()
    ]
    np.testing.assert_allclose(scored["seasonal_naive"], year_before)
    # MASE is defined for every series (its in-sample scale needs more than one season).
    assert metrics["mase_excluded"] == 0
    assert metrics["models"]["seasonal_naive"]["mase"] is not None
    statistics = json.loads((run_dir / "ingest" / "time_series" / "statistics.json").read_text())
    assert (statistics["frequency"], statistics["season_length"]) == ("MS", 12)


def test_calendar_features_need_a_year_of_training_history(tmp_path, mlflow_store, capsys):
    write_monthly(tmp_path / "data", months=12)  # training sees 8 months
    short = settings(
        tmp_path / "data",
        **{"windows.lookback": "3", "windows.horizon": "2", "model.seasonal_residual": "false"},
    )
    arguments = ["run", "sales_forecast", "--artifacts-root", str(tmp_path / "refused")]
    arguments += [item for key, value in short.items() for item in ("--set", f"{key}={value}")]
    assert main(arguments) == 2
    assert "model.calendar_harmonics=3 needs a year of training history" in capsys.readouterr().err
    # Without the calendar the same data trains and is scored.
    run_dir = run_pipeline(
        tmp_path, None, {**short, "model.calendar_harmonics": "0"}, until="evaluate"
    )
    metrics = json.loads((run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["models"][metrics["model_name"]]["mae"] > 0


def test_the_shipped_config_takes_its_season_from_the_frequency_it_is_given():
    config = resolve_config("sales_forecast", None, None, ["ingest.frequency=D"])
    assert config.ingest.periods_per_season == 7
    config = resolve_config("sales_forecast", None, None, ["ingest.season_length=13"])
    assert config.ingest.periods_per_season == 13
    with pytest.raises(ConfigError, match="ingest.season_length=0 must be >= 1"):
        resolve_config("sales_forecast", None, None, ["ingest.season_length=0"])


def test_months_marked_missing_are_filled_but_never_scored(monthly_run):
    """Issue 14: zero-filled months were scored as sales of 0 against forecasts of 68 and 61."""
    table, run_dir = monthly_run
    metrics = json.loads((run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["filled_not_scored"] == 2
    scored = pd.read_parquet(run_dir / "evaluate" / "metrics" / "forecasts.parquet")
    unscored = scored[(scored["series"] == "S1") & scored["actual"].isna()]
    expected = sorted(month for _, month in MARKED_MISSING)
    assert sorted(f"{date:%Y-%m-%d}" for date in unscored["date"]) == expected
    assert len(scored) == 3 * 6 and scored["actual"].notna().sum() == 16
    assert table["sales"].gt(0).all()  # the filled zeros would have been the only zero actuals
