"""Attention of the encoder-decoder forecaster, and what it looked at.

``encoder_decoder_attention`` lets each decoder step weigh every encoder state (Luong's
multiplicative "general" score: decoder state . W encoder state, softmax over the history), so a
forecast for week t+h can read week t+h-52 directly instead of through one summary vector. After
evaluation, ``report`` draws the weights (horizon step x history period, averaged over the test
windows' series) and asks the question the architecture was built for: how much more mass than a
uniform share falls on last season's same periods (+-1)?
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from components import tracking
from components.forecasting import KERAS_PACKAGE

WEIGHTS_LAYER = "attention_weights"


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class LuongAttentionWeights(keras.layers.Layer):
    """(decoder states [B, H, U], encoder states [B, L, E]) -> weights [B, H, L], each row a
    softmax over the history: score(d, e) = d . W e (Luong et al. 2015, "general")."""

    def build(self, decoder_states_shape, encoder_states_shape):
        self.kernel = self.add_weight(
            shape=(encoder_states_shape[-1], decoder_states_shape[-1]),
            initializer="glorot_uniform",
            name="w",
        )

    def call(self, decoder_states, encoder_states):
        keys = tf.einsum("ble,eu->blu", encoder_states, self.kernel)
        return tf.nn.softmax(tf.einsum("bhu,blu->bhl", decoder_states, keys), axis=-1)


def attend(decoded, encoder_states, units: int):
    """Luong's attentional hidden state per decoder step: tanh(W [decoder state; context])."""
    weights = LuongAttentionWeights(name=WEIGHTS_LAYER)(decoded, encoder_states)
    context = keras.layers.Dot(axes=(2, 1), name="attention_context")([weights, encoder_states])
    combined = keras.layers.Concatenate()([decoded, context])
    return keras.layers.Dense(units, activation="tanh", name="attentional")(combined)


def weight_models(model: keras.Model) -> list[keras.Model]:
    """Models from the forecaster's raw inputs to its attention weights: one per attending
    forecaster (an ensemble's members included); empty when none attends."""
    forecasters = [model, *(layer for layer in model.layers if isinstance(layer, keras.Model))]
    return [
        keras.Model(forecaster.input, forecaster.get_layer(WEIGHTS_LAYER).output)
        for forecaster in forecasters
        if any(layer.name == WEIGHTS_LAYER for layer in forecaster.layers)
    ]


def report(model: keras.Model, inputs: tf.data.Dataset, season_length: int, out_dir: Path) -> None:
    """Heat map and same-periods-last-season lift of ``model``'s attention over ``inputs`` (raw
    model inputs), written under ``out_dir`` and logged to MLflow; nothing if it has none."""
    models = weight_models(model)
    if not models:
        return
    # Every attending member counts the same; each window (one series) counts the same.
    weights = np.mean([m.predict(inputs, verbose=0).mean(axis=0) for m in models], axis=0)
    lift = seasonal_lift(weights, season_length)
    summary = {"mean_weights": weights.tolist(), "same_periods_last_season_lift": lift}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "attention.json").write_text(json.dumps(summary))
    figure = _heat_map(weights, season_length, lift)
    figure.savefig(out_dir / "attention.png", dpi=100)
    tracking.log_figure(figure, "attention.png")
    if lift is not None:
        tracking.log_metrics({"attention_same_periods_last_season_lift": lift})


def seasonal_lift(weights: np.ndarray, season_length: int) -> float | None:
    """Mean over horizon steps of the attention mass on last season's same period +-1, divided
    by the share a uniform attention would give those periods: 1 = no preference, 3 = three
    times as much. ``weights``: [horizon, lookback], history index ``lookback - 1`` is the
    period before the first forecast. None when the lookback holds none of those periods."""
    horizon, lookback = weights.shape
    lifts = []
    for step in range(horizon):
        # Period t+1+step a season back sits at index lookback + step - season_length.
        centre = lookback + step - season_length
        near = [i for i in (centre - 1, centre, centre + 1) if 0 <= i < lookback]
        if near:
            lifts.append(weights[step, near].sum() / (len(near) / lookback))
    return float(np.mean(lifts)) if lifts else None


def _heat_map(weights: np.ndarray, season_length: int, lift: float | None) -> Figure:
    horizon, lookback = weights.shape
    figure = Figure(figsize=(10, 1.5 + 0.35 * horizon))
    axes = figure.add_subplot()
    extent = (-lookback - 0.5, -0.5, horizon + 0.5, 0.5)
    image = axes.imshow(weights, aspect="auto", cmap="viridis", extent=extent)
    axes.plot(
        np.arange(1, horizon + 1) - season_length - 1,
        np.arange(1, horizon + 1),
        "w--",
        linewidth=1,
        label="same period last season",
    )
    axes.set_xlabel("history period, relative to the first forecast period (0)")
    axes.set_ylabel("horizon step")
    said = "n/a" if lift is None else f"{lift:.2f}x uniform"
    axes.set_title(f"Mean attention over the test windows; last season's periods: {said}")
    axes.legend(loc="lower left", fontsize="small")
    figure.colorbar(image, ax=axes, label="weight")
    figure.tight_layout()
    return figure
