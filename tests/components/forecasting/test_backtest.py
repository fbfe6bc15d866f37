"""How backtest scores are shown: amounts keep their precision whatever the units."""

import pytest

from components.forecasting.backtest import format_amount, summary_columns
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
