"""Transform for forecasting: time-ordered splits, scaling statistics and lookback/horizon windows.

Every series is laid on one global period grid. For backtest fold ``k`` the last ``(k + 1)``
horizons are cut off: the next horizon is the test block, the horizon before it validation, and
training windows only see targets up to the validation origin. Scales and covariate statistics are
fitted on those training periods alone, then travel inside the model (``FeatureSpec``), so the
serving graph takes sales in original units.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from components import tracking
from components.artifacts import SeriesWindows, TimeSeries
from components.errors import ConfigError, DataError, require_one_of

SPLITS = ("train", "validation", "test")
LOSS_WEIGHTINGS = {"series": 1.0, "sqrt": 0.5, "units": 0.0}
"""Each loss weighting by name: a series' windows weigh scale ** -exponent (then normalized)."""


@dataclasses.dataclass
class SeriesWindowConfig:
    lookback: int = 52
    """Past periods the model reads (52 weeks lets it see last year's same week)."""
    horizon: int = 8
    """Periods forecast at once."""
    stride: int = 1
    """Periods between consecutive training origins of one series."""

    def __post_init__(self):
        if min(self.lookback, self.horizon, self.stride) < 1:
            raise ConfigError("windows.lookback, windows.horizon and windows.stride must be >= 1")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """What the model needs to turn raw inputs into features; fitted on training periods only."""

    lookback: int
    horizon: int
    frequency: str
    """The grid's pandas offset alias: how far apart periods are (``calendar.period_of``)."""
    season_length: int
    """Periods per season (ingest's, from the frequency or the config)."""
    training_periods: int
    """Grid periods up to the validation origin: how much history training can see."""
    target_min: float
    """The smallest training target: below 0 the data has returns or deltas, so forecasts may
    be negative too."""
    target: str
    id_columns: list[str]
    known_future: list[str]
    past_covariates: list[str]
    static_categorical: list[str]
    static_numeric: list[str]
    series_keys: list[str]
    series_scales: list[float]
    """Mean absolute target over each series' training periods, plus 1 (never zero)."""
    vocabularies: dict[str, list[str]]
    feature_mean: dict[str, float]
    feature_std: dict[str, float]

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        return cls(**json.loads(path.read_text()))


def run(config: SeriesWindowConfig, series: TimeSeries, fold: int, out_dir: Path) -> SeriesWindows:
    """Lay the panel on a grid, cut fold ``fold``'s splits and fit the scaling on its train part."""
    panel = series.load()
    statistics = series.statistics()
    columns = statistics["columns"]
    grid = pd.DatetimeIndex(sorted(panel["date"].unique()))
    test_origin = len(grid) - 1 - (fold + 1) * config.horizon
    validation_origin = test_origin - config.horizon
    if validation_origin - config.horizon < config.lookback - 1:
        raise DataError(
            f"{len(grid)} periods are too few for lookback {config.lookback}, horizon "
            f"{config.horizon} and backtest fold {fold}: need at least "
            f"{config.lookback + (fold + 3) * config.horizon}"
        )
    frame = panel.assign(step=grid.get_indexer(panel["date"]))
    keys = sorted(frame["series"].unique())
    row = pd.Index(keys).get_indexer(frame["series"])
    numeric = [*columns["known_future"], *columns["past_covariates"]]
    values = np.full((len(keys), len(grid), 1 + len(numeric)), np.nan, np.float32)
    values[row, frame["step"].to_numpy()] = frame[["target", *numeric]].to_numpy(np.float32)
    observed = np.zeros((len(keys), len(grid)), bool)
    actual = frame["filled"].to_numpy(bool) & statistics["filled_are_actuals"]
    observed[row, frame["step"].to_numpy()] = ~frame["filled"].to_numpy(bool) | actual
    first = frame.groupby("series")["step"].min().reindex(keys).to_numpy()
    last = frame.groupby("series")["step"].max().reindex(keys).to_numpy()
    statics = frame.groupby("series").first().reindex(keys)

    training = np.arange(len(grid)) <= validation_origin
    calendar = {
        "frequency": statistics["frequency"],
        "season_length": statistics["season_length"],
        "training_periods": int(training.sum()),
        "target_min": float(np.nanmin(values[:, training, 0], initial=np.inf)),
    }
    spec = _fitted_spec(config, columns, calendar, keys, values[:, training], statics)
    origins = {
        "train": _training_origins(first, last, config, validation_origin),
        "validation": _single_origins(first, last, config, validation_origin),
        "test": _single_origins(first, last, config, test_origin),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "values.npy", values)
    np.save(out_dir / "observed.npy", observed)
    statics.reset_index()[["series", *spec.vocabularies, *spec.static_numeric]].to_parquet(
        out_dir / "statics.parquet"
    )
    (out_dir / "feature_spec.json").write_text(json.dumps(dataclasses.asdict(spec), indent=2))
    for split, pairs in origins.items():
        np.save(out_dir / f"{split}.origins.npy", pairs)
    summary = _summary(
        grid, fold, origins, test_origin, validation_origin, config.horizon, len(keys)
    )
    (out_dir / "windows.json").write_text(json.dumps(summary, indent=2))
    tracking.log_dict(summary, "windows.json")
    return SeriesWindows(out_dir)


