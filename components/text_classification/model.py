"""The text classifier: token ids -> embedding -> recurrent stack -> pooling -> probabilities.

The vectorizer runs in the input pipeline during training and inside the serving graph at export
(``signatures.py``), so this model takes token ids. With two classes it returns the probability of
label 1 (a sigmoid unit); with more, one probability per class (softmax). Attention pooling also
computes one weight per token, which ``signatures.py`` serves and evaluation draws (``explain``).
"""

from __future__ import annotations

import dataclasses

import keras

from components.errors import ConfigError, require_one_of
from components.recurrent import RecurrentStackConfig, recurrent_stack

POOLINGS = ("last", "mean", "max", "relu_max", "attention")
ATTENTION_SCORES = ("additive", "dot")
ATTENTION_LAYER = "attention"
"""The pooling layer's name, by which ``attention_weights`` finds it in a trained model."""


@dataclasses.dataclass
class TextClassifierConfig(RecurrentStackConfig):
    bidirectional: bool = True
    """Read the review both ways and concatenate (doubles the recurrent cost)."""
    dropout: float = 0.5
    """Dropout between stacked recurrent layers and before the output head."""
    embedding_dim: int = 128
    embedding_dropout: float = 0.0
    """Drops whole embedding channels (SpatialDropout1D), a strong regularizer for text."""
    mask_padding: bool = True
    """Skip padding steps, so a review's length does not change what the cells see."""
    pooling: str = "max"
    """How the last layer's outputs become one vector: last state, or mean / max over time;
    ``relu_max`` floors the max at 0, so a feature fires only when some step drives it up;
    ``attention`` is a weighted mean whose per-token weights the model learns (and can show)."""
    attention: str = "additive"
    """Attention scoring against a learned query: ``additive`` (Bahdanau: the query meets a tanh
    layer of each output, so what counts can be a nonlinear mix of features) or ``dot`` (scaled
    dot product with the outputs themselves: one linear direction, fewer weights)."""
    attention_units: int = 64
    """Width of the additive scorer's tanh layer (unused by ``dot``)."""
    init_from: str | None = None
    """A word-level ``language_model`` pipeline run folder (``artifacts/language_model/<run>``)
    whose embeddings and recurrent weights the classifier starts from (``pretrained.py``)."""

    def __post_init__(self):
        super().__post_init__()
        require_one_of("model.pooling", self.pooling, POOLINGS)
        if self.embedding_dim < 1:
            raise ConfigError(f"model.embedding_dim={self.embedding_dim} must be positive")
        if not 0.0 <= self.embedding_dropout < 1.0:
            raise ConfigError(f"model.embedding_dropout={self.embedding_dropout} must be in [0, 1)")
        require_one_of("model.attention", self.attention, ATTENTION_SCORES)
        if self.attention_units < 1:
            raise ConfigError(f"model.attention_units={self.attention_units} must be positive")
        if self.pooling == "attention" and not self.mask_padding:
            raise ConfigError(
                "model.pooling=attention needs model.mask_padding=true: weights on padding would "
                "explain nothing and change with the text's length"
            )


