"""The frequency's calendar: spacing, season length and the date each period falls on."""

import datetime
import math

import numpy as np
import pytest
import tensorflow as tf

from components.errors import ConfigError
from components.forecasting.calendar import (
    canonical_frequency,
    days_since_epoch,
    period_of,
    yearly_phase,
)
from components.forecasting.ingest_config import SeriesIngestConfig


@pytest.mark.parametrize(
    ("frequency", "months", "days", "season"),
    [
        ("W-FRI", 0, 7.0, 52),
        ("W-MON", 0, 7.0, 52),
        ("MS", 1, 0.0, 12),
        ("M", 1, 0.0, 12),  # pandas 3 calls it ME
        ("QS", 3, 0.0, 4),
        ("D", 0, 1.0, 7),
        ("H", 0, 1 / 24, 24),
        ("YE", 12, 0.0, 1),
        ("2W", 0, 14.0, None),  # no season suggested: the config must say
    ],
)
def test_each_frequency_has_its_spacing_and_season(frequency, months, days, season):
    period = period_of(frequency)
    assert (period.months, period.days, period.season_length) == (months, days, season)


def test_legacy_aliases_are_read_as_pandas_3_spells_them():
    assert [canonical_frequency(f) for f in ("M", "2M", "H", "Q", "W-FRI", "MS")] == [
        "ME",
        "2ME",
        "h",
        "QE",
        "W-FRI",
        "MS",
    ]


def test_the_season_comes_from_the_frequency_unless_the_config_says():
    assert SeriesIngestConfig(frequency="MS").periods_per_season == 12
    assert SeriesIngestConfig(frequency="M").frequency == "ME"
    assert SeriesIngestConfig(frequency="D", season_length=365).periods_per_season == 365
    with pytest.raises(ConfigError, match="ingest.frequency='2W' suggests no season length"):
        SeriesIngestConfig(frequency="2W")
    assert SeriesIngestConfig(frequency="2W", season_length=26).periods_per_season == 26
    with pytest.raises(ConfigError, match="ingest.season_length=0 must be >= 1"):
        SeriesIngestConfig(season_length=0)
    with pytest.raises(ConfigError, match="not a pandas offset alias"):
        SeriesIngestConfig(frequency="fortnightly")


def test_dates_become_days_since_epoch_in_graph():
    dates = ["1970-01-01", "2000-02-29", "2010-02-05", "2012-12-31", "1969-12-31"]
    expected = [(datetime.date.fromisoformat(d) - datetime.date(1970, 1, 1)).days for d in dates]
    assert days_since_epoch(tf.constant(dates)).numpy().tolist() == expected


def test_a_monthly_series_keeps_its_yearly_phase():
    """Counting calendar months, not 31-day steps: every January has the same phase, and the
    months are a twelfth of a year apart, whatever their length."""
    start = tf.constant(["2012-01-01", "2012-07-01"])
    steps = tf.range(-24, 13, dtype=tf.float32)
    phase = yearly_phase(start, steps, period_of("MS")).numpy() / (2 * math.pi)
    januaries = phase[0, [0, 12, 24, 36]]
    np.testing.assert_allclose(januaries - januaries[0], [0, 1, 2, 3], atol=1e-4)
    np.testing.assert_allclose(np.diff(phase[0]), 1 / 12, atol=1e-5)
    np.testing.assert_allclose(phase[1] - phase[0], 0.5, atol=1e-5)  # July is half a year on


def test_a_weekly_series_is_placed_by_its_dates():
    start = tf.constant(["2012-01-06"])
    steps = tf.constant([-52.0, 0.0, 1.0])
    phase = yearly_phase(start, steps, period_of("W-FRI")).numpy()[0] / (2 * math.pi)
    days = (datetime.date(2012, 1, 6) - datetime.date(1970, 1, 1)).days
    np.testing.assert_allclose(phase, (days + np.array([-364, 0, 7])) / 365.2425, rtol=1e-6)
