"""The text classifier: token ids -> embedding -> recurrent stack -> pooling -> probabilities.

The vectorizer runs in the input pipeline during training and inside the serving graph at export
(``signatures.py``), so this model takes token ids. With two classes it returns the probability of
label 1 (a sigmoid unit); with more, one probability per class (softmax).
"""

from __future__ import annotations

import dataclasses

import keras

from components.errors import ConfigError, require_one_of
from components.recurrent import RecurrentStackConfig, recurrent_stack

POOLINGS = ("last", "mean", "max", "relu_max")


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
    ``relu_max`` floors the max at 0, so a feature fires only when some step drives it up."""

    def __post_init__(self):
        super().__post_init__()
        require_one_of("model.pooling", self.pooling, POOLINGS)
        if self.embedding_dim < 1:
            raise ConfigError(f"model.embedding_dim={self.embedding_dim} must be positive")
        if not 0.0 <= self.embedding_dropout < 1.0:
            raise ConfigError(f"model.embedding_dropout={self.embedding_dropout} must be in [0, 1)")


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
    hidden = keras.layers.Dropout(config.dropout, name="head_dropout")(hidden)
    if classes == 2:
        output = keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden)
    else:
        output = keras.layers.Dense(classes, activation="softmax", name="probabilities")(hidden)
    name = f"{'bi' if config.bidirectional else ''}{config.cell}_x{config.layers}_classifier"
    return keras.Model(token_ids, output, name=name)


def loss_and_metrics(classes: int) -> tuple[str, list[str]]:
    """What training minimizes and reports for a head of ``classes`` classes."""
    if classes == 2:
        return "binary_crossentropy", ["accuracy", "auc"]
    return "sparse_categorical_crossentropy", ["accuracy"]
