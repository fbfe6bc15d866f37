"""The network standing on the classical forecasts: a combination weighted on the validation block.

A recurrent forecaster trained on a few years of weekly sales errs differently from seasonal
naive, MSTL or the SVD recipe, so a weighted mean of them beats each (the M4 and M5 lessons:
combinations of a network and statistical methods won). The weights are non-negative, sum to 1
and minimize the WMAE of the fold's validation block (the horizon before its scored block, which
neither the weights nor the baselines' fits ever see scored); with too little data to trust the
network they may put everything on one classical method, and the report says so.

The combination is a Keras model around the trained network, so evaluation, export and serving
take it unchanged. Baselines that need only the series' own history (``IN_GRAPH``) are computed
in the graph from the request's history; the others (statsforecast fits, the SVD recipe, which
needs a whole group of series) are inputs named ``baseline_<name>``: ``forecast`` computes them,
and the CSV client (``components.forecasting.requests``) sends them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy import optimize, sparse

from components import tracking
from components.artifacts import TrainedModel
from components.errors import ConfigError, DataError
from components.forecasting import KERAS_PACKAGE, baselines

IN_GRAPH = ("naive", "seasonal_naive", "moving_average")
"""Baselines the served graph computes from the history it is sent."""
EXTERNAL_PREFIX = baselines.INPUT_PREFIX
NETWORK = "network"
COMBINATION_FILE = "combination.json"


@dataclasses.dataclass
class CombinationConfig:
    candidates: list[str] = dataclasses.field(default_factory=list)
    """Baselines (names from ``baselines.names``) the network's forecast may be combined with,
    weighted on each fold's validation block; empty: the network alone. naive, seasonal_naive and
    moving_average are computed in the serving graph; any other one becomes an input of the
    served signature (``baseline_<name>``) that the CSV client computes."""
    min_cells_per_weight: int = 30
    """Observed validation cells (series x steps) each weight needs to be fitted; with fewer (a
    few series, a short horizon) the noise of a handful of cells would pick the mix, so the
    single best candidate on the validation block is chosen instead."""

    def __post_init__(self):
        if len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(f"combination.candidates={self.candidates} lists a name twice")
        if self.min_cells_per_weight < 1:
            raise ConfigError(
                f"combination.min_cells_per_weight={self.min_cells_per_weight} must be >= 1"
            )


def require_consistent(config: CombinationConfig, baseline_names: list[str], quantiles) -> None:
    """Every candidate is a scored baseline (its fit is what the weights trust), and a quantile
    model is not combined: a weighted mean of point forecasts has no quantiles."""
    unknown = [name for name in config.candidates if name not in baseline_names]
    if unknown:
        raise ConfigError(
            f"combination.candidates {unknown} are not in baselines.names {baseline_names}: a "
            "combination only weighs baselines that are also scored"
        )
    if config.candidates and quantiles:
        raise ConfigError(
            f"combination.candidates={config.candidates} with model.quantiles={quantiles}: a "
            "combination of point forecasts has no quantiles; set combination.candidates=[]"
        )


def fit_weights(
    actual: np.ndarray,
    cell_weights: np.ndarray,
    candidates: dict[str, np.ndarray],
    min_cells_per_weight: int = 1,
) -> dict[str, float]:
    """Non-negative weights summing to 1 that minimize sum(cell_weights * |actual - mix|), solved
    exactly as a linear program (HiGHS). Cells whose actual is NaN (never observed) are skipped.
    With fewer than ``min_cells_per_weight`` cells per candidate: weight 1 on the single best.

    Args:
        actual: [series, horizon] true values.
        cell_weights: [series, horizon] each cell's weight (WMAE: 5 in holiday weeks, else 1).
        candidates: name -> [series, horizon] forecasts.
        min_cells_per_weight: Observed cells each fitted weight needs.
    """
    names = list(candidates)
    scored = scored_cells(actual, cell_weights)
    if not scored.any():
        raise DataError("the validation block has no observed values to weigh the combination on")
    forecasts = np.stack([np.asarray(candidates[n], float)[scored] for n in names], axis=1)
    if not np.isfinite(forecasts).all():
        bad = [n for i, n in enumerate(names) if not np.isfinite(forecasts[:, i]).all()]
        raise DataError(f"non-finite validation forecasts from {bad}")
    target, weights = actual[scored].astype(float), cell_weights[scored].astype(float)
    cells, k = forecasts.shape
    if single_best(cells, k, min_cells_per_weight):
        errors = weights @ np.abs(forecasts - target[:, None])
        best = int(np.argmin(errors))
        return {name: float(i == best) for i, name in enumerate(names)}
    # Variables: k mixing weights, then one error bound e_i >= |target_i - forecasts_i . w|.
    # Units are rescaled so HiGHS's tolerances mean the same on any data.
    unit = max(float(np.mean(np.abs(target))), 1e-12)
    f, y = forecasts / unit, target / unit
    eye = sparse.identity(cells, format="csr")
    upper = sparse.vstack(
        [sparse.hstack([sparse.csr_matrix(-f), -eye]), sparse.hstack([sparse.csr_matrix(f), -eye])]
    )
    result = optimize.linprog(
        c=np.concatenate([np.zeros(k), weights / weights.sum()]),
        A_ub=upper,
        b_ub=np.concatenate([-y, y]),
        A_eq=np.concatenate([np.ones(k), np.zeros(cells)])[None, :],
        b_eq=[1.0],
        bounds=[(0, None)] * (k + cells),
        method="highs",
    )
    if not result.success:
        raise DataError(f"fitting the combination weights failed: {result.message}")
    mix = np.clip(result.x[:k], 0.0, None)
    mix /= mix.sum()
    return {name: float(round(value, 6)) for name, value in zip(names, mix, strict=True)}


def scored_cells(actual: np.ndarray, cell_weights: np.ndarray) -> np.ndarray:
    """The validation cells the weights are fitted on: observed, with a positive weight."""
    return np.isfinite(actual) & (cell_weights > 0)


def single_best(cells: int, candidates: int, min_cells_per_weight: int) -> bool:
    """Whether ``cells`` are too few to fit a weight per candidate: pick the best one instead."""
    return candidates == 1 or cells < candidates * min_cells_per_weight


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class HistoryBaselines(keras.layers.Layer):
    """History [B, lookback] -> [B, horizon, len(names)]: the in-graph baselines, as
    ``components.forecasting.statistical`` computes them on a complete history."""

    def __init__(self, names, horizon: int, season: int, window: int, **kwargs):
        super().__init__(**kwargs)
        self.names, self.horizon, self.season, self.window = list(names), horizon, season, window

    def call(self, history):
        lookback = history.shape[-1]
        columns = []
        for name in self.names:
            if name == "naive":
                column = keras.ops.repeat(history[:, -1:], self.horizon, axis=1)
            elif name == "moving_average":
                mean = keras.ops.mean(history[:, lookback - self.window :], axis=1, keepdims=True)
                column = keras.ops.repeat(mean, self.horizon, axis=1)
            else:  # seasonal_naive: the last season, repeated over the horizon
                last = history[:, lookback - self.season :]
                repeats = -(-self.horizon // self.season)
                column = keras.ops.tile(last, (1, repeats))[:, : self.horizon]
            columns.append(column)
        return keras.ops.stack(columns, axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "names": self.names,
            "horizon": self.horizon,
            "season": self.season,
            "window": self.window,
        }


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class WeightedSum(keras.layers.Layer):
    """Candidates [B, horizon, k] -> their fixed weighted sum [B, horizon]."""

    def __init__(self, weights: list[float], **kwargs):
        super().__init__(**kwargs)
        self.mix = [float(w) for w in weights]

    def call(self, candidates):
        return keras.ops.sum(candidates * keras.ops.convert_to_tensor(self.mix), axis=-1)

    def get_config(self):
        return {**super().get_config(), "weights": self.mix}


@dataclasses.dataclass(frozen=True)
class HistoryShape:
    """What the in-graph baselines need to know about the network's inputs."""

    target: str
    horizon: int
    season: int
    moving_average_window: int