def _fitted_spec(
    config: SeriesWindowConfig,
    columns: dict,
    calendar: dict,
    keys: list[str],
    training_values: np.ndarray,
    statics: pd.DataFrame,
) -> FeatureSpec:
    """Scales, covariate statistics and vocabularies, fitted on the training periods only."""
    numeric = [*columns["known_future"], *columns["past_covariates"]]
    scales = np.nanmean(np.abs(training_values[:, :, 0]), axis=1) + 1.0
    return FeatureSpec(
        lookback=config.lookback,
        horizon=config.horizon,
        **calendar,
        target=columns["target"],
        id_columns=columns["series_id"],
        known_future=columns["known_future"],
        past_covariates=columns["past_covariates"],
        static_categorical=columns["static_categorical"],
        static_numeric=columns["static_numeric"],
        series_keys=keys,
        series_scales=[float(s) for s in np.nan_to_num(scales, nan=1.0)],
        vocabularies={
            column: sorted(statics[column].astype(str).unique())
            for column in [*columns["series_id"], *columns["static_categorical"]]
        },
        **_feature_statistics(training_values[:, :, 1:], numeric, statics, columns),
    )


def _feature_statistics(
    covariates: np.ndarray, numeric: list[str], statics: pd.DataFrame, columns: dict
) -> dict[str, dict[str, float]]:
    mean = dict(zip(numeric, np.nanmean(covariates, axis=(0, 1)).tolist(), strict=True))
    std = dict(zip(numeric, np.nanstd(covariates, axis=(0, 1)).tolist(), strict=True))
    for column in columns["static_numeric"]:
        mean[column], std[column] = float(statics[column].mean()), float(statics[column].std())
    # A constant feature (std 0) or an all-missing one (NaN) must not divide by zero later.
    std = {k: (v if np.isfinite(v) and v > 0 else 1.0) for k, v in std.items()}
    mean = {k: (v if np.isfinite(v) else 0.0) for k, v in mean.items()}
    return {"feature_mean": mean, "feature_std": std}


def _training_origins(
    first, last, config: SeriesWindowConfig, validation_origin: int
) -> np.ndarray:
    """(series, origin) pairs: the whole window inside the series, targets up to validation."""
    pairs = [
        (series, origin)
        for series in range(len(first))
        for origin in range(
            first[series] + config.lookback - 1,
            min(last[series], validation_origin) - config.horizon + 1,
            config.stride,
        )
    ]
    return np.asarray(pairs, np.int64).reshape(-1, 2)


def _single_origins(first, last, config: SeriesWindowConfig, origin: int) -> np.ndarray:
    covered = (first <= origin - config.lookback + 1) & (last >= origin + config.horizon)
    series = np.flatnonzero(covered)
    return np.stack([series, np.full_like(series, origin)], axis=1).astype(np.int64)


