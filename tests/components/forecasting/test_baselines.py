import numpy as np
import pytest

from components.errors import ConfigError, DataError
from components.forecasting import baselines, statistical, svd_smoothing
from components.forecasting.baselines import BaselineConfig

SEASON = [1.0, 5.0, 3.0, 9.0]
# A clean periodic series: 6 seasons of 4 around a level of 100, ending on the season's last point.
PERIODIC = 100.0 + 10 * np.tile(SEASON, 6)
PERIODIC_FUTURE = 100.0 + 10 * np.tile(SEASON, 2)[:6]


def forecast(names, histories, horizon=6, season_length=4, **config):
    return baselines.forecast(
        BaselineConfig(names=names, **config), histories, horizon, season_length
    )


def test_seasonal_naive_is_exact_on_a_seasonal_series_and_naive_is_not():
    history = np.tile(SEASON, 3)  # ends on 9, the last point of a season
    result = forecast(["naive", "seasonal_naive"], [history])
    future = np.tile(SEASON, 2)[:6]  # the season repeats when the horizon is longer than one
    np.testing.assert_array_equal(result.forecasts["seasonal_naive"], [future])
    np.testing.assert_array_equal(result.forecasts["naive"], [np.full(6, 9.0)])
    assert result.fallbacks == {"naive": 0, "seasonal_naive": 0}


def test_naive_is_exact_on_a_constant_series_and_keeps_series_order():
    result = forecast(["naive"], [np.full(5, 7.0), np.array([1.0, 2.0])], 3, 52)
    np.testing.assert_array_equal(result.forecasts["naive"], [[7.0, 7.0, 7.0], [2.0, 2.0, 2.0]])


def test_moving_average_takes_the_mean_of_the_last_window():
    history = np.array([100.0, 1.0, 2.0, 3.0, 6.0])
    result = forecast(["moving_average"], [history], 2, 52, moving_average_window=4)
    np.testing.assert_allclose(result.forecasts["moving_average"], [[3.0, 3.0]])  # 12 / 4
    # A whole season's window on the periodic series: the season's mean, (1+5+3+9)/4 = 4.5.
    result = forecast(["moving_average"], [PERIODIC], moving_average_window=4)
    np.testing.assert_allclose(result.forecasts["moving_average"], [np.full(6, 145.0)])


@pytest.mark.parametrize("name", ["auto_ets", "auto_theta", "mstl"])
def test_seasonal_models_reproduce_a_clean_periodic_series(name):
    result = forecast([name], [PERIODIC])
    # Within 1% of the season's swing (80): the season was fitted, not averaged away.
    np.testing.assert_allclose(result.forecasts[name], [PERIODIC_FUTURE], atol=0.8)
    assert result.fallbacks == {name: 0}


def test_auto_arima_reproduces_a_clean_periodic_series():
    result = forecast(["auto_arima"], [PERIODIC])
    np.testing.assert_allclose(result.forecasts["auto_arima"], [PERIODIC_FUTURE], atol=0.8)


def test_ets_follows_a_linear_trend_better_than_naive():
    steps = np.arange(40.0)
    history, future = 10.0 + 2.0 * steps[:30], 10.0 + 2.0 * steps[30:]
    result = forecast(["naive", "auto_ets"], [history], 10, 1)
    ets_error = np.abs(result.forecasts["auto_ets"][0] - future).mean()
    naive_error = np.abs(result.forecasts["naive"][0] - future).mean()
    assert ets_error < 0.2 * naive_error
    assert result.fallbacks["auto_ets"] == 0


