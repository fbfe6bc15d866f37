"""Classical baseline forecasts, made from the same forecast origins as the neural model.

Given each series' history up to the origin, ``forecast`` predicts ``horizon`` steps with naive,
seasonal naive, moving-average and exponential-smoothing (ETS) methods; the forecast evaluator
scores them beside the model, so a network has to beat them to be worth its cost. It is a plain
function rather than a ``run`` component because it reads and writes no artifacts: the forecasting
pipeline calls it once per backtest fold, with histories cut at that fold's origin.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable

import numpy as np
from statsmodels.tsa.holtwinters import ExponentialSmoothing
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from components.errors import ConfigError, DataError

log = logging.getLogger(__name__)

BASELINES = ("naive", "seasonal_naive", "moving_average", "ets")
# Level, trend and damping are fitted from the data; fewer points than this cannot pin them down.
ETS_MIN_OBSERVATIONS = 10
# Sales can be zero or negative (returns), so multiplicative components are not offered.
ETS_COMPONENTS = (None, "add")


@dataclasses.dataclass
class BaselineConfig:
    names: list[str] = dataclasses.field(default_factory=lambda: list(BASELINES))
    """Baselines to compute, any of ``BASELINES``."""
    moving_average_window: int = 8
    """How many of the latest values the moving average takes."""
    ets_trend: str | None = "add"
    """Trend of the ETS model: ``None`` or ``"add"``."""
    ets_damped_trend: bool = True
    """Damp the ETS trend towards flat over the horizon; ignored without a trend."""
    ets_seasonal: str | None = None
    """Seasonality of the ETS model: ``None`` or ``"add"`` (needs two full seasons of history)."""

    def __post_init__(self):
        unknown = sorted(set(self.names) - set(BASELINES))
        if unknown or not self.names:
            raise ConfigError(
                f"baselines.names={self.names} must be a non-empty list of {list(BASELINES)}"
            )
        if self.moving_average_window < 1:
            raise ConfigError(
                f"baselines.moving_average_window={self.moving_average_window} must be at least 1"
            )
        for field in ("ets_trend", "ets_seasonal"):
            if getattr(self, field) not in ETS_COMPONENTS:
                raise ConfigError(
                    f"baselines.{field}={getattr(self, field)!r} must be one of {ETS_COMPONENTS}"
                )


@dataclasses.dataclass(frozen=True)
class BaselineForecasts:
    forecasts: dict[str, np.ndarray]
    """Baseline name -> forecasts of shape (series, horizon), in the histories' units."""
    fallbacks: dict[str, int]
    """Baseline name -> how many series it could not forecast as configured: seasonal naive and
    ETS fell back to naive (history too short, or the ETS fit failed), the moving average took
    the mean of a history shorter than its window."""


def forecast(
    config: BaselineConfig, histories: list[np.ndarray], horizon: int, season_length: int
) -> BaselineForecasts:
    """Forecast ``horizon`` steps past the last value of each history with every configured
    baseline.

    Args:
        config: Which baselines to compute, and their settings.
        histories: Each series' observed values up to and including the forecast origin (1-D,
            finite, any length of at least one).
        horizon: Steps to forecast.
        season_length: Periods per season of the data's frequency (seasonal naive, ETS).
    """
    if horizon < 1 or season_length < 1:
        raise ConfigError(f"horizon={horizon} and season_length={season_length} must be >= 1")
    histories = [_checked_history(history, index) for index, history in enumerate(histories)]
    forecasts, fallbacks = {}, {}
    for name in config.names:
        forecasts[name], fallbacks[name] = _METHODS[name](config, histories, horizon, season_length)
        if fallbacks[name]:
            log.warning(
                "%s: %d of %d series could not be forecast as configured (too short for a "
                "season of %d, or the fit failed) and fell back to naive",
                name,
                fallbacks[name],
                len(histories),
                season_length,
            )
    return BaselineForecasts(forecasts, fallbacks)


def _checked_history(history, index: int) -> np.ndarray:
    values = np.asarray(history, dtype=float)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise DataError(
            f"history {index} must be a non-empty 1-D array of finite values, "
            f"got shape {values.shape} with {np.count_nonzero(~np.isfinite(values))} non-finite"
        )
    return values


def _rows(rows: list[np.ndarray], horizon: int) -> np.ndarray:
    return np.array(rows, dtype=float).reshape(len(rows), horizon)


def _naive(config: BaselineConfig, histories: list[np.ndarray], horizon: int, season: int):
    return _rows([np.full(horizon, history[-1]) for history in histories], horizon), 0


def _seasonal_naive(config: BaselineConfig, histories: list[np.ndarray], horizon: int, season: int):
    # np.resize repeats the last season when the horizon is longer than one.
    rows = [
        np.resize(history[-season:], horizon)
        if len(history) >= season
        else np.full(horizon, history[-1])
        for history in histories
    ]
    return _rows(rows, horizon), sum(len(history) < season for history in histories)


def _moving_average(config: BaselineConfig, histories: list[np.ndarray], horizon: int, season: int):
    window = config.moving_average_window
    rows = [np.full(horizon, history[-window:].mean()) for history in histories]
    return _rows(rows, horizon), sum(len(history) < window for history in histories)


def _ets(config: BaselineConfig, histories: list[np.ndarray], horizon: int, season: int):
    rows, fallbacks = [], 0
    # One BLAS thread: the fits are tiny, and OpenBLAS's threads made them ~8x slower here
    # (136 ms against 16 ms per 143-week series on 2 busy cores).
    with threadpool_limits(limits=1, user_api="blas"):
        for history in tqdm(histories, desc="ets", unit=" series", mininterval=5):
            row = _ets_forecast(config, history, horizon, season)
            if row is None:
                fallbacks += 1
                row = np.full(horizon, history[-1])
            rows.append(row)
    return _rows(rows, horizon), fallbacks


def _ets_forecast(
    config: BaselineConfig, history: np.ndarray, horizon: int, season: int
) -> np.ndarray | None:
    """One series' ETS forecasts, or None when it is too short or the fit fails."""
    seasonal = config.ets_seasonal
    if len(history) < (2 * season if seasonal else ETS_MIN_OBSERVATIONS):
        return None
    try:
        with warnings.catch_warnings():
            # Convergence warnings over thousands of series drown the log; failures are counted.
            warnings.simplefilter("ignore")
            model = ExponentialSmoothing(
                history,
                trend=config.ets_trend,
                damped_trend=config.ets_damped_trend and config.ets_trend is not None,
                seasonal=seasonal,
                seasonal_periods=season if seasonal else None,
            )
            values = np.asarray(model.fit().forecast(horizon), dtype=float)
    except Exception as error:  # any failure of one series' fit means naive for that series
        log.debug("ETS fit failed: %s", error)
        return None
    return values if np.isfinite(values).all() else None


_METHODS: dict[str, Callable] = {
    "naive": _naive,
    "seasonal_naive": _seasonal_naive,
    "moving_average": _moving_average,
    "ets": _ets,
}