def candidates_model(network: keras.Model, names: list[str], shape: HistoryShape) -> keras.Model:
    """The network's inputs (plus ``baseline_<name>`` for each external candidate) -> every
    candidate's forecast stacked [B, horizon, 1 + len(names)], the network first."""
    inputs = dict(network.input)
    lookback = inputs[shape.target].shape[-1]
    if "seasonal_naive" in names and not lookback >= shape.season:
        raise ConfigError(
            f"combination.candidates has seasonal_naive, but the model reads {lookback} periods, "
            f"less than a season ({shape.season}); drop it or raise windows.lookback"
        )
    if "moving_average" in names and lookback < shape.moving_average_window:
        raise ConfigError(
            f"combination.candidates has moving_average over {shape.moving_average_window} "
            f"periods, more than the {lookback} the model reads"
        )
    wrapped = keras.Model(network.input, network.output, name=NETWORK)
    columns = [keras.layers.Reshape((shape.horizon, 1))(wrapped(inputs))]
    in_graph = [name for name in names if name in IN_GRAPH]
    if in_graph:
        columns.append(
            HistoryBaselines(
                in_graph,
                shape.horizon,
                shape.season,
                shape.moving_average_window,
                name="history_baselines",
            )(inputs[shape.target])
        )
    for name in names:
        if name not in IN_GRAPH:
            tensor = keras.Input((shape.horizon,), name=EXTERNAL_PREFIX + name)
            inputs[EXTERNAL_PREFIX + name] = tensor
            columns.append(keras.layers.Reshape((shape.horizon, 1))(tensor))
    stacked = columns[0] if len(columns) == 1 else keras.layers.Concatenate(axis=-1)(columns)
    return keras.Model(inputs, stacked, name="candidates")


