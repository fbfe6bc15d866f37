"""The n-gram branch of the text classifier: NBSVM (Wang & Manning 2012) inside the serving graph.

A ``TextVectorization`` layer turns raw text into binarized counts of word 1- to ``ngram_max``-grams
(a sparse row per text, the vocabulary fitted on the train split); each class's weights are a
logistic regression on those counts scaled by their Naive-Bayes log-count ratio, fitted by
liblinear, and folded into one ``SparseLinear`` layer (ratio times coefficient). The branch is
the bag of n-grams at its strongest: ``stack.py`` joins it with the recurrent branch.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np
import scipy.sparse
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

from components import tracking
from components.artifacts import Examples, NgramModel
from components.errors import ConfigError, require_one_of
from components.text_classification.vectorize import SPLITS


@dataclasses.dataclass
class NgramConfig:
    enabled: bool = True
    """Fit the n-gram branch and stack it with the recurrent model; false: the recurrent model
    alone is evaluated and served."""
    ngram_max: int = 3
    """Longest n-gram counted (uni+bi+trigrams: 0.916 on IMDB, uni+bigrams 0.913)."""
    max_features: int = 1_000_000
    """N-grams kept in the vocabulary, the most frequent of the train split first (IMDB's
    training reviews hold about 4.8 million distinct uni- to trigrams)."""
    split: str = "whitespace"
    """``whitespace``: word n-grams; ``character``: character n-grams (Chinese, Japanese)."""
    regularization: float = 1.0
    """Inverse L2 strength (scikit-learn's C) of each class's logistic regression."""
    smoothing: float = 1.0
    """Added to every n-gram's count per class before the log-count ratio (NBSVM's alpha)."""
    text_field: str = "text"

    def __post_init__(self):
        require_one_of("ngrams.split", self.split, SPLITS)
        if self.ngram_max < 1 or self.max_features < 2:
            raise ConfigError(
                f"ngrams.ngram_max={self.ngram_max} must be >= 1 and "
                f"ngrams.max_features={self.max_features} >= 2"
            )
        if self.regularization <= 0 or self.smoothing <= 0:
            raise ConfigError("ngrams.regularization and ngrams.smoothing must be positive")


@keras.saving.register_keras_serializable(package="components")
def standardize_for_ngrams(text: tf.Tensor) -> tf.Tensor:
    """Lowercase, HTML line breaks to spaces, ``!`` and ``?`` kept as tokens of their own (they
    carry sentiment), every other punctuation mark dropped (apostrophes stay)."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    text = tf.strings.regex_replace(text, r"([!?])", r" \1 ")
    return tf.strings.regex_replace(text, r"[^\p{L}\p{N}_\s'!?]", " ")


@keras.saving.register_keras_serializable(package="components")
class SparseLinear(keras.layers.Layer):
    """``inputs @ kernel + bias`` for a sparse ``[batch, features]`` input (a dense copy of a
    million-column multi-hot batch would not fit)."""

    def __init__(self, features: int, outputs: int, **kwargs):
        super().__init__(**kwargs)
        self.features, self.outputs = features, outputs

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(self.features, self.outputs), initializer="zeros"
        )
        self.bias = self.add_weight(name="bias", shape=(self.outputs,), initializer="zeros")

    def call(self, inputs):
        inputs = tf.cast(inputs, self.kernel.dtype)  # TextVectorization counts in int64
        if isinstance(inputs, tf.SparseTensor):
            return tf.sparse.sparse_dense_matmul(inputs, self.kernel) + self.bias
        return keras.ops.matmul(inputs, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.outputs)

    def get_config(self):
        return {**super().get_config(), "features": self.features, "outputs": self.outputs}


def run(config: NgramConfig, examples: Examples, out_dir: Path) -> NgramModel:
    """Fit the branch on the train split and save it as ``text -> per-class logits``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"enabled": config.enabled}
    if config.enabled:
        summary |= _fit(config, examples, out_dir / NgramModel.MODEL_FILE)
        tracking.log_metrics({f"ngram_{key}": value for key, value in summary.items()})
    (out_dir / NgramModel.SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return NgramModel(out_dir)


def _fit(config: NgramConfig, examples: Examples, model_file: Path) -> dict:
    started = time.perf_counter()
    train = examples.load("train")
    texts, labels = train[config.text_field].to_numpy(), train["label"].to_numpy()
    classes = len(examples.statistics()["label_names"])
    vectorizer = keras.layers.TextVectorization(
        max_tokens=config.max_features,
        standardize=standardize_for_ngrams,
        split=config.split,
        ngrams=config.ngram_max,
        output_mode="multi_hot",
        sparse=True,
        name="ngram_vectorizer",
    )
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(1024))
    counts = design_matrix(vectorizer, texts)
    kernel, bias = class_weights(counts, labels, classes, config.regularization, config.smoothing)
    text = keras.Input(shape=(), dtype="string", name="text")
    linear = SparseLinear(counts.shape[1], kernel.shape[1], name="ngram_logits")
    model = keras.Model(text, linear(vectorizer(text)), name="ngram_branch")
    linear.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    model.save(model_file)
    return {
        "features": int(counts.shape[1]),
        "train_rows": int(counts.shape[0]),
        "fit_seconds": round(time.perf_counter() - started, 1),
    }


def design_matrix(vectorizer: keras.layers.TextVectorization, texts: np.ndarray):
    """The texts' multi-hot n-gram rows as one SciPy CSR matrix."""
    blocks = []
    for batch in tf.data.Dataset.from_tensor_slices(texts).batch(1024).map(vectorizer):
        rows, columns = batch.indices.numpy().T
        blocks.append(
            scipy.sparse.csr_matrix(
                (batch.values.numpy().astype(np.float64), (rows, columns)),
                shape=tuple(batch.dense_shape.numpy()),
            )
        )
    return scipy.sparse.vstack(blocks).tocsr()


def class_weights(
    counts, labels: np.ndarray, classes: int, regularization: float, smoothing: float
):
    """NBSVM's ``(kernel, bias)``: one column per class scored (label 1 alone for two classes,
    else one-vs-rest each), the Naive-Bayes ratio times the logistic regression's coefficient,
    and its intercept, so ``counts @ kernel + bias`` are the regressions' logits."""
    scored = [1] if classes == 2 else list(range(classes))
    kernel = np.zeros((counts.shape[1], len(scored)))
    bias = np.zeros(len(scored))
    for column, positive in enumerate(scored):
        target = (labels == positive).astype(int)
        ratio = log_count_ratio(counts, target, smoothing)
        regression = LogisticRegression(C=regularization, solver="liblinear")
        regression.fit(counts.multiply(ratio).tocsr(), target)
        kernel[:, column] = ratio * regression.coef_[0]
        bias[column] = regression.intercept_[0]
    return kernel, bias


def log_count_ratio(counts, target: np.ndarray, smoothing: float) -> np.ndarray:
    """NBSVM's r = log((p / |p|_1) / (q / |q|_1)), p and q the smoothed n-gram counts of the
    positive and the other texts: how much more often each n-gram occurs on the positive side."""
    positive = np.asarray(counts[target == 1].sum(axis=0)).ravel() + smoothing
    negative = np.asarray(counts[target == 0].sum(axis=0)).ravel() + smoothing
    return np.log(positive / positive.sum()) - np.log(negative / negative.sum())