def _summary(
    grid, fold, origins, test_origin, validation_origin, horizon, series_count
) -> dict[str, Any]:
    def date(step: int) -> str:
        return f"{grid[step]:%Y-%m-%d}"

    return {
        "fold": fold,
        "periods": len(grid),
        "series": series_count,
        "train_targets_until": date(validation_origin),
        "validation_origin": date(validation_origin),
        "test_origin": date(test_origin),
        "test_periods": [date(test_origin + 1), date(min(test_origin + horizon, len(grid) - 1))],
        "grid": [date(step) for step in range(len(grid))],
        "windows": {split: int(len(pairs)) for split, pairs in origins.items()},
        "series_without_test_window": series_count - int(len(origins["test"])),
    }


def make_dataset(
    windows: SeriesWindows,
    split: str,
    batch_size: int,
    shuffle_seed: int | None = None,
    weighting: str = "series",
) -> tf.data.Dataset:
    """Batches of (raw model inputs, target in original units, sample weight).

    Target periods that ingest filled (missing in the file) are NaN, which the forecasting
    losses skip; a window none of whose targets was observed weighs 0.

    The model predicts original units; the weight decides what its loss averages. ``series``:
    1 / scale, an error of one series-scale counts the same for every series (small departments
    as much as large stores; what MASE or per-series WAPE reward). ``units``: every unit of sales
    counts the same, as WMAE, MAE and total WAPE count them (big series dominate). ``sqrt``: in
    between, 1 / sqrt(scale). A series of the mean scale gets the same weight under each, so the
    losses (and gradient clipping) stay on one scale.
    """
    pairs = windows.origins(split)
    dataset = tf.data.Dataset.from_tensor_slices(pairs)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(pairs), seed=shuffle_seed, reshuffle_each_iteration=True)
    gather = window_gather(windows, weighting)
    return dataset.batch(batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def window_gather(windows: SeriesWindows, weighting: str) -> Callable:
    """The function from a batch of (series, origin) pairs to ``make_dataset``'s batch of them."""
    require_one_of("model.loss_weighting", weighting, LOSS_WEIGHTINGS)
    spec, values, statics = load_spec(windows), windows.values(), windows.statics()
    dates = tf.constant(windows.grid_dates())
    exponent = LOSS_WEIGHTINGS[weighting]
    scales = np.asarray(spec.series_scales, np.float64)  # rows follow spec.series_keys
    weights = tf.constant(scales**-exponent * np.mean(scales) ** (exponent - 1), tf.float32)
    values = tf.constant(values)
    observed = tf.constant(windows.observed())
    static_strings = {c: tf.constant(statics[c].astype(str).to_numpy()) for c in spec.vocabularies}
    static_numbers = {c: tf.constant(statics[c].to_numpy(np.float32)) for c in spec.static_numeric}
    known = [1 + i for i in range(len(spec.known_future))]
    past = [1 + len(spec.known_future) + i for i in range(len(spec.past_covariates))]
    lookback, horizon = spec.lookback, spec.horizon

    def gather(batch):
        series, origin = batch[:, 0], batch[:, 1]
        steps = origin[:, None] + tf.range(-lookback + 1, horizon + 1, dtype=tf.int64)[None, :]
        rows = tf.broadcast_to(series[:, None], tf.shape(steps))
        window = tf.gather_nd(values, tf.stack([rows, steps], axis=-1))
        inputs = {
            spec.target: window[:, :lookback, 0],
            "forecast_start": tf.gather(dates, origin + 1),
        }
        for name, index in zip(spec.known_future, known, strict=True):
            inputs[name] = window[:, :, index]
        for name, index in zip(spec.past_covariates, past, strict=True):
            inputs[name] = window[:, :lookback, index]
        for name, column in static_strings.items():
            inputs[name] = tf.gather(column, series)
        for name, column in static_numbers.items():
            inputs[name] = tf.gather(column, series)
        target_steps = tf.stack([rows[:, lookback:], steps[:, lookback:]], axis=-1)
        seen = tf.gather_nd(observed, target_steps)
        target = tf.where(seen, window[:, lookback:, 0], float("nan"))
        weight = tf.gather(weights, series) * tf.cast(tf.reduce_any(seen, axis=1), tf.float32)
        return inputs, target, weight

    return gather


def load_spec(windows: SeriesWindows) -> FeatureSpec:
    """The feature spec fitted on the fold's training periods."""
    return FeatureSpec.load(windows.path / "feature_spec.json")
