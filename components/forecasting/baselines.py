"""Classical baseline forecasts, made from the same forecast origins as the neural model.

Given each series' history up to the origin, ``forecast`` predicts ``horizon`` steps with naive,
seasonal naive, a moving average, statsforecast's AutoETS, AutoTheta, AutoARIMA and MSTL, and
seasonal naive on SVD-smoothed group histories (the Walmart competition winner's recipe); the
forecast evaluator scores them beside the model, so a network has to beat the strongest to be
worth its cost. Each baseline's fit time and every series it could not forecast as configured
(and why) are returned with the forecasts. It is a plain function rather than a ``run``
component because it reads and writes no artifacts: the forecasting pipeline calls it once per
backtest fold, with histories cut at that fold's origin.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Hashable

import numpy as np
from threadpoolctl import threadpool_limits

from components.errors import ConfigError, DataError
from components.forecasting import statistical, svd_smoothing

log = logging.getLogger(__name__)

BASELINES = (
    "naive",
    "seasonal_naive",
    "moving_average",
    "auto_ets",
    "auto_theta",
    "mstl",
    "auto_arima",
    "svd_seasonal_naive",
)
DEFAULT_BASELINES = ("naive", "seasonal_naive", "moving_average", "auto_ets", "auto_theta", "mstl")
"""auto_arima is left out: 0.6-1 s per synthetic 143-week series with a 52-week season on 2 busy
cores (3,331 Walmart series: about an hour per fold); svd_seasonal_naive needs ``svd_group_by``."""
RENAMED = {"ets": "auto_ets"}
WEEKS_PER_YEAR = 52
INPUT_PREFIX = "baseline_"
"""Input name of a baseline's forecast that a combined model takes, e.g. ``baseline_mstl``."""
ETS_ERRORS, ETS_TRENDS_AND_SEASONS = "AMZ", "NAMZ"


@dataclasses.dataclass
class BaselineConfig:
    names: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_BASELINES))
    """Baselines to compute, any of ``BASELINES``."""
    moving_average_window: int = 8
    """How many of the latest values the moving average (statsforecast's WindowAverage) takes."""
    ets_model: str = "ZZZ"
    """AutoETS's error, trend and season letters (A additive, M multiplicative, N none, Z chosen
    by AICc); the season is dropped, and counted, where the history cannot hold it."""
    svd_group_by: str | None = None
    """svd_seasonal_naive: the id or static column whose value groups series smoothed together
    (``Dept``: a department's stores); its series must end at the same period."""
    svd_rank: int = 12
    """svd_seasonal_naive: singular components kept per group (the winner used 10 to 15)."""
    svd_christmas_shift: bool = False
    """svd_seasonal_naive on weekly data: move the share of the Christmas-window weeks that the
    holiday's weekday moved since last year into the next week, in groups whose forecast has a
    Christmas surge (the winner's post-processing, ``svd_smoothing.christmas_shift``)."""

    def __post_init__(self):
        for name in set(self.names) & set(RENAMED):
            raise ConfigError(f"baselines.names: {name!r} was renamed {RENAMED[name]!r}")
        unknown = sorted(set(self.names) - set(BASELINES))
        if unknown or not self.names:
            raise ConfigError(
                f"baselines.names={self.names} must be a non-empty list of {list(BASELINES)}"
            )
        if self.moving_average_window < 1:
            raise ConfigError(
                f"baselines.moving_average_window={self.moving_average_window} must be at least 1"
            )
        model = self.ets_model
        if not (
            len(model) == 3
            and model[0] in ETS_ERRORS
            and model[1] in ETS_TRENDS_AND_SEASONS
            and model[2] in ETS_TRENDS_AND_SEASONS
        ):
            raise ConfigError(
                f"baselines.ets_model={model!r} must be three letters: error from "
                f"{ETS_ERRORS}, trend and season from {ETS_TRENDS_AND_SEASONS} (e.g. 'ZZZ')"
            )
        if "svd_seasonal_naive" in self.names and not self.svd_group_by:
            raise ConfigError(
                "baselines.names has svd_seasonal_naive, which needs baselines.svd_group_by: the "
                "column whose value groups the series smoothed together (e.g. Dept)"
            )
        if self.svd_rank < 1:
            raise ConfigError(f"baselines.svd_rank={self.svd_rank} must be at least 1")


@dataclasses.dataclass(frozen=True)
class BaselineForecasts:
    forecasts: dict[str, np.ndarray]
    """Baseline name -> forecasts of shape (series, horizon), in the histories' units."""
    fallbacks: dict[str, int]
    """Baseline name -> how many series it could not forecast as configured."""
    fallback_reasons: dict[str, dict[str, int]]
    """Baseline name -> why, and for how many series, e.g. ``{"shorter than a season (52
    periods): naive": 3}``; empty for a baseline without fallbacks."""
    fit_seconds: dict[str, float]
    """Baseline name -> wall time of its fits over all series (the first statsforecast fit in a
    process includes loading its numba-compiled code)."""


