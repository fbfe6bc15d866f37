"""The forecaster's serving graph: raw history, covariates and ids in, original-unit forecasts out.

Scaling, calendar features and category lookups are layers of the model, so the signature only
names its inputs and, for a quantile model, returns each quantile beside the point forecast.
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
        predicted = model(inputs, training=False)
        if not quantiles:
            return {"forecast": predicted}
        outputs = {f"p{round(q * 100):02d}": predicted[:, :, i] for i, q in enumerate(quantiles)}
        return {"forecast": predicted[:, :, median_index(quantiles)], **outputs}

    archive.add_endpoint("serving_default", serve)
    return archive
