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
forecast origin. His Christmas shift (moving part of the sales between the weeks around
Christmas when the holiday falls on another weekday) is not applied here.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable

import numpy as np

from components.forecasting.statistical import Reasons


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
    members = collections.defaultdict(list)
    for index, group in enumerate(groups if groups is not None else [None] * len(histories)):
        members[group].append(index)
    for indices in members.values():
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