def test_short_series_fall_back_and_every_fallback_says_why():
    short, long = np.array([4.0, 6.0, 8.0]), 50.0 + np.sin(np.arange(60.0))
    result = baselines.forecast(BaselineConfig(), [short, long], horizon=4, season_length=52)
    assert result.fallback_reasons == {
        "naive": {},
        "seasonal_naive": {"shorter than a season (52 periods): naive": 1},
        "moving_average": {"shorter than the window (8 periods): mean of the history": 1},
        # The 60-week series holds one season, not two, and ETS holds no 52-period season.
        "auto_ets": {
            "shorter than 10 periods: naive": 1,
            "season of 52 periods is longer than ETS fits (24): non-seasonal ETS (mstl fits "
            "the season)": 1,
        },
        "auto_theta": {
            "shorter than 10 periods: naive": 1,
            "shorter than two seasons (104): non-seasonal theta": 1,
        },
        "mstl": {"shorter than two seasons (104): naive": 2},
    }
    assert result.fallbacks == {
        name: sum(r.values()) for name, r in result.fallback_reasons.items()
    }
    for name in ("seasonal_naive", "auto_ets", "auto_theta", "mstl"):
        np.testing.assert_array_equal(result.forecasts[name][0], np.full(4, 8.0))
        assert result.forecasts[name].shape == (2, 4)
    np.testing.assert_allclose(result.forecasts["moving_average"][0], np.full(4, 6.0))


def test_ets_is_seasonal_only_with_two_full_seasons():
    seasonal = 100.0 + 10 * np.tile(SEASON, 5)  # 20 points: 2 seasons of 8, not 2 of 12
    assert forecast(["auto_ets"], [seasonal], 2, 8).fallbacks["auto_ets"] == 0
    reasons = forecast(["auto_ets"], [seasonal], 2, 12).fallback_reasons["auto_ets"]
    assert reasons == {"shorter than two seasons (24): non-seasonal ETS": 1}


@pytest.mark.parametrize("failure", ["raises", "non_finite"])
def test_a_failed_fit_falls_back_to_naive(monkeypatch, failure):
    class BrokenModel:
        def __init__(self, *args, **kwargs):
            pass

        def forecast(self, y, h):
            if failure == "raises":
                raise np.linalg.LinAlgError("singular")
            return {"mean": np.full(h, np.nan)}

    monkeypatch.setattr(statistical, "AutoETS", BrokenModel)
    result = forecast(["auto_ets"], [np.arange(20.0)], 3, 1)
    assert result.fallback_reasons == {"auto_ets": {"the fit failed or was not finite: naive": 1}}
    np.testing.assert_array_equal(result.forecasts["auto_ets"], [[19.0, 19.0, 19.0]])


def test_every_baseline_records_its_fit_time():
    names = ["naive", "seasonal_naive", "moving_average", "auto_ets"]
    result = forecast(names, [PERIODIC, PERIODIC + 1])
    assert list(result.fit_seconds) == names
    assert all(isinstance(s, float) and s >= 0 for s in result.fit_seconds.values())
    assert result.fit_seconds["auto_ets"] > 0


# A department's stores: 4 series of one group, 8 periods each (two seasons of 4), the third
# starting two periods late (right-aligned, the missing periods 0 in the matrix), and a second
# group "b" of one series.
GROUP = [
    np.array([10.0, 14.0, 12.0, 20.0, 11.0, 15.0, 12.0, 21.0]),
    np.array([5.0, 8.0, 6.0, 11.0, 6.0, 7.0, 7.0, 10.0]),
    np.array([30.0, 29.0, 44.0, 33.0, 31.0, 46.0]),
    np.array([1.0, 2.0, 2.0, 3.0, 1.0, 3.0, 1.0, 4.0]),
]


def svd_forecast(histories, groups, rank=1):
    config = BaselineConfig(names=["svd_seasonal_naive"], svd_group_by="Dept", svd_rank=rank)
    return baselines.forecast(config, histories, 6, 4, groups=groups)


