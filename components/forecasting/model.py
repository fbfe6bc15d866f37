"""Recurrent forecasters that take raw inputs (original units) and return original-unit forecasts.

Scaling, covariate standardization, calendar features and category lookups are layers of the
model, built from the ``FeatureSpec`` fitted on training periods, so the exported SavedModel
serves raw sales history. Inside, a (bi)recurrent encoder reads the lookback window; a direct head
emits every horizon step at once, or a recurrent decoder walks the horizon fed with the
known-future covariates (and, with attention, reads every encoder state at each step).
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from components.errors import ConfigError, require_one_of
from components.forecasting import KERAS_PACKAGE
from components.forecasting.attention import attend
from components.forecasting.calendar import period_of, yearly_phase
from components.forecasting.holidays import HOLIDAYS, holiday_flags, require_supported
from components.forecasting.losses import ObservedMeanAbsoluteError, PinballLoss
from components.forecasting.windows import LOSS_WEIGHTINGS, FeatureSpec
from components.recurrent import CELLS, RecurrentStackConfig, recurrent_stack

ARCHITECTURES = ("direct", "encoder_decoder", "encoder_decoder_attention")


@dataclasses.dataclass
class ForecastModelConfig(RecurrentStackConfig):
    """The encoder is a recurrent stack; ``bidirectional`` reads the lookback window both ways
    (the past is fully known, so this is allowed)."""

    dropout: float = 0.1
    """Dropout between stacked encoder layers and in the head (or after the decoder)."""
    architecture: str = "direct"
    """direct (one dense head for all steps) | encoder_decoder (a recurrent decoder over the
    horizon, fed the known-future covariates) | encoder_decoder_attention (the same decoder,
    each step also attending over every encoder state: ``attention.py``)."""
    embedding_dim: int = 8
    """Largest embedding size for a categorical column (store, department, type)."""
    quantiles: list[float] | None = None
    """e.g. [0.1, 0.5, 0.9]: train with pinball loss and return these quantiles; the median
    (or the middle quantile) is the point forecast. Null: one point forecast with MAE loss."""
    calendar_harmonics: int = 3
    """Sine/cosine pairs of the yearly cycle added as features (placed by each period's date);
    0: none. Needs a year of training history."""
    holidays: list[str] = dataclasses.field(default_factory=list)
    """Moving holidays flagged as known-future features, computed in the graph from each
    period's date (``holidays.py``): any of easter, thanksgiving, christmas, super_bowl. Empty:
    none (US holidays mean nothing to most other data; the Walmart configs list all four).
    Weekly, daily and monthly frequencies only."""
    seasonal_residual: bool = True
    """Predict a correction to last season's same periods (the seasonal-naive forecast) rather
    than the level itself, so training starts from a strong forecast. Needs a lookback of at
    least one season (ingest.season_length) and a horizon of at most one."""
    non_negative: bool | None = None
    """Clip forecasts at 0 (counts, sales without returns); null: when no training target is
    negative."""
    loss_weighting: str = "series"
    """What the training loss averages: series (every series the same, errors relative to its
    scale) | units (every unit of sales the same, as WMAE counts) | sqrt (in between)."""

    def __post_init__(self):
        super().__post_init__()
        require_one_of("model.architecture", self.architecture, ARCHITECTURES)
        require_one_of("model.loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        if self.quantiles is not None and not all(0.0 < q < 1.0 for q in self.quantiles):
            raise ConfigError(f"model.quantiles={self.quantiles} must all lie in (0, 1)")
        for holiday in self.holidays:
            require_one_of("model.holidays[]", holiday, HOLIDAYS)
        if len(set(self.holidays)) < len(self.holidays):
            raise ConfigError(f"model.holidays={self.holidays} names a holiday twice")
        if self.embedding_dim < 1:
            raise ConfigError(f"model.embedding_dim={self.embedding_dim} must be >= 1")


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class SeriesScale(keras.layers.Layer):
    """Series ids and raw history -> (scale [B, 1], history / scale [B, lookback, 1]).

    The scale is the series' training scale; a series not seen in training uses its input
    window's mean absolute value. Missing history values (NaN) count as 0.
    """

    def __init__(self, keys: list[str], scales: list[float], **kwargs):
        super().__init__(**kwargs)
        self.keys, self.scales = list(keys), [float(s) for s in scales]
        self.lookup = keras.layers.StringLookup(vocabulary=self.keys, num_oov_indices=1)
        self.table = tf.constant([0.0, *self.scales], tf.float32)  # index 0: unseen series

    def build(self, ids_shape, history_shape):
        self.built = True  # the lookup table is complete from the constructor

    def call(self, ids, history):
        key = ids[0] if len(ids) == 1 else tf.strings.join(ids, separator="_")
        history = tf.where(tf.math.is_nan(history), 0.0, history)
        known = tf.gather(self.table, self.lookup(key))
        scale = tf.where(known > 0, known, tf.reduce_mean(tf.abs(history), axis=1) + 1.0)
        return scale[:, None], (history / scale[:, None])[:, :, None]

    def get_config(self):
        return {**super().get_config(), "keys": self.keys, "scales": self.scales}


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class Standardize(keras.layers.Layer):
    """(x - mean) / std on the last axis; missing values (NaN) become 0, the training mean."""

    def __init__(self, mean: list[float], std: list[float], **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = list(mean), list(std)

    def call(self, inputs):
        standardized = (inputs - tf.constant(self.mean)) / tf.constant(self.std)
        return tf.where(tf.math.is_nan(standardized), 0.0, standardized)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std}


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class CalendarFeatures(keras.layers.Layer):
    """First forecast date ("YYYY-MM-DD") -> yearly sine/cosine features for every window step,
    placed by the calendar date each step falls on (``calendar.yearly_phase``)."""

    def __init__(self, lookback: int, horizon: int, frequency: str, harmonics: int, **kwargs):
        super().__init__(**kwargs)
        self.lookback, self.horizon = lookback, horizon
        self.frequency, self.harmonics = frequency, harmonics
        self.period = period_of(frequency)

    def call(self, forecast_start):
        steps = tf.range(-self.lookback, self.horizon, dtype=tf.float32)
        phase = yearly_phase(forecast_start, steps, self.period)
        waves = [f(k * phase) for k in range(1, self.harmonics + 1) for f in (tf.sin, tf.cos)]
        return tf.stack(waves, axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "lookback": self.lookback,
            "horizon": self.horizon,
            "frequency": self.frequency,
            "harmonics": self.harmonics,
        }


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class HolidayFlags(keras.layers.Layer):
    """First forecast date ("YYYY-MM-DD") -> a 0/1 flag per holiday for every window step, so
    training and serving compute them alike and a request needs no holiday column."""

    def __init__(self, lookback: int, horizon: int, frequency: str, holidays: list, **kwargs):
        super().__init__(**kwargs)
        self.lookback, self.horizon = lookback, horizon
        self.frequency, self.holidays = frequency, list(holidays)

    def call(self, forecast_start):
        steps = tf.range(-self.lookback, self.horizon)
        return holiday_flags(forecast_start, steps, self.frequency, self.holidays)

    def get_config(self):
        return {
            **super().get_config(),
            "lookback": self.lookback,
            "horizon": self.horizon,
            "frequency": self.frequency,
            "holidays": self.holidays,
        }


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class ToOriginalUnits(keras.layers.Layer):
    """(Scaled forecast [B, H, outputs] + scaled baseline [B, H, 1] or 0) x series scale."""

    def call(self, scaled, scale, baseline=None):
        if baseline is not None:
            scaled = scaled + baseline
        return scaled * scale[:, :, None]


def model_inputs(spec: FeatureSpec) -> dict[str, keras.KerasTensor]:
    """The raw inputs, named after the data's columns; the serving signature uses the same."""
    window = spec.lookback + spec.horizon
    inputs = {spec.target: keras.Input((spec.lookback,), name=spec.target)}
    inputs |= {c: keras.Input((window,), name=c) for c in spec.known_future}
    inputs |= {c: keras.Input((spec.lookback,), name=c) for c in spec.past_covariates}
    inputs |= {c: keras.Input((), dtype="string", name=c) for c in spec.vocabularies}
    inputs |= {c: keras.Input((), name=c) for c in spec.static_numeric}
    inputs["forecast_start"] = keras.Input((), dtype="string", name="forecast_start")
    return inputs


def build_forecaster(config: ForecastModelConfig, spec: FeatureSpec) -> keras.Model:
    """Raw inputs -> forecasts [batch, horizon] (or [batch, horizon, quantiles]), original units."""
    inputs = model_inputs(spec)
    lookback, horizon = spec.lookback, spec.horizon
    scale, scaled = SeriesScale(spec.series_keys, spec.series_scales, name="series_scale")(
        [inputs[c] for c in spec.id_columns], inputs[spec.target]
    )
    past_steps, future_steps = _covariate_steps(config, spec, inputs)
    past_steps.insert(0, scaled)
    last_season = None
    season = spec.season_length
    if lookback >= season >= horizon and season > 1:
        # Last season's same periods, the seasonal-naive forecast, as a feature of each step.
        last_season = _crop(scaled, lookback - season, season - horizon)
        future_steps.append(last_season)
    elif config.seasonal_residual:
        raise ConfigError(
            f"model.seasonal_residual needs windows.lookback ({lookback}) >= the season length "
            f"({season} periods of {spec.frequency}) >= windows.horizon ({horizon}) and a season "
            "longer than 1; set it to false or change the lookback"
        )
    static = _static_context(inputs, spec, config)
    encoder_input = _concat([*past_steps, keras.layers.RepeatVector(lookback)(static)])
    attending = config.architecture == "encoder_decoder_attention"
    states = encoder_input
    for layer in recurrent_stack(config, return_sequences=attending):
        states = layer(states)
    # With attention the encoder keeps every step's state; its summary is the last one.
    encoded = keras.layers.Flatten()(_crop(states, lookback - 1, 0)) if attending else states
    context = _concat([encoded, static])
    future = _concat(future_steps) if future_steps else None
    outputs = len(config.quantiles or [None])
    if config.architecture == "direct":
        forecast = _direct_head(config, context, future, horizon, outputs)
    else:
        repeated = keras.layers.RepeatVector(horizon)(context)
        decoder_input = repeated if future is None else _concat([future, repeated])
        decoded = CELLS[config.cell](config.units, return_sequences=True, name="decoder")(
            decoder_input
        )
        if attending:
            decoded = attend(decoded, states, config.units)
        decoded = keras.layers.Dropout(config.dropout, name="decoder_dropout")(decoded)
        forecast = keras.layers.Dense(outputs, name="forecast_scaled")(decoded)
    baseline = last_season if config.seasonal_residual else None
    forecast = ToOriginalUnits(name="forecast_units")(forecast, scale, baseline)
    if config.non_negative or (config.non_negative is None and spec.target_min >= 0):
        forecast = keras.layers.ReLU(name="non_negative")(forecast)
    if not config.quantiles:
        forecast = keras.layers.Reshape((horizon,), name="forecast")(forecast)
    direction = "bi" if config.bidirectional else ""
    name = f"{direction}{config.cell}_x{config.layers}_{config.architecture}_forecaster"
    return keras.Model(inputs, forecast, name=name)


def _covariate_steps(config: ForecastModelConfig, spec: FeatureSpec, inputs: dict):
    """Per-step features of the history [B, lookback, .] and of the horizon [B, horizon, .]:
    calendar waves, holiday flags, known-future and past covariates (history only)."""
    lookback, horizon = spec.lookback, spec.horizon
    past_steps, future_steps = [], []
    if config.calendar_harmonics:
        _require_a_year_of_history(config, spec)
        calendar = CalendarFeatures(
            lookback, horizon, spec.frequency, config.calendar_harmonics, name="calendar"
        )(inputs["forecast_start"])
        past_steps.append(_crop(calendar, 0, horizon))
        future_steps.append(_crop(calendar, lookback, 0))
    if config.holidays:
        require_supported(spec.frequency, config.holidays)
        flags = HolidayFlags(lookback, horizon, spec.frequency, config.holidays, name="holidays")(
            inputs["forecast_start"]
        )
        past_steps.append(_crop(flags, 0, horizon))
        future_steps.append(_crop(flags, lookback, 0))
    if spec.known_future:
        known = _standardized(inputs, spec.known_future, spec, "known_future")
        past_steps.append(_crop(known, 0, horizon))
        future_steps.append(_crop(known, lookback, 0))
    if spec.past_covariates:
        past_steps.append(_standardized(inputs, spec.past_covariates, spec, "past_covariates"))
    return past_steps, future_steps


def _direct_head(config: ForecastModelConfig, context, future, horizon: int, outputs: int):
    """One dense layer over the encoding and every future step's features -> [B, H, outputs]."""
    hidden = context if future is None else _concat([context, keras.layers.Flatten()(future)])
    hidden = keras.layers.Dense(config.units, activation="relu", name="head")(hidden)
    hidden = keras.layers.Dropout(config.dropout, name="head_dropout")(hidden)
    forecast = keras.layers.Dense(horizon * outputs, name="forecast_scaled")(hidden)
    return keras.layers.Reshape((horizon, outputs))(forecast)


def median_index(quantiles: list[float]) -> int:
    """The quantile output nearest 0.5: the point forecast, in scoring and in serving alike."""
    return int(np.argmin([abs(q - 0.5) for q in quantiles]))


def forecast_loss(config: ForecastModelConfig) -> keras.losses.Loss:
    """MAE for point forecasts (the competition's metric is a weighted MAE), pinball otherwise."""
    if config.quantiles:
        return PinballLoss(config.quantiles)
    return ObservedMeanAbsoluteError()


def _require_a_year_of_history(config: ForecastModelConfig, spec: FeatureSpec) -> None:
    """Yearly calendar features learned from less than a year put forecasts at calendar
    positions training never saw: refused rather than silently worse than naive."""
    per_year = period_of(spec.frequency).periods_per_year
    if spec.training_periods < per_year:
        raise ConfigError(
            f"model.calendar_harmonics={config.calendar_harmonics} needs a year of training "
            f"history, but training sees {spec.training_periods} periods of {spec.frequency} "
            f"(a year is {per_year:g}); set model.calendar_harmonics=0"
        )


def _crop(sequence, start: int, end: int):
    """Time steps ``[start, length - end)`` of a [batch, time, features] tensor."""
    return keras.layers.Cropping1D((start, end))(sequence)


def _concat(tensors: list):
    return tensors[0] if len(tensors) == 1 else keras.layers.Concatenate()(tensors)


def _standardized(inputs: dict, columns: list[str], spec: FeatureSpec, name: str):
    stacked = _concat([keras.layers.Reshape((-1, 1))(inputs[c]) for c in columns])
    return Standardize(
        [spec.feature_mean[c] for c in columns], [spec.feature_std[c] for c in columns], name=name
    )(stacked)


def _static_context(inputs: dict, spec: FeatureSpec, config: ForecastModelConfig):
    """Embeddings of every categorical column plus the standardized static numbers."""
    parts = []
    for column, vocabulary in spec.vocabularies.items():
        index = keras.layers.StringLookup(vocabulary=vocabulary, name=f"{column}_lookup")(
            inputs[column]
        )
        size = min(config.embedding_dim, max(2, round(math.sqrt(len(vocabulary) + 1))))
        embedded = keras.layers.Embedding(len(vocabulary) + 1, size, name=f"{column}_embedding")
        parts.append(embedded(index))
    if spec.static_numeric:
        numbers = _concat([keras.layers.Reshape((1,))(inputs[c]) for c in spec.static_numeric])
        mean = [spec.feature_mean[c] for c in spec.static_numeric]
        std = [spec.feature_std[c] for c in spec.static_numeric]
        parts.append(Standardize(mean, std, name="static_numeric")(numbers))
    return _concat(parts)
