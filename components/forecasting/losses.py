"""The forecasters' training losses: point (MAE) and quantile (pinball), both skipping the target
periods ingest filled (NaN), so a filled zero is never learned as a sale."""

from __future__ import annotations

import keras
import tensorflow as tf

from components.forecasting import KERAS_PACKAGE


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class PinballLoss(keras.losses.Loss):
    """Mean quantile (pinball) loss over observed horizon steps and quantiles: [B, H] vs
    [B, H, Q]; NaN targets (periods ingest filled) are skipped."""

    def __init__(self, quantiles: list[float], name: str = "pinball", **kwargs):
        super().__init__(name=name, **kwargs)
        self.quantiles = list(quantiles)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        observed = tf.math.logical_not(tf.math.is_nan(y_true))
        error = tf.expand_dims(tf.where(observed, y_true, 0.0), -1) - y_pred
        q = tf.constant(self.quantiles, y_pred.dtype)
        loss = tf.reduce_mean(tf.maximum(q * error, (q - 1.0) * error), axis=2)
        return _observed_mean(loss, observed)

    def get_config(self):
        return {**super().get_config(), "quantiles": self.quantiles}


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class ObservedMeanAbsoluteError(keras.losses.Loss):
    """Mean absolute error over the observed horizon steps: NaN targets (periods ingest filled
    because the file had no value) are skipped, so a filled zero is never learned as a sale."""

    def __init__(self, name: str = "mean_absolute_error", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        observed = tf.math.logical_not(tf.math.is_nan(y_true))
        return _observed_mean(tf.abs(tf.where(observed, y_true, y_pred) - y_pred), observed)


def _observed_mean(loss, observed):
    """Per-window mean of ``loss`` [B, H] over its observed steps (0 for a window without any)."""
    count = tf.reduce_sum(tf.cast(observed, loss.dtype), axis=1)
    total = tf.reduce_sum(tf.where(observed, loss, 0.0), axis=1)
    return tf.math.divide_no_nan(total, count)
