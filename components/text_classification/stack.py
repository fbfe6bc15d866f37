"""Stack: join the recurrent and the n-gram branch, with weights fitted on the validation split.

Each branch gives per-class scores (the recurrent model's log-probabilities, the n-gram branch's
logits); the stacked prediction is ``softmax(a * ngram + b * recurrent + c)``, a sigmoid of the
same for two classes. ``a``, ``b`` and the class biases ``c`` minimize the log loss on the
validation split, which neither branch was fitted on (Mesnil et al. 2014 weigh their ensemble the
same way), so the recurrent branch gets the weight its held-out predictions earn and the test
split is never seen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from scipy.optimize import minimize
from scipy.special import log_softmax

from components import tracking
from components.artifacts import Examples, NgramModel, StackedModel

EPSILON = 1e-7
"""Probabilities are clipped into [EPSILON, 1 - EPSILON] before their logarithm."""
PENALTY = 1e-4
"""L2 pull of ``a`` and ``b`` towards 0, so separable validation scores keep finite weights."""


@keras.saving.register_keras_serializable(package="components")
class StackedProbabilities(keras.layers.Layer):
    """``[recurrent probabilities, n-gram logits] -> probabilities``, in the recurrent model's own
    output format (``[batch, 1]`` of label 1 for two classes, else ``[batch, classes]``)."""

    def __init__(self, ngram_weight: float, recurrent_weight: float, bias: list, **kwargs):
        super().__init__(**kwargs)
        self.ngram_weight, self.recurrent_weight, self.bias = ngram_weight, recurrent_weight, bias

    def call(self, inputs):
        probabilities, ngram_logits = inputs
        probabilities = keras.ops.clip(probabilities, EPSILON, 1.0 - EPSILON)
        if len(self.bias) == 1:
            recurrent = keras.ops.log(probabilities) - keras.ops.log(1.0 - probabilities)
            return keras.ops.sigmoid(self._scores(ngram_logits, recurrent))
        return keras.ops.softmax(self._scores(ngram_logits, keras.ops.log(probabilities)), axis=-1)

    def _scores(self, ngram, recurrent):
        bias = keras.ops.convert_to_tensor(self.bias, dtype=recurrent.dtype)
        return self.ngram_weight * ngram + self.recurrent_weight * recurrent + bias

    def get_config(self):
        return {
            **super().get_config(),
            "ngram_weight": self.ngram_weight,
            "recurrent_weight": self.recurrent_weight,
            "bias": self.bias,
        }


def run(
    examples: Examples,
    ngrams: NgramModel,
    recurrent_probabilities: Callable[[np.ndarray], np.ndarray],
    out_dir: Path,
    text_field: str = "text",
) -> StackedModel:
    """Fit the stacking weights on the validation split (nothing to fit if the n-gram branch is
    off: the recurrent model is then served alone)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    weights: dict = {"enabled": ngrams.enabled}
    if ngrams.enabled:
        validation = examples.load("validation")
        texts, labels = validation[text_field].to_numpy(), validation["label"].to_numpy()
        ngram_logits = ngrams.load().predict(tf.constant(texts), batch_size=256, verbose=0)
        weights |= fit(recurrent_probabilities(texts), ngram_logits, labels)
        weights["ngram_branch"] = ngrams.summary()  # its size and fit time, for the reports
        tracking.log_metrics(
            {f"stack_{key}": weights[key] for key in ("ngram_weight", "recurrent_weight")}
        )
        ngrams.copy_model_into(out_dir)
    (out_dir / StackedModel.WEIGHTS_FILE).write_text(json.dumps(weights, indent=2))
    return StackedModel(out_dir)


def fit(probabilities: np.ndarray, ngram_logits: np.ndarray, labels: np.ndarray) -> dict:
    """The ``a``, ``b`` and ``c`` of the module docstring that minimize the mean log loss."""
    ngram, recurrent = _class_scores(probabilities, ngram_logits)
    classes = recurrent.shape[1]
    rows = np.arange(len(labels))

    def loss(parameters: np.ndarray) -> float:
        a, b, bias = parameters[0], parameters[1], parameters[2:]
        scores = a * ngram + b * recurrent + np.concatenate([[0.0], bias])
        return -log_softmax(scores, axis=1)[rows, labels].mean() + PENALTY * (a * a + b * b)

    start = np.concatenate([[1.0, 1.0], np.zeros(classes - 1)])
    # A branch may be worth nothing (weight 0) but never its opposite: a negative weight would
    # only fit the validation split's noise.
    bounds = [(0.0, None), (0.0, None)] + [(None, None)] * (classes - 1)
    result = minimize(loss, start, method="L-BFGS-B", bounds=bounds)
    (a, b), bias = result.x[:2].tolist(), result.x[2:]
    return {
        "ngram_weight": a,
        "recurrent_weight": b,
        # Two classes: one bias on label 1's logit; more: one per class (the first fixed at 0).
        "bias": [float(bias[0])] if classes == 2 else [0.0, *map(float, bias)],
        "validation_log_loss": round(float(result.fun), 5),
        "validation_rows": len(labels),
    }


def _class_scores(probabilities: np.ndarray, ngram_logits: np.ndarray):
    """Both branches as ``[n, classes]`` scores: two classes become ``[0, logit]`` and
    ``[log(1 - p), log p]``, so one softmax formula serves every head."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1 - EPSILON)
    ngram_logits = np.asarray(ngram_logits, dtype=np.float64)
    if probabilities.ndim == 1 or probabilities.shape[1] == 1:
        positive = probabilities.reshape(-1)
        recurrent = np.stack([np.log(1 - positive), np.log(positive)], axis=1)
        ngram = np.stack([np.zeros(len(positive)), ngram_logits.reshape(-1)], axis=1)
        return ngram, recurrent
    return ngram_logits, np.log(probabilities)
