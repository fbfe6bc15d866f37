"""Seasonal naive on SVD-smoothed histories: the Walmart sales competition winner's recipe.

The winner (David Thaler, Kaggle "Walmart Recruiting - Store Sales Forecasting", 2014) put each
department's weekly histories across stores side by side in a weeks x stores matrix, missing
weeks as 0, kept its leading singular components (10 to 15 of them) and forecast from that
reduced-rank matrix instead of the raw sales (his ``preprocess.svd``; he then fitted STL + ETS
and seasonal ARIMA to the smoothed columns, here last season is repeated). What the stores
share (the department's season, holidays) survives; one store's noise in one week does not, so
last season's smoothed week is a better guess than the raw one. Any table works whose series
share a grouping key in the same way (departments across stores, products across shops), as
long as the series of a group end at the same period; the backtest's histories all end at its
forecast origin.

His Christmas shift (``christmas_shift``) follows: a weekly forecast copies last year's same week,
but Christmas falls one weekday later each year (two after a 29 February), so some of last
year's pre-Christmas shopping days now belong to the next week. Where a group's forecast shows a
Christmas surge, that share of each week of the five ending with Christmas's moves on a week.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable

import numpy as np

from components.forecasting.statistical import Reasons

SURGE_THRESHOLD = 1.1
"""The three weeks before Christmas's must average this much more than the weeks around them
(the winner's threshold) for a group's forecast to hold a surge worth moving."""
WINDOW_WEEKS = 5


def forecast(
    histories: list[np.ndarray],
    groups: list[Hashable] | None,
    horizon: int,
    season: int,
    rank: int,
    missing_grouping: str,
) -> tuple[np.ndarray, Reasons]:
    """Each series' last season of its group's rank-``rank`` smoothed history, repeated.

    Args:
        histories: Each series' values up to the forecast origin; those of one group end at the
            same period.
        groups: Each series' group (e.g. its department); None when the data has no grouping
            key, and every series falls back to plain seasonal naive with ``missing_grouping``
            as the recorded reason.
        horizon: Steps to forecast.
        season: Periods per season.
        rank: Singular components kept per group.
        missing_grouping: Why there are no groups, for the record.

    Returns:
        Forecasts (series, horizon) and, per reason, the series not forecast as configured:
        shorter than a season (naive), or in a group of at most ``rank`` series, whose
        smoothing would give back the raw histories (plain seasonal naive).
    """
    rows = np.empty((len(histories), horizon))
    reasons: collections.Counter = collections.Counter()
    for indices in _members(groups, len(histories)):
        group_histories = [histories[i] for i in indices]
        if groups is None:
            reason, smoothed = f"{missing_grouping}: seasonal naive", group_histories
        elif len(indices) <= rank:
            reason = f"group of {rank} series or fewer, nothing to smooth: seasonal naive"
            smoothed = group_histories
        else:
            reason, smoothed = None, smooth(group_histories, rank)
        for index, history, values in zip(indices, group_histories, smoothed, strict=True):
            if len(history) < season:
                reasons[f"shorter than a season ({season} periods): naive"] += 1
                rows[index] = history[-1]
                continue
            if reason:
                reasons[reason] += 1
            rows[index] = np.resize(values[-season:], horizon)
    return rows, dict(reasons)


def smooth(histories: list[np.ndarray], rank: int) -> list[np.ndarray]:
    """The histories, aligned at their last period with missing earlier periods as 0, replaced
    by the matrix's best rank-``rank`` approximation (truncated SVD), each cut to its length."""
    length = max(len(history) for history in histories)
    matrix = np.zeros((length, len(histories)))
    for column, history in enumerate(histories):
        matrix[length - len(history) :, column] = history
    left, singular, right = np.linalg.svd(matrix, full_matrices=False)
    kept = min(rank, len(singular))
    approximation = (left[:, :kept] * singular[:kept]) @ right[:kept]
    return [approximation[length - len(h) :, column] for column, h in enumerate(histories)]


def christmas_shift(
    forecasts: np.ndarray, dates: np.ndarray, groups: list[Hashable] | None
) -> tuple[np.ndarray, int]:
    """Weekly seasonal forecasts with part of each Christmas-window week moved to the next week.

    The window is the five forecast weeks ending with the one that holds 25 December (weeks
    labelled by their last day, as pandas' ``W-FRI``); it must lie inside the horizon. Each
    week but the first keeps (7 - d)/7 of itself and gains d/7 of the week before, d being how
    many days later in its week Christmas falls than it did one season (364 days) earlier. Only
    groups whose summed forecast has the surge (``SURGE_THRESHOLD``) are shifted.

    Args:
        forecasts: [series, horizon] seasonal forecasts.
        dates: [series, horizon] each forecast week's last day (datetime64).
        groups: Each series' group (the surge is judged per group); None: one group.

    Returns:
        The shifted forecasts and how many series were shifted.
    """
    shifted = np.array(forecasts, dtype=float)
    dates = np.asarray(dates, "datetime64[D]")
    count = 0
    for indices in _members(groups, len(forecasts)):
        rows = np.asarray(indices)
        window, days = _christmas_window(dates[rows[0]])
        if window is None or days == 0:
            continue
        weeks = shifted[np.ix_(rows, window)]
        total = weeks.sum(axis=0)
        baseline = (total[0] + total[-1]) / 2
        if not baseline > 0 or total[1:-1].mean() / baseline <= SURGE_THRESHOLD:
            continue
        moved = weeks * (7 - days) / 7
        moved[:, 1:] += weeks[:, :-1] * days / 7
        moved[:, 0] = weeks[:, 0]
        shifted[np.ix_(rows, window)] = moved
        count += len(rows)
    return shifted, count


def _members(groups: list[Hashable] | None, count: int) -> list[list[int]]:
    """The series indices of each group, in first-seen order; one group when ``groups`` is None."""
    members = collections.defaultdict(list)
    for index, group in enumerate(groups if groups is not None else [None] * count):
        members[group].append(index)
    return list(members.values())


def _christmas_window(week_ends: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Horizon indices of the five weeks ending with Christmas's, and how many days later in its
    week Christmas falls than one season earlier; (None, 0) when the window is not all inside."""
    for step, end in enumerate(week_ends):
        year = end.astype("datetime64[Y]").astype(int) + 1970
        christmas = np.datetime64(f"{year}-12-25")
        if 0 <= (end - christmas).astype(int) <= 6:
            if step < WINDOW_WEEKS - 1:
                return None, 0
            last_christmas = np.datetime64(f"{year - 1}-12-25")
            days_before_end = (end - christmas).astype(int)
            last_days_before_end = (end - np.timedelta64(364, "D") - last_christmas).astype(int)
            return np.arange(step - WINDOW_WEEKS + 1, step + 1), int(
                last_days_before_end - days_before_end
            )
    return None, 0
