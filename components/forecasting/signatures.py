"""The forecaster's serving graph: raw history, covariates and ids in, original-unit forecasts out.

Scaling, calendar features and category lookups are layers of the model, so the signature only
names its inputs and, for a quantile model, returns each quantile beside the point forecast. The
graph checks its inputs before it forecasts (real dates as YYYY-MM-DD, finite numbers): a bad
request is an INVALID_ARGUMENT error naming the field, in TF Serving as in the local server.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from components.forecasting.model import median_index


def serving_archive(
    model: keras.Model, quantiles: list[float] | None
) -> keras.export.ExportArchive:
    """``serving_default``: raw history, covariates and ids -> ``forecast`` (+ ``p10``...)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = {
        name: tf.TensorSpec([None, *tensor.shape[1:]], tensor.dtype, name=name)
        for name, tensor in model.input.items()
    }

    @tf.function(input_signature=[signature])
    def serve(inputs):
        with tf.control_dependencies(input_checks(inputs)):
            inputs = {name: tf.identity(tensor) for name, tensor in inputs.items()}
        predicted = model(inputs, training=False)
        if not quantiles:
            return {"forecast": predicted}
        outputs = {f"p{round(q * 100):02d}": predicted[:, :, i] for i, q in enumerate(quantiles)}
        return {"forecast": predicted[:, :, median_index(quantiles)], **outputs}

    archive.add_endpoint("serving_default", serve)
    return archive


def input_checks(inputs: dict[str, tf.Tensor]) -> list[tf.Operation]:
    """Assertions that fail the call with INVALID_ARGUMENT: every number finite, every
    ``forecast_start`` a real calendar date written YYYY-MM-DD."""
    checks = [
        tf.debugging.assert_all_finite(tensor, f"input {name} has NaN or infinite values")
        for name, tensor in inputs.items()
        if tensor.dtype.is_floating
    ]
    if "forecast_start" in inputs:
        checks.append(
            tf.debugging.assert_equal(
                tf.reduce_all(_real_dates(inputs["forecast_start"])),
                True,
                message="input forecast_start must be real dates written YYYY-MM-DD",
            )
        )
    return checks


def _real_dates(dates: tf.Tensor) -> tf.Tensor:
    """Per date: written YYYY-MM-DD, with a month of 1-12 and a day that month has."""
    well_formed = tf.strings.regex_full_match(dates, r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
    safe = tf.where(well_formed, dates, "2000-01-01")
    year, month, day = (
        tf.strings.to_number(tf.strings.substr(safe, start, length), tf.int32)
        for start, length in ((0, 4), (5, 2), (8, 2))
    )
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    lengths = tf.constant([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    days = tf.gather(lengths, tf.clip_by_value(month, 1, 12) - 1) + tf.cast(
        leap & (month == 2), tf.int32
    )
    return well_formed & (month >= 1) & (month <= 12) & (day >= 1) & (day <= days)