def test_svd_seasonal_naive_repeats_last_season_of_the_rank_k_reconstruction():
    odd_one = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    result = svd_forecast([*GROUP, odd_one], ["a", "a", "a", "a", "b"])
    matrix = np.column_stack([np.concatenate([np.zeros(8 - len(h)), h]) for h in GROUP])
    u, s, vt = np.linalg.svd(matrix)
    rank_1 = s[0] * np.outer(u[:, 0], vt[0])
    expected = [np.resize(rank_1[-4:, column], 6) for column in range(4)]
    np.testing.assert_allclose(result.forecasts["svd_seasonal_naive"][:4], expected)
    # Group "b" holds one series, which a rank-1 smoothing would give back unchanged: plain
    # seasonal naive, counted.
    np.testing.assert_array_equal(result.forecasts["svd_seasonal_naive"][4], [1, 4, 1, 5, 1, 4])
    assert result.fallback_reasons["svd_seasonal_naive"] == {
        "group of 1 series or fewer, nothing to smooth: seasonal naive": 1
    }


def test_svd_smoothing_removes_store_noise_that_seasonal_naive_repeats():
    """Stores of one department share its season at their own scale; each week adds noise.
    The rank-1 smoothing recovers the shared season, seasonal naive repeats last year's noise."""
    rng = np.random.default_rng(0)
    pattern, scales = 50.0 + 10 * np.tile(SEASON, 3), rng.uniform(1, 3, size=20)
    histories = [scale * pattern + rng.normal(0, 10, pattern.size) for scale in scales]
    truth = np.array([scale * pattern[:6] for scale in scales])
    smoothed = svd_forecast(histories, ["dept"] * 20).forecasts["svd_seasonal_naive"]
    raw = forecast(["seasonal_naive"], histories).forecasts["seasonal_naive"]
    assert np.abs(smoothed - truth).mean() < 0.5 * np.abs(raw - truth).mean()


def test_svd_without_a_grouping_falls_back_to_seasonal_naive_and_says_why():
    config = BaselineConfig(names=["svd_seasonal_naive", "seasonal_naive"], svd_group_by="Dept")
    result = baselines.forecast(config, GROUP, 6, 4, missing_grouping="no column 'Dept'")
    np.testing.assert_array_equal(
        result.forecasts["svd_seasonal_naive"], result.forecasts["seasonal_naive"]
    )
    assert result.fallback_reasons["svd_seasonal_naive"] == {"no column 'Dept': seasonal naive": 4}


def test_svd_smoothing_at_full_rank_gives_the_histories_back():
    smoothed = svd_smoothing.smooth(GROUP, rank=4)
    for history, values in zip(GROUP, smoothed, strict=True):
        np.testing.assert_allclose(values, history, atol=1e-9)


def test_config_errors_name_the_field_and_the_choices():
    with pytest.raises(ConfigError, match="baselines.names.*seasonal_naive"):
        BaselineConfig(names=["naive", "prophet"])
    with pytest.raises(ConfigError, match="renamed.*auto_ets"):
        BaselineConfig(names=["ets"])
    with pytest.raises(ConfigError, match="baselines.ets_model='ZZX'"):
        BaselineConfig(ets_model="ZZX")
    with pytest.raises(ConfigError, match="baselines.svd_group_by"):
        BaselineConfig(names=["svd_seasonal_naive"])


def test_histories_with_missing_values_are_rejected():
    with pytest.raises(DataError, match="history 1"):
        baselines.forecast(
            BaselineConfig(), [np.ones(3), np.array([1.0, np.nan])], horizon=2, season_length=52
        )


