"""Moving-holiday flags derived from the calendar, in-graph: a known-future covariate the model
computes from ``forecast_start`` itself, so training windows and the serving graph flag the same
periods and a request carries no holiday column.

Each holiday is a rule, not a list of dates: Easter (Gregorian computus), US Thanksgiving (fourth
Thursday of November), Christmas (December 25) and the Super Bowl (first Sunday of February
through 2021, second Sunday from 2022 on; see ``_super_bowl``). A period is flagged when the
holiday falls inside it: weekly periods are the seven days ending on their date (pandas' W-FRI
labels a week by its last day, as Walmart's files do), daily periods the day, monthly ones the
calendar month.
"""

from __future__ import annotations

import pandas as pd
import tensorflow as tf

from components.errors import ConfigError
from components.forecasting.calendar import canonical_frequency, civil_date, days_from_civil

HOLIDAYS = ("easter", "thanksgiving", "christmas", "super_bowl")
# The frequencies whose periods we can place exactly in the graph; others are refused.
FREQUENCY_KINDS = {"Week": "days", "Day": "days", "MonthEnd": "months", "MonthBegin": "months"}


def require_supported(frequency: str, holidays: list[str]) -> None:
    """Raises ConfigError unless ``frequency`` is weekly, daily or monthly (one period each)."""
    if not holidays:
        return
    offset = _offset(frequency)
    if type(offset).__name__ not in FREQUENCY_KINDS or offset.n != 1:
        raise ConfigError(
            f"model.holidays={holidays} needs a weekly (W-<DAY>), daily (D) or monthly (MS, ME) "
            f"frequency, not ingest.frequency={frequency!r}: a holiday's period is not "
            "well-defined there (a business day or an hour), or it is the same every year (a "
            "quarter or a year, which calendar_harmonics already place); set model.holidays: []"
        )


def holiday_flags(
    forecast_start: tf.Tensor, steps: tf.Tensor, frequency: str, holidays: list[str]
) -> tf.Tensor:
    """0/1 flags [batch, time, holidays]: does each holiday fall in the period ``steps`` periods
    from the one dated ``forecast_start`` (ISO dates [batch]; ``steps`` int [time])?"""
    offset = _offset(frequency)
    year, month, day = _parts(forecast_start)
    steps = tf.cast(steps, tf.int64)[None, :]
    if FREQUENCY_KINDS[type(offset).__name__] == "months":
        index = (year * 12 + month - 1)[:, None] + steps
        period_year, period_month = index // 12, index % 12 + 1
        flags = [_month_of(name, period_year) == period_month for name in holidays]
    else:
        length = 7 if type(offset).__name__ == "Week" else 1
        last = days_from_civil(year, month, day)[:, None] + steps * length
        first = last - (length - 1)
        # A week can straddle New Year: the holiday of either end's year may fall inside it.
        # Both ends go through the date arithmetic together: every op is paid for again each
        # time a model using the flags is traced (train, validation, predict, export).
        years = civil_date(tf.stack([first, last]))[0]
        flags = []
        for name in holidays:
            dates = _day_of(name, years)  # [end, batch, time]
            flags.append(tf.reduce_any((first <= dates) & (dates <= last), axis=0))
    return tf.cast(tf.stack(flags, axis=-1), tf.float32)


def holiday_date(name: str, year: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(month, day) of holiday ``name`` in each ``year`` (int64 tensors)."""
    if name == "easter":
        return _easter(year)
    if name == "christmas":
        return tf.fill(tf.shape(year), tf.constant(12, tf.int64)), tf.fill(
            tf.shape(year), tf.constant(25, tf.int64)
        )
    if name == "thanksgiving":
        return _nth_weekday(year, 11, weekday=3, nth=4)
    if name == "super_bowl":
        return _super_bowl(year)
    raise ConfigError(f"model.holidays: {name!r} is not one of {list(HOLIDAYS)}")


def _easter(year: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Gregorian Easter Sunday: the anonymous (Meeus/Jones/Butcher) computus."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month = (h + leap - 7 * m + 114) // 31
    return month, (h + leap - 7 * m + 114) % 31 + 1


def _super_bowl(year: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """First Sunday of February through 2021 (true of every Super Bowl from 2004, XXXVIII), the
    second from 2022, when the NFL's 17-game season moved it a week later (LVI, 2022-02-13).
    Assumption: that rule holds for later years; games before 2004 (some in January) are not
    modelled."""
    month, day = _nth_weekday(year, 2, weekday=6, nth=1)
    return month, day + 7 * tf.cast(year >= 2022, tf.int64)


def _nth_weekday(year: tf.Tensor, month: int, weekday: int, nth: int):
    """(month, day) of the ``nth`` ``weekday`` (Monday 0) of ``month``."""
    month = tf.fill(tf.shape(year), tf.constant(month, tf.int64))
    first = days_from_civil(year, month, tf.ones_like(year))
    first_weekday = (first + 3) % 7  # 1970-01-01 was a Thursday
    return month, 1 + (weekday - first_weekday) % 7 + 7 * (nth - 1)


def _day_of(name: str, year: tf.Tensor) -> tf.Tensor:
    month, day = holiday_date(name, year)
    return days_from_civil(year, month, day)


def _month_of(name: str, year: tf.Tensor) -> tf.Tensor:
    return holiday_date(name, year)[0]


def _offset(frequency: str) -> pd.DateOffset:
    return pd.tseries.frequencies.to_offset(canonical_frequency(frequency))


def _parts(dates: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    def number(start: int, length: int) -> tf.Tensor:
        return tf.strings.to_number(tf.strings.substr(dates, start, length), tf.int64)

    return number(0, 4), number(5, 2), number(8, 2)