@keras.saving.register_keras_serializable(package="components")
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """Max over time that ignores padded steps (Keras' GlobalMaxPooling1D drops the mask)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            padding = keras.ops.expand_dims(keras.ops.logical_not(mask), -1)
            inputs = keras.ops.where(padding, keras.ops.full_like(inputs, -1e9), inputs)
        return keras.ops.max(inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None


@keras.saving.register_keras_serializable(package="components")
class AttentionPooling(keras.layers.Layer):
    """A weighted mean over time, the weights a softmax of each step's score against a learned
    query. Padded steps get weight exactly 0, so the weights of a text sum to 1 over its tokens
    (a text with no token at all gets all-zero weights and a zero vector).

    ``call(..., return_weights=True)`` returns ``(pooled, weights)``; weights are ``[batch, time]``.
    """

    def __init__(self, score: str = "additive", units: int = 64, **kwargs):
        super().__init__(**kwargs)
        require_one_of("attention score", score, ATTENTION_SCORES)
        self.score, self.units = score, units
        self.supports_masking = True

    def build(self, input_shape):
        features = input_shape[-1]
        if self.score == "additive":
            self.projection = self.add_weight(
                name="projection", shape=(features, self.units), initializer="glorot_uniform"
            )
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
            features = self.units
        self.query = self.add_weight(name="query", shape=(features,), initializer="glorot_uniform")

    def call(self, inputs, mask=None, return_weights=False):
        if self.score == "additive":
            keys = keras.ops.tanh(keras.ops.matmul(inputs, self.projection) + self.bias)
            scores = keras.ops.matmul(keys, self.query)
        else:
            scale = keras.ops.sqrt(keras.ops.cast(keras.ops.shape(inputs)[-1], inputs.dtype))
            scores = keras.ops.matmul(inputs, self.query) / scale
        if mask is not None:
            # -1e9 underflows to an exact 0 after the softmax; the where covers all-padding rows.
            scores = keras.ops.where(mask, scores, keras.ops.full_like(scores, -1e9))
        weights = keras.ops.softmax(scores, axis=-1)
        if mask is not None:
            weights = keras.ops.where(mask, weights, keras.ops.zeros_like(weights))
        pooled = keras.ops.sum(inputs * keras.ops.expand_dims(weights, -1), axis=1)
        return (pooled, weights) if return_weights else pooled

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "score": self.score, "units": self.units}


def build_text_classifier(
    config: TextClassifierConfig, vocabulary_size: int, sequence_length: int, classes: int = 2
) -> keras.Model:
    token_ids = keras.Input(shape=(sequence_length,), dtype="int64", name="token_ids")
    hidden = keras.layers.Embedding(
        vocabulary_size, config.embedding_dim, mask_zero=config.mask_padding, name="embedding"
    )(token_ids)
    if config.embedding_dropout:
        hidden = keras.layers.SpatialDropout1D(config.embedding_dropout, name="embedding_dropout")(
            hidden
        )
    for layer in recurrent_stack(config, return_sequences=config.pooling != "last"):
        hidden = layer(hidden)
    if config.pooling in ("max", "relu_max"):
        hidden = MaskedGlobalMaxPooling1D(name="max_over_time")(hidden)
    if config.pooling == "relu_max":
        hidden = keras.layers.ReLU(name="floor_at_zero")(hidden)
    elif config.pooling == "mean":
        hidden = keras.layers.GlobalAveragePooling1D(name="mean_over_time")(hidden)
    elif config.pooling == "attention":
        attention = AttentionPooling(config.attention, config.attention_units, name=ATTENTION_LAYER)
        # The weights are a second output of the layer's node, so a model rebuilt from the saved
        # graph can return them (``attention_weights``) without a second pass.
        hidden, _ = attention(hidden, return_weights=True)
    hidden = keras.layers.Dropout(config.dropout, name="head_dropout")(hidden)
    if classes == 2:
        output = keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden)
    else:
        output = keras.layers.Dense(classes, activation="softmax", name="probabilities")(hidden)
    name = f"{'bi' if config.bidirectional else ''}{config.cell}_x{config.layers}_classifier"
    return keras.Model(token_ids, output, name=name)


def attention_weights(classifier: keras.Model) -> keras.Model | None:
    """Token ids -> ``(probabilities, weights)`` of an attention classifier (sharing its
    layers); None for any other pooling."""
    if ATTENTION_LAYER not in [layer.name for layer in classifier.layers]:
        return None
    _, weights = classifier.get_layer(ATTENTION_LAYER).output
    return keras.Model(classifier.input, [classifier.output, weights], name="attention_weights")


def loss_and_metrics(classes: int) -> tuple[str, list[str]]:
    """What training minimizes and reports for a head of ``classes`` classes."""
    if classes == 2:
        return "binary_crossentropy", ["accuracy", "auc"]
    return "sparse_categorical_crossentropy", ["accuracy"]