def weekly_christmas_sales(years: range, surge_days: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Friday-ending weekly sums of daily sales of 10 a day, tripled on the ``surge_days`` days
    before each Christmas: (week ends, weekly sales)."""
    days = np.arange(np.datetime64(f"{years.start}-01-01"), np.datetime64(f"{years.stop}-01-01"))
    daily = np.full(len(days), 10.0)
    for year in years:
        christmas = np.datetime64(f"{year}-12-25")
        daily[(days >= christmas - surge_days) & (days < christmas)] *= 3
    fridays = np.flatnonzero(days.astype("datetime64[D]").view("int64") % 7 == 1)  # 1970-01-02
    ends = days[fridays[fridays >= 6]]
    weekly = np.array([daily[(days > end - 7) & (days <= end)].sum() for end in ends])
    return ends, weekly


def test_the_christmas_shift_moves_sales_the_weekday_moved_into_the_next_week():
    ends, weekly = weekly_christmas_sales(range(2010, 2013))
    horizon = 8
    last = int(np.flatnonzero(ends == np.datetime64("2012-11-09"))[0])  # the first forecast
    history, future = weekly[:last], weekly[last : last + horizon]
    dates = ends[last : last + horizon]
    histories = [history * scale for scale in (1.0, 2.0, 3.0)]  # one department's stores
    config = dict(svd_group_by="Dept", svd_rank=1)
    plain = baselines.forecast(
        BaselineConfig(names=["svd_seasonal_naive"], **config), histories, horizon, 52,
        ["d"] * 3, forecast_dates=np.tile(dates, (3, 1)),
    ).forecasts["svd_seasonal_naive"]  # fmt: skip
    shifted = baselines.forecast(
        BaselineConfig(names=["svd_seasonal_naive"], svd_christmas_shift=True, **config),
        histories, horizon, 52, ["d"] * 3, forecast_dates=np.tile(dates, (3, 1)),
    ).forecasts["svd_seasonal_naive"]  # fmt: skip
    # By hand: Christmas 2011 was a Sunday, 5 days before the week's Friday end; 2012's a
    # Tuesday, 3 days before: 2 days. Weeks 2..5 of the window (forecast steps 4..8, ending
    # 2012-11-30 .. 12-28) keep 5/7 and gain 2/7 of the week before.
    window = slice(3, 8)
    assert list(dates[window].astype(str)) == [
        "2012-11-30", "2012-12-07", "2012-12-14", "2012-12-21", "2012-12-28"
    ]  # fmt: skip
    weeks = plain[:, window]
    expected = weeks * 5 / 7
    expected[:, 1:] += weeks[:, :-1] * 2 / 7
    expected[:, 0] = weeks[:, 0]
    np.testing.assert_allclose(shifted[:, window], expected)
    np.testing.assert_array_equal(shifted[:, :3], plain[:, :3])  # outside the window
    truth = np.outer([1.0, 2.0, 3.0], future)
    assert np.abs(shifted - truth).sum() < 0.5 * np.abs(plain - truth).sum()


def test_the_christmas_shift_leaves_groups_without_a_surge_and_partial_windows_alone():
    ends, weekly = weekly_christmas_sales(range(2010, 2013), surge_days=0)
    last = int(np.flatnonzero(ends == np.datetime64("2012-11-02"))[0])
    flat = np.tile(weekly[last : last + 8], (2, 1))
    dates = np.tile(ends[last : last + 8], (2, 1))
    unchanged, count = svd_smoothing.christmas_shift(flat, dates, ["a", "a"])
    assert count == 0 and np.array_equal(unchanged, flat)
    # A horizon that ends with Christmas's week but holds only 3 of the 5: nothing to move from.
    ends, weekly = weekly_christmas_sales(range(2010, 2013))
    last = int(np.flatnonzero(ends == np.datetime64("2012-12-14"))[0])
    partial = np.tile(weekly[last : last + 3], (1, 1))
    same, count = svd_smoothing.christmas_shift(partial, ends[None, last : last + 3], None)
    assert count == 0 and np.array_equal(same, partial)


def test_the_christmas_shift_is_not_applied_to_other_frequencies_and_says_so():
    config = BaselineConfig(
        names=["svd_seasonal_naive"], svd_group_by="D", svd_christmas_shift=True
    )
    result = baselines.forecast(config, GROUP, 6, 4, ["a"] * 4)
    plain = baselines.forecast(
        BaselineConfig(names=["svd_seasonal_naive"], svd_group_by="D"), GROUP, 6, 4, ["a"] * 4
    )
    np.testing.assert_array_equal(
        result.forecasts["svd_seasonal_naive"], plain.forecasts["svd_seasonal_naive"]
    )
    reason = "Christmas shift needs weekly periods (season 52) and dates: not applied"
    assert result.fallback_reasons["svd_seasonal_naive"][reason] == 4