def candidate_order(names: list[str]) -> list[str]:
    """The candidates model's column order: the network, the in-graph baselines, the others."""
    return [
        NETWORK,
        *(name for name in names if name in IN_GRAPH),
        *(name for name in names if name not in IN_GRAPH),
    ]


def external_names(model: keras.Model) -> list[str]:
    """The baselines a (combined) model takes as inputs."""
    return [
        name.removeprefix(EXTERNAL_PREFIX)
        for name in model.input
        if name.startswith(EXTERNAL_PREFIX)
    ]


def served_baselines(trained: TrainedModel) -> list[str]:
    """The baselines a saved (combined) model takes as inputs, from its ``combination.json``."""
    report = trained.path / COMBINATION_FILE
    if not report.is_file():
        return []
    served = json.loads(report.read_text())["served_inputs"]
    return [name.removeprefix(EXTERNAL_PREFIX) for name in served]


def with_external(inputs: dict, model: keras.Model, forecasts: dict[str, np.ndarray]) -> dict:
    """``inputs`` plus the ``baseline_<name>`` arrays the model takes, from ``forecasts``."""
    missing = [name for name in external_names(model) if name not in forecasts]
    if missing:
        raise DataError(f"the model takes the forecasts of {missing}, which were not computed")
    extra = {
        EXTERNAL_PREFIX + n: np.asarray(forecasts[n], np.float32) for n in external_names(model)
    }
    return {**inputs, **extra}


def predict(model: keras.Model, inputs: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
    """``model``'s outputs for named input arrays (strings included), in row order."""
    dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    return model.predict(dataset, verbose=0)


def network_of(model: keras.Model) -> keras.Model:
    """The trained network inside a combination (the model itself when not combined)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and layer.name == "candidates":
            return layer.get_layer(NETWORK)
    return model


def run(
    trained: TrainedModel,
    names: list[str],
    shape: HistoryShape,
    validation_inputs: dict,
    validation_actual: np.ndarray,
    validation_cell_weights: np.ndarray,
    external_forecasts: dict[str, np.ndarray],
    out_dir: Path,
    min_cells_per_weight: int = 1,
) -> TrainedModel:
    """The trained network combined with the baselines ``names``, weighted on the validation
    block, saved as a model with the network's training summary and ``combination.json``;
    without ``names``, a copy of the network.

    Args:
        validation_inputs: The network's raw inputs of the validation windows.
        validation_actual, validation_cell_weights: Their true values and WMAE cell weights.
        external_forecasts: Validation forecasts of every candidate not computed in the graph.
        min_cells_per_weight: Below this many observed cells per candidate, the single best.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("training.json", "history.json"):
        shutil.copyfile(trained.path / name, out_dir / name)
    if not names:
        shutil.copyfile(trained.model_file, out_dir / "model.keras")
        return TrainedModel(out_dir)
    network = trained.load()
    stacked_model = candidates_model(network, names, shape)
    inputs = with_external(validation_inputs, stacked_model, external_forecasts)
    stacked = predict(stacked_model, inputs, 1024)
    order = candidate_order(names)
    weights = fit_weights(
        validation_actual,
        validation_cell_weights,
        {name: stacked[:, :, i] for i, name in enumerate(order)},
        min_cells_per_weight,
    )
    cells = int(np.count_nonzero(scored_cells(validation_actual, validation_cell_weights)))
    chosen = "single best" if single_best(cells, len(order), min_cells_per_weight) else "weights"
    combined = keras.Model(
        stacked_model.input,
        WeightedSum([weights[name] for name in order], name="combination")(
            stacked_model(stacked_model.input)
        ),
        name=f"{network.name.removesuffix('_forecaster')}_combined_forecaster",
    )
    report = {
        "weights": weights,
        "method": chosen,
        "validation_cells": cells,
        "served_inputs": [EXTERNAL_PREFIX + name for name in external_names(combined)],
        "validation_wmae": _validation_wmae(
            validation_actual, validation_cell_weights, stacked, order, weights
        ),
    }
    combined.save(out_dir / "model.keras")
    (out_dir / COMBINATION_FILE).write_text(json.dumps(report, indent=2))
    tracking.log_dict(report, COMBINATION_FILE)
    tracking.log_metrics({f"combination_weight_{name}": w for name, w in weights.items()})
    return TrainedModel(out_dir)


def _validation_wmae(actual, cell_weights, stacked, order, weights) -> dict[str, float]:
    """Each candidate's and the combination's WMAE on the validation block."""
    scored = scored_cells(actual, cell_weights)
    w = cell_weights[scored]

    def wmae(forecast):
        return float(np.sum(w * np.abs(actual[scored] - forecast[scored])) / np.sum(w))

    mix = sum(weights[name] * stacked[:, :, i] for i, name in enumerate(order))
    return {**{name: wmae(stacked[:, :, i]) for i, name in enumerate(order)}, "combined": wmae(mix)}
