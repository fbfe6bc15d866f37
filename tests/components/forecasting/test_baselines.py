import numpy as np
import pytest

from components.errors import ConfigError, DataError
from components.forecasting import baselines
from components.forecasting.baselines import BaselineConfig

SEASON = [1.0, 5.0, 3.0, 9.0]


def test_seasonal_naive_is_exact_on_a_seasonal_series_and_naive_is_not():
    history = np.tile(SEASON, 3)  # ends on 9, the last point of a season
    result = baselines.forecast(
        BaselineConfig(names=["naive", "seasonal_naive"]), [history], horizon=6, season_length=4
    )
    future = np.tile(SEASON, 2)[:6]  # the season repeats when the horizon is longer than one
    np.testing.assert_array_equal(result.forecasts["seasonal_naive"], [future])
    np.testing.assert_array_equal(result.forecasts["naive"], [np.full(6, 9.0)])
    assert result.fallbacks == {"naive": 0, "seasonal_naive": 0}


def test_naive_is_exact_on_a_constant_series_and_keeps_series_order():
    result = baselines.forecast(
        BaselineConfig(names=["naive"]),
        [np.full(5, 7.0), np.array([1.0, 2.0])],
        horizon=3,
        season_length=52,
    )
    np.testing.assert_array_equal(result.forecasts["naive"], [[7.0, 7.0, 7.0], [2.0, 2.0, 2.0]])


def test_moving_average_takes_the_mean_of_the_last_window():
    history = np.array([100.0, 1.0, 2.0, 3.0, 6.0])
    result = baselines.forecast(
        BaselineConfig(names=["moving_average"], moving_average_window=4),
        [history],
        horizon=2,
        season_length=52,
    )
    np.testing.assert_allclose(result.forecasts["moving_average"], [[3.0, 3.0]])  # 12 / 4


def test_ets_follows_a_linear_trend_better_than_naive():
    steps = np.arange(40.0)
    history, future = 10.0 + 2.0 * steps[:30], 10.0 + 2.0 * steps[30:]
    result = baselines.forecast(
        BaselineConfig(names=["naive", "ets"]), [history], horizon=10, season_length=52
    )
    ets_error = np.abs(result.forecasts["ets"][0] - future).mean()
    naive_error = np.abs(result.forecasts["naive"][0] - future).mean()
    assert ets_error < 0.2 * naive_error
    assert result.fallbacks["ets"] == 0


def test_short_series_fall_back_to_naive_and_are_counted():
    short, long = np.array([4.0, 6.0, 8.0]), 50.0 + np.sin(np.arange(60.0))
    config = BaselineConfig(moving_average_window=8)
    result = baselines.forecast(config, [short, long], horizon=4, season_length=52)
    assert result.fallbacks == {"naive": 0, "seasonal_naive": 1, "moving_average": 1, "ets": 1}
    for name in ("seasonal_naive", "ets"):
        np.testing.assert_array_equal(result.forecasts[name][0], np.full(4, 8.0))
        assert result.forecasts[name].shape == (2, 4)
    np.testing.assert_allclose(result.forecasts["moving_average"][0], np.full(4, 6.0))


def test_seasonal_ets_needs_two_full_seasons():
    seasonal = 100.0 + 10 * np.tile(SEASON, 5)  # 20 points: 2 seasons of 8, not 2 of 12
    config = BaselineConfig(names=["ets"], ets_seasonal="add")
    assert baselines.forecast(config, [seasonal], horizon=2, season_length=8).fallbacks["ets"] == 0
    assert baselines.forecast(config, [seasonal], horizon=2, season_length=12).fallbacks["ets"] == 1


@pytest.mark.parametrize("failure", ["raises", "non_finite"])
def test_a_failed_ets_fit_falls_back_to_naive(monkeypatch, failure):
    class BrokenFit:
        def forecast(self, horizon):
            return np.full(horizon, np.nan)

    class BrokenModel:
        def __init__(self, *args, **kwargs):
            pass

        def fit(self):
            if failure == "raises":
                raise np.linalg.LinAlgError("singular")
            return BrokenFit()

    monkeypatch.setattr(baselines, "ExponentialSmoothing", BrokenModel)
    result = baselines.forecast(
        BaselineConfig(names=["ets"]), [np.arange(20.0)], horizon=3, season_length=52
    )
    assert result.fallbacks == {"ets": 1}
    np.testing.assert_array_equal(result.forecasts["ets"], [[19.0, 19.0, 19.0]])


def test_unknown_baseline_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="baselines.names.*seasonal_naive"):
        BaselineConfig(names=["naive", "prophet"])
    with pytest.raises(ConfigError, match="baselines.ets_trend"):
        BaselineConfig(ets_trend="mul")


def test_histories_with_missing_values_are_rejected():
    with pytest.raises(DataError, match="history 1"):
        baselines.forecast(
            BaselineConfig(), [np.ones(3), np.array([1.0, np.nan])], horizon=2, season_length=52
        )
