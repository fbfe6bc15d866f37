import datetime

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from dateutil.easter import easter

from components.errors import ConfigError
from components.forecasting.holidays import HOLIDAYS, holiday_flags, require_supported


def reference_dates(year: int) -> dict[str, datetime.date]:
    """Each holiday of ``year`` from pandas and dateutil, independent of the graph's arithmetic."""
    november = pd.date_range(f"{year}-11-01", f"{year}-11-30")
    february_sundays = pd.date_range(f"{year}-02-01", f"{year}-02-28", freq="W-SUN")
    return {
        "easter": easter(year),
        "thanksgiving": november[november.weekday == 3][3].date(),
        "christmas": datetime.date(year, 12, 25),
        "super_bowl": february_sundays[0 if year <= 2021 else 1].date(),
    }


def reference_flags(labels: pd.DatetimeIndex, period: str) -> np.ndarray:
    """pandas' Period of each label (W-FRI: Saturday to Friday) against each holiday's Period."""
    holidays = {
        year: {name: pd.Period(day, period) for name, day in reference_dates(year).items()}
        for year in range(labels.year.min() - 1, labels.year.max() + 2)
    }
    return np.array(
        [
            [
                any(holidays[year][name] == label.to_period(period) for year in holidays)
                for name in HOLIDAYS
            ]
            for label in labels
        ],
        np.float32,
    )


def graph_flags(labels: pd.DatetimeIndex, frequency: str, start: int) -> np.ndarray:
    """The graph's flags for ``labels``, placed from the label at ``start`` as forecast_start."""
    steps = tf.range(-start, len(labels) - start)
    first = tf.constant([f"{labels[start]:%Y-%m-%d}"])
    return holiday_flags(first, steps, frequency, list(HOLIDAYS)).numpy()[0]


@pytest.mark.parametrize(
    ("frequency", "period"),
    [("W-FRI", "W-FRI"), ("W-SUN", "W-SUN"), ("D", "D"), ("MS", "M"), ("ME", "M")],
)
def test_the_graph_flags_the_periods_pandas_does_2010_to_2030(frequency, period):
    labels = pd.date_range("2010-01-01", "2030-12-31", freq=frequency)
    flags = graph_flags(labels, frequency, start=len(labels) // 3)
    np.testing.assert_array_equal(flags, reference_flags(labels, period))
    years = len(set(labels.year))
    assert flags.sum(axis=0).tolist() == [years] * len(HOLIDAYS)  # once a year, each


def test_known_holidays_flag_the_walmart_weeks_that_contain_them():
    # Walmart's weeks end on Friday: the week dated 2012-02-10 holds Super Bowl XLVI (Feb 5).
    weeks = pd.DatetimeIndex(["2012-02-10", "2012-11-23", "2012-12-28", "2024-04-05"])
    expected = {
        "2012-02-10": "super_bowl",
        "2012-11-23": "thanksgiving",  # 2012-11-22
        "2012-12-28": "christmas",
        "2024-04-05": "easter",  # 2024-03-31
    }
    for week in weeks:
        first = tf.constant([f"{week:%Y-%m-%d}"])
        flags = holiday_flags(first, tf.range(-1, 2), "W-FRI", list(HOLIDAYS)).numpy()[0]
        flagged = [name for name, on in zip(HOLIDAYS, flags[1], strict=True) if on]
        assert flagged == [expected[f"{week:%Y-%m-%d}"]]
        assert flags[[0, 2]].sum() == 0  # the weeks either side are plain


def test_daily_flags_fall_on_the_holidays_themselves():
    days = pd.date_range("2024-01-01", "2024-12-31", freq="D")
    flags = graph_flags(days, "D", start=0)
    flagged = {name: days[flags[:, i] > 0][0].date() for i, name in enumerate(HOLIDAYS)}
    assert flagged == {
        "easter": datetime.date(2024, 3, 31),
        "thanksgiving": datetime.date(2024, 11, 28),
        "christmas": datetime.date(2024, 12, 25),
        "super_bowl": datetime.date(2024, 2, 11),
    }


@pytest.mark.parametrize("frequency", ["B", "h", "QE", "YE", "2W-FRI"])
def test_frequencies_without_a_holiday_period_are_refused(frequency):
    with pytest.raises(ConfigError, match="model.holidays"):
        require_supported(frequency, ["easter"])
    require_supported(frequency, [])  # none asked for: nothing to refuse
