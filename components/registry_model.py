"""The MLflow pyfunc of every registered model: a SavedModel's ``serving_default``, standalone.

Logged as MLflow "models from code": this file is copied into the logged model and run at load
time, so ``mlflow.pyfunc.load_model('models:/<name>@champion')`` needs only MLflow, pandas and
TensorFlow, not this project: it imports nothing from it. Input: a DataFrame with one column per
signature input (plain strings for text); output: one column per signature output.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd


class ServingSignatureModel(mlflow.pyfunc.PythonModel):
    """What TF Serving serves, behind MLflow's pyfunc interface."""

    def load_context(self, context):
        self.load(context.artifacts["saved_model"])

    def load(self, saved_model_dir: str) -> ServingSignatureModel:
        """Load the SavedModel in ``saved_model_dir`` (the exporter, which registers the copy it
        has just checked, calls this directly rather than loading the files a second time)."""
        import tensorflow as tf

        self._saved_model = tf.saved_model.load(saved_model_dir)
        self.serving_default = self._saved_model.signatures["serving_default"]
        return self

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        import tensorflow as tf

        names = self.serving_default.structured_input_signature[1]
        inputs = {name: tf.constant(model_input[name].tolist()) for name in names}
        outputs = self.serving_default(**inputs)
        return pd.DataFrame({name: _plain(value.numpy()) for name, value in outputs.items()})


def _plain(values: np.ndarray) -> list:
    """Rows of an output: strings decoded, a row of several values as a list."""
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]


mlflow.models.set_model(ServingSignatureModel())
