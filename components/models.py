"""Recurrent model builders: SimpleRNN / LSTM / GRU, unidirectional or bidirectional, stacked.

``build_text_classifier`` takes token ids (the vectorizer runs in the input pipeline during
training and inside the serving graph at export) and returns the positive-class probability.
"""

from __future__ import annotations

import dataclasses

import keras

from components.errors import ConfigError

CELLS = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
POOLINGS = ("last", "mean", "max", "relu_max")


def require_known_cell(cell: str) -> None:
    if cell not in CELLS:
        raise ConfigError(
            f"model.cell={cell!r} is not a known model type; choose one of: {', '.join(CELLS)}"
        )


@dataclasses.dataclass
class RecurrentModelConfig:
    cell: str = "gru"
    """Recurrent cell: simple_rnn | lstm | gru."""
    bidirectional: bool = True
    """Read the sequence both ways and concatenate (doubles the recurrent cost)."""
    layers: int = 1
    """Stacked recurrent layers; all but the last return full sequences."""
    embedding_dim: int = 128
    embedding_dropout: float = 0.0
    """Drops whole embedding channels (SpatialDropout1D), a strong regularizer for text."""
    units: int = 64
    """Units per recurrent layer (per direction when bidirectional)."""
    dropout: float = 0.5
    """Dropout between stacked recurrent layers and before the output head."""
    recurrent_dropout: float = 0.0
    """Dropout on the recurrent state inside each cell."""
    mask_padding: bool = True
    """Skip padding steps, so a review's length does not change what the cells see."""
    pooling: str = "max"
    """How the last layer's outputs become one vector: last state, or mean / max over time;
    ``relu_max`` floors the max at 0, so a feature fires only when some step drives it up."""

    def __post_init__(self):
        require_known_cell(self.cell)
        if self.pooling not in POOLINGS:
            raise ConfigError(
                f"model.pooling={self.pooling!r} is not valid; choose one of: {', '.join(POOLINGS)}"
            )
        if self.layers < 1 or self.units < 1 or self.embedding_dim < 1:
            raise ConfigError("model.layers, model.units and model.embedding_dim must be positive")
        rates = (self.dropout, self.recurrent_dropout, self.embedding_dropout)
        if not all(0.0 <= rate < 1.0 for rate in rates):
            raise ConfigError(
                "model.dropout, recurrent_dropout and embedding_dropout must be in [0, 1)"
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


def recurrent_stack(
    config: RecurrentModelConfig, return_sequences: bool
) -> list[keras.layers.Layer]:
    """The stacked (bi)recurrent layers, named ``<cell>_<i>``, with dropout between them."""
    stack = []
    for index in range(config.layers):
        layer = CELLS[config.cell](
            config.units,
            return_sequences=return_sequences or index < config.layers - 1,
            recurrent_dropout=config.recurrent_dropout,
            name=f"{config.cell}_{index}",
        )
        if config.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi{config.cell}_{index}")
        if index > 0 and config.dropout:
            stack.append(keras.layers.Dropout(config.dropout, name=f"dropout_{index}"))
        stack.append(layer)
    return stack


def build_text_classifier(
    config: RecurrentModelConfig, vocabulary_size: int, sequence_length: int
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
    probability = keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden)
    name = f"{'bi' if config.bidirectional else ''}{config.cell}_x{config.layers}_classifier"
    return keras.Model(token_ids, probability, name=name)


@dataclasses.dataclass
class LanguageModelConfig:
    cell: str = "lstm"
    """Recurrent cell: simple_rnn | lstm | gru (a language model reads left to right only)."""
    layers: int = 2
    embedding_dim: int = 200
    units: int = 200
    dropout: float = 0.0
    """Dropout on the embeddings, between layers and before the softmax (Zaremba et al. 2014)."""
    tie_embeddings: bool = False
    """Share the input embedding matrix with the output projection (Press & Wolf 2017)."""
    unroll: bool = False
    """Unroll the recurrence over the fixed training window instead of looping. On this CPU it
    halved the step time of PTB's 20-step windows and slowed 100-step character windows."""

    def __post_init__(self):
        require_known_cell(self.cell)
        if self.layers < 1 or self.units < 1 or self.embedding_dim < 1:
            raise ConfigError("model.layers, model.units and model.embedding_dim must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1)")


def state_sizes(config: LanguageModelConfig) -> list[int]:
    """Sizes of the recurrent state tensors, layer by layer (an LSTM has two: h and c)."""
    per_layer = 2 if config.cell == "lstm" else 1
    return [config.units] * (per_layer * config.layers)


def build_language_model(
    config: LanguageModelConfig,
    vocabulary_size: int,
    batch_size: int | None = None,
    stateful: bool = False,
    explicit_states: bool = False,
    sequence_length: int | None = None,
) -> keras.Model:
    """Token ids (batch, time) -> next-token logits (batch, time, vocabulary).

    ``stateful`` carries the state from one batch to the next (truncated BPTT over a stream; needs
    a fixed ``batch_size``). ``explicit_states`` adds the states as inputs and outputs instead, for
    step-by-step generation and whole-split evaluation. A fixed ``sequence_length`` (training
    windows) lets ``config.unroll`` take effect. All variants share layer names, so weights copy
    between them by name.
    """
    token_ids = keras.Input(
        batch_shape=(batch_size, sequence_length), dtype="int32", name="token_ids"
    )
    states_in = [
        keras.Input(batch_shape=(batch_size, size), name=f"state_{i}")
        for i, size in enumerate(state_sizes(config))
    ]
    embedding = keras.layers.ReversibleEmbedding(
        vocabulary_size, config.embedding_dim, tie_weights=True, name="embedding"
    )
    hidden = keras.layers.Dropout(config.dropout, name="embedding_dropout")(embedding(token_ids))
    per_layer = len(states_in) // config.layers
    states_out = []
    for index in range(config.layers):
        layer = CELLS[config.cell](
            config.units,
            return_sequences=True,
            return_state=explicit_states,
            stateful=stateful,
            unroll=config.unroll and sequence_length is not None,
            name=f"{config.cell}_{index}",
        )
        if explicit_states:
            initial = states_in[index * per_layer : (index + 1) * per_layer]
            hidden, *layer_states = layer(hidden, initial_state=initial)
            states_out.extend(layer_states)
        else:
            hidden = layer(hidden)
        hidden = keras.layers.Dropout(config.dropout, name=f"dropout_{index}")(hidden)
    if config.tie_embeddings:
        if config.units != config.embedding_dim:
            hidden = keras.layers.Dense(config.embedding_dim, name="tied_projection")(hidden)
        logits = embedding(hidden, reverse=True)
    else:
        logits = keras.layers.Dense(vocabulary_size, name="logits")(hidden)
    name = f"{config.cell}_x{config.layers}_language_model"
    if explicit_states:
        return keras.Model([token_ids, *states_in], [logits, *states_out], name=name)
    return keras.Model(token_ids, logits, name=name)


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy weights layer by layer, matched by name (the variants above share names)."""
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
