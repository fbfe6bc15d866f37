"""How backtest scores are shown (amounts keep their precision whatever the units), and which
groups the SVD baseline smooths together."""

import numpy as np
import pandas as pd
import pytest

from components.forecasting.backtest import _baseline_groups, format_amount, summary_columns
from components.forecasting.baselines import BaselineConfig
from pipelines.sales_forecast.pipeline import headline


@pytest.mark.parametrize(
    ("value", "shown"), [(1422.4, "1,422"), (100.0, "100"), (4.3712, "4.37"), (0.07123, "0.0712")]
)
def test_amounts_keep_three_significant_digits_below_100(value, shown):
    assert format_amount(value) == shown


def test_small_unit_errors_are_not_rounded_to_whole_numbers():
    """Issue 14: monthly counts near 4 were shown as "WMAE 4, MAE 4"."""
    scores = {"wmae": 4.37, "mae": 4.12, "rmse": 5.5, "wape": 0.1, "smape": 0.2, "mase": 0.9}
    metrics = {"model_name": "gru", "models": {"gru": scores}}
    assert headline(metrics) == "gru: WMAE 4.37, MAE 4.12"
    summary = {"folds": 1, "mean": {"gru": scores}, "per_fold": [{"gru": scores}]}
    columns = summary_columns(summary, "gru")
    assert (columns["backtest WMAE (1 folds)"], columns["MAE"]) == ("**4.37**", "4.12")


class Windows:
    def statics(self):
        return pd.DataFrame(
            {"series": ["1_1", "1_2", "2_1"], "Store": [1, 1, 2], "Dept": [1, 2, 1]}
        )


def test_svd_groups_are_each_scored_series_value_of_the_grouping_column():
    config = BaselineConfig(names=["svd_seasonal_naive"], svd_group_by="Dept")
    keys, scored_series = ["1_1", "1_2", "2_1"], np.array([2, 0, 1])
    assert _baseline_groups(config, Windows(), keys, scored_series) == (["1", "1", "2"], "")
    config.svd_group_by = "Region"
    groups, why = _baseline_groups(config, Windows(), keys, scored_series)
    assert groups is None
    assert why == "no column 'Region' among the id and static columns ['Store', 'Dept']"


def test_a_model_better_than_seasonal_naive_but_not_mstl_is_judged_below_the_best_baseline():
    """The bar is the best baseline (MSTL here), not seasonal naive, and never the combined
    model's own network scored alone."""
    from components import bless
    from components.forecasting.backtest import _backtest_summary

    def fold(wmae: dict) -> dict:
        scores = {"mae": 1.0, "rmse": 1.0, "wape": 0.1, "smape": 0.1, "mase": 1.0}
        return {
            "model_name": "gru_combined",
            "season_length": 52,
            "series": 3,
            "mase_excluded": 0,
            "baseline_fallbacks": {},
            "models": {name: {**scores, "wmae": value} for name, value in wmae.items()},
        }

    wmae = {
        "gru_combined": 1250.0,
        "network_alone": 1100.0,
        "seasonal_naive": 1700.0,
        "mstl": 1200.0,
    }
    summary = _backtest_summary([fold(wmae), fold(wmae)])
    comparison = summary["baseline_comparison"]
    assert (comparison["best_baseline"], comparison["baseline"]) == ("mstl", 1200.0)
    below, reason = bless._baseline_check(comparison)
    assert below is True
    assert reason == "wmae 1250 does not beat the best simple baseline, mstl 1200"
    assert summary["relative_to_seasonal_naive"]["gru_combined"] > 0.2  # far above naive's bar