def forecast(
    config: BaselineConfig,
    histories: list[np.ndarray],
    horizon: int,
    season_length: int,
    groups: list[Hashable] | None = None,
    missing_grouping: str = "no grouping column",
    forecast_dates: np.ndarray | None = None,
) -> BaselineForecasts:
    """Forecast ``horizon`` steps past the last value of each history with every configured
    baseline.

    Args:
        config: Which baselines to compute, and their settings.
        histories: Each series' observed values up to and including the forecast origin (1-D,
            finite, any length of at least one).
        horizon: Steps to forecast.
        season_length: Periods per season of the data's frequency.
        groups: Each series' value of ``config.svd_group_by``, for svd_seasonal_naive; None when
            the data has no such column (it then falls back to seasonal naive, recorded).
        missing_grouping: Why ``groups`` is None, recorded with that fallback.
        forecast_dates: [series, horizon] each forecast period's date, for
            ``svd_christmas_shift`` (not applied without them or weekly data, recorded).
    """
    if horizon < 1 or season_length < 1:
        raise ConfigError(f"horizon={horizon} and season_length={season_length} must be >= 1")
    histories = [_checked_history(history, index) for index, history in enumerate(histories)]
    if groups is not None and len(groups) != len(histories):
        raise DataError(f"{len(groups)} groups for {len(histories)} histories")
    origin = _Origin(
        histories,
        horizon,
        season_length,
        groups,
        missing_grouping,
        forecast_dates,
        config.svd_christmas_shift,
    )
    forecasts, reasons, seconds = {}, {}, {}
    # One BLAS thread: the fits are tiny, and OpenBLAS's threads made them ~8x slower here.
    with threadpool_limits(limits=1, user_api="blas"):
        for name in config.names:
            start = time.perf_counter()
            forecasts[name], reasons[name] = _METHODS[name](config, origin)
            seconds[name] = time.perf_counter() - start
            if reasons[name]:
                log.warning(
                    "%s: of %d series, not forecast as configured: %s",
                    name,
                    len(histories),
                    "; ".join(f"{count} {why}" for why, count in reasons[name].items()),
                )
    fallbacks = {name: sum(counts.values()) for name, counts in reasons.items()}
    return BaselineForecasts(forecasts, fallbacks, reasons, seconds)


def _checked_history(history, index: int) -> np.ndarray:
    values = np.asarray(history, dtype=float)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise DataError(
            f"history {index} must be a non-empty 1-D array of finite values, "
            f"got shape {values.shape} with {np.count_nonzero(~np.isfinite(values))} non-finite"
        )
    return values


@dataclasses.dataclass(frozen=True)
class _Origin:
    """What every baseline forecasts from at one origin."""

    histories: list[np.ndarray]
    horizon: int
    season: int
    groups: list[Hashable] | None
    missing_grouping: str
    forecast_dates: np.ndarray | None
    christmas_shift: bool


def _naive(config: BaselineConfig, origin: _Origin):
    rows = [np.full(origin.horizon, history[-1]) for history in origin.histories]
    return np.array(rows, dtype=float).reshape(len(rows), origin.horizon), {}


def _svd_seasonal_naive(config: BaselineConfig, origin: _Origin):
    forecasts, reasons = svd_smoothing.forecast(
        origin.histories,
        origin.groups,
        origin.horizon,
        origin.season,
        config.svd_rank,
        origin.missing_grouping,
    )
    if origin.christmas_shift and (
        origin.season != WEEKS_PER_YEAR or origin.forecast_dates is None
    ):
        # Recorded with the fallbacks: the configured recipe is not what was scored.
        why = (
            f"Christmas shift needs weekly periods (season {WEEKS_PER_YEAR}) and dates: not applied"
        )
        reasons = {**reasons, why: len(origin.histories)}
    elif origin.christmas_shift:
        forecasts, shifted = svd_smoothing.christmas_shift(
            forecasts, origin.forecast_dates, origin.groups
        )
        log.info("svd_seasonal_naive: Christmas shift applied to %d series", shifted)
    return forecasts, reasons


_METHODS: dict[str, Callable] = {
    "naive": _naive,
    "seasonal_naive": lambda config, o: statistical.seasonal_naive(
        o.histories, o.horizon, o.season
    ),
    "moving_average": lambda config, o: statistical.window_average(
        o.histories, o.horizon, config.moving_average_window
    ),
    "auto_ets": lambda config, o: statistical.auto_ets(
        o.histories, o.horizon, o.season, config.ets_model
    ),
    "auto_theta": lambda config, o: statistical.auto_theta(o.histories, o.horizon, o.season),
    "mstl": lambda config, o: statistical.mstl(o.histories, o.horizon, o.season),
    "auto_arima": lambda config, o: statistical.auto_arima(o.histories, o.horizon, o.season),
    "svd_seasonal_naive": _svd_seasonal_naive,
}
