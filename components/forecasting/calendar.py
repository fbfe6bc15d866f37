"""The calendar behind a series' frequency: how far apart its periods are, its season, its year.

Everything that depends on the frequency reads it here: the seasonal-naive baseline and MASE
(season length), the seasonal residual (last season's same periods), the yearly calendar features
(which date each period falls on) and the check that training history covers a year.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import tensorflow as tf

from components.errors import ConfigError

LEGACY_ALIASES = {"M": "ME", "Q": "QE", "A": "YE", "Y": "YE", "H": "h", "T": "min", "S": "s"}
"""Aliases pandas 3 no longer accepts -> the ones it does, so ``frequency: M`` still works."""
DAYS_PER_YEAR = 365.2425


@dataclasses.dataclass(frozen=True)
class Period:
    """How far apart consecutive periods are: whole months (month- and quarter-based frequencies,
    whose length in days varies) or a fixed number of days (hours are fractions of one)."""

    months: int = 0
    days: float = 0.0
    season_length: int | None = None
    """Periods per season, as the frequency suggests (W: 52, M: 12, Q: 4, D: 7, B: 5, H: 24;
    yearly: 1); None when it suggests none, and the config must say."""

    @property
    def periods_per_year(self) -> float:
        return 12 / self.months if self.months else DAYS_PER_YEAR / self.days


def canonical_frequency(frequency: str) -> str:
    """``frequency`` as pandas 3 spells it (``M`` -> ``ME``, ``H`` -> ``h``, ``2M`` -> ``2ME``)."""
    count = frequency.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")
    rule = frequency[len(count) :]
    return count + LEGACY_ALIASES.get(rule, rule)


def period_of(frequency: str) -> Period:
    """The spacing and season of ``frequency`` (a pandas offset alias such as W-FRI or MS)."""
    try:
        offset = pd.tseries.frequencies.to_offset(canonical_frequency(frequency))
    except ValueError as error:
        raise ConfigError(
            f"ingest.frequency={frequency!r} is not a pandas offset alias such as W-FRI, MS, D "
            f"or h: {error}"
        ) from error
    kind, count = type(offset).__name__, offset.n
    seasons = {"Week": 52, "Day": 7, "BusinessDay": 5, "Hour": 24}
    if kind.startswith(("Month", "Quarter", "Year")):
        months = {"Month": 1, "Quarter": 3, "Year": 12}[
            kind.removesuffix("End").removesuffix("Begin")
        ]
        season = {1: 12, 3: 4, 12: 1}[months] if count == 1 else None
        return Period(months=months * count, season_length=season)
    days = {"Week": 7.0, "Day": 1.0, "BusinessDay": 7 / 5, "Hour": 1 / 24, "Minute": 1 / 1440}
    if kind not in days:
        raise ConfigError(
            f"ingest.frequency={frequency!r} ({kind}) is not supported; use a weekly, daily, "
            "business-day, hourly, monthly, quarterly or yearly frequency"
        )
    season = seasons.get(kind) if count == 1 else None
    return Period(days=days[kind] * count, season_length=season)


def yearly_phase(forecast_start: tf.Tensor, steps: tf.Tensor, period: Period) -> tf.Tensor:
    """Fraction of the year (in radians) at each step from the first forecast date, in-graph.

    ``forecast_start``: [batch] ISO dates; ``steps``: [time] period offsets (negative: history).
    Month-based periods count calendar months, so a monthly series keeps its phase; fixed
    periods count days.
    """
    if period.months:
        year, month, day = _date_parts(forecast_start)
        # Counted from 2000 (a whole number of years: the phase is the same) to keep float32's
        # precision on the fraction of the year.
        months = (year - 2000.0) * 12.0 + month - 1.0 + (day - 1.0) / 30.4375
        position = (months[:, None] + steps[None, :] * period.months) / 12.0
    else:
        days = days_since_epoch(forecast_start)
        position = (days[:, None] + steps[None, :] * period.days) / DAYS_PER_YEAR
    return 2.0 * math.pi * position


def days_since_epoch(dates: tf.Tensor) -> tf.Tensor:
    """ISO dates as strings -> days since 1970-01-01, in-graph."""
    year, month, day = (tf.cast(part, tf.int64) for part in _date_parts(dates))
    return tf.cast(days_from_civil(year, month, day), tf.float32)


def days_from_civil(year: tf.Tensor, month: tf.Tensor, day: tf.Tensor) -> tf.Tensor:
    """Int64 year, month, day -> days since 1970-01-01 (Hinnant's days_from_civil)."""
    after_february = tf.cast(month > 2, tf.int64)
    year = year - (1 - after_february)
    era = year // 400
    year_of_era = year - era * 400
    month_from_march = month - 3 + 12 * (1 - after_february)
    day_of_year = (153 * month_from_march + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def civil_date(days: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Int64 days since 1970-01-01 -> (year, month, day) (Hinnant's civil_from_days)."""
    shifted = days + 719468
    era = shifted // 146097
    day_of_era = shifted - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_from_march = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_from_march + 2) // 5 + 1
    month = tf.where(month_from_march < 10, month_from_march + 3, month_from_march - 9)
    year = year_of_era + era * 400 + tf.cast(month <= 2, tf.int64)
    return year, month, day


def _date_parts(dates: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    def number(start: int, length: int) -> tf.Tensor:
        return tf.strings.to_number(tf.strings.substr(dates, start, length), tf.float32)

    return number(0, 4), number(5, 2), number(8, 2)
