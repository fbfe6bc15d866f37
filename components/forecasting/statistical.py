"""The statistical baselines, fitted series by series with statsforecast's numba-compiled models.

Each ``fit_*`` function takes the histories cut at one forecast origin and returns the forecasts
and, per reason, how many series it could not forecast as configured: a history too short for
the model or its season, a season longer than the model fits, or a failed fit. Nothing is
dropped silently; ``components.forecasting.baselines`` records the reasons beside the scores.
"""

from __future__ import annotations

import collections
import logging
import warnings
from collections.abc import Callable

import numpy as np
from statsforecast.models import MSTL, AutoARIMA, AutoETS, AutoTheta, SeasonalNaive, WindowAverage
from tqdm import tqdm

log = logging.getLogger(__name__)

MIN_OBSERVATIONS = 10
"""Fewer points than this cannot pin down a level, a trend and their smoothing: naive instead."""
ETS_MAX_SEASON = 24
"""statsforecast's ETS keeps at most 24 seasonal states; it would quietly drop a longer season
(52 weeks), so the baseline says so and `mstl` fits such a season instead."""
THETA_MIN_SEASON = 4
"""AutoTheta tests for (and removes) a season only from 4 periods on."""

Reasons = dict[str, int]
# A series' model, and why it is not the configured one (None when it is); no model: naive.
Choice = tuple[object | None, str | None]


def seasonal_naive(histories: list[np.ndarray], horizon: int, season: int):
    """The last season repeated (statsforecast's SeasonalNaive); naive below one season."""

    def choose(history: np.ndarray) -> Choice:
        if len(history) < season:
            return None, f"shorter than a season ({season} periods): naive"
        return SeasonalNaive(season_length=season), None

    return fit_each("seasonal_naive", histories, horizon, choose)


def window_average(histories: list[np.ndarray], horizon: int, window: int):
    """The mean of the last ``window`` values (statsforecast's WindowAverage); the mean of the
    whole history when it is shorter, counted."""
    rows, reasons = [], collections.Counter()
    for history in histories:
        if len(history) < window:
            reasons[f"shorter than the window ({window} periods): mean of the history"] += 1
            rows.append(np.full(horizon, history.mean()))
        else:
            rows.append(WindowAverage(window_size=window).forecast(y=history, h=horizon)["mean"])
    return np.array(rows, dtype=float).reshape(len(histories), horizon), dict(reasons)


def auto_ets(histories: list[np.ndarray], horizon: int, season: int, model: str):
    """AutoETS (error, trend, season chosen by AICc within ``model``), seasonal where the history
    holds two seasons and the season is one ETS can hold; non-seasonal otherwise, counted."""

    def choose(history: np.ndarray) -> Choice:
        if len(history) < MIN_OBSERVATIONS:
            return None, f"shorter than {MIN_OBSERVATIONS} periods: naive"
        non_seasonal = AutoETS(season_length=1, model=model[:2] + "N")
        if season > ETS_MAX_SEASON:
            return non_seasonal, (
                f"season of {season} periods is longer than ETS fits ({ETS_MAX_SEASON}): "
                "non-seasonal ETS (mstl fits the season)"
            )
        if season > 1 and len(history) < 2 * season:
            return non_seasonal, f"shorter than two seasons ({2 * season}): non-seasonal ETS"
        return AutoETS(season_length=season, model=model), None

    return fit_each("auto_ets", histories, horizon, choose)


def auto_theta(histories: list[np.ndarray], horizon: int, season: int):
    """AutoTheta (the best of the theta variants by in-sample MSE), on the history with its season
    removed where a seasonality test finds one; that needs two seasons of 4 periods or more."""

    def choose(history: np.ndarray) -> Choice:
        if len(history) < MIN_OBSERVATIONS:
            return None, f"shorter than {MIN_OBSERVATIONS} periods: naive"
        if 1 < season < THETA_MIN_SEASON:
            reason = f"season of {season} periods is shorter than theta tests for: non-seasonal"
            return AutoTheta(season_length=1), reason
        if season > 1 and len(history) < 2 * season:
            reason = f"shorter than two seasons ({2 * season}): non-seasonal theta"
            return AutoTheta(season_length=1), reason
        return AutoTheta(season_length=season), None

    return fit_each("auto_theta", histories, horizon, choose)


def auto_arima(histories: list[np.ndarray], horizon: int, season: int):
    """AutoARIMA (stepwise search), seasonal where the history holds two seasons."""

    def choose(history: np.ndarray) -> Choice:
        if len(history) < MIN_OBSERVATIONS:
            return None, f"shorter than {MIN_OBSERVATIONS} periods: naive"
        if season > 1 and len(history) < 2 * season:
            reason = f"shorter than two seasons ({2 * season}): non-seasonal ARIMA"
            return AutoARIMA(season_length=1), reason
        return AutoARIMA(season_length=season), None

    return fit_each("auto_arima", histories, horizon, choose)


def mstl(histories: list[np.ndarray], horizon: int, season: int):
    """MSTL: the season taken out by STL and repeated, the rest forecast by a non-seasonal
    AutoETS; how a season longer than ETS holds (52 weeks) gets seasonal exponential smoothing.
    Needs a season and two of them in the history; naive otherwise."""

    def choose(history: np.ndarray) -> Choice:
        if season < 2:
            return None, "no season (season_length 1): naive"
        if len(history) < 2 * season:
            return None, f"shorter than two seasons ({2 * season}): naive"
        return MSTL(season_length=season, trend_forecaster=AutoETS(model="ZZN")), None

    return fit_each("mstl", histories, horizon, choose)


def fit_each(
    name: str, histories: list[np.ndarray], horizon: int, choose: Callable[[np.ndarray], Choice]
) -> tuple[np.ndarray, Reasons]:
    """Each history's forecasts from the model ``choose`` picks for it; naive where it picks
    none, the fit fails or the forecast is not finite. Returns the forecasts and the reasons."""
    rows, reasons = [], collections.Counter()
    # A progress bar only where the fits take a while (thousands of series).
    bar = tqdm(histories, desc=name, unit=" series", mininterval=5, disable=len(histories) < 500)
    for history in bar:
        model, reason = choose(history)
        values = None if model is None else _forecast(model, history, horizon)
        if model is not None and values is None:
            reason = "the fit failed or was not finite: naive"
        if reason:
            reasons[reason] += 1
        rows.append(np.full(horizon, history[-1]) if values is None else values)
    return np.array(rows, dtype=float).reshape(len(histories), horizon), dict(reasons)


def _forecast(model, history: np.ndarray, horizon: int) -> np.ndarray | None:
    try:
        with warnings.catch_warnings():
            # Convergence warnings over thousands of series drown the log; failures are counted.
            warnings.simplefilter("ignore")
            values = np.asarray(model.forecast(y=history, h=horizon)["mean"], dtype=float)
    except Exception as error:  # any failure of one series' fit means naive for that series
        log.debug("%r fit failed: %s", model, error)
        return None
    return values if values.shape == (horizon,) and np.isfinite(values).all() else None
