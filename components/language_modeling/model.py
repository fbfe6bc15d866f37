"""The recurrent language model: token ids -> embedding -> stacked cells -> next-token logits.

One builder gives every variant the pipeline needs (stateful for truncated BPTT over a stream,
explicit states for generation and whole-split evaluation); they share layer names, so weights
copy between them by name.
"""

from __future__ import annotations

import dataclasses

import keras

from components.errors import ConfigError
from components.recurrent import RecurrentStackConfig, recurrent_layer


@dataclasses.dataclass
class LanguageModelConfig(RecurrentStackConfig):
    cell: str = "lstm"
    layers: int = 2
    units: int = 200
    dropout: float = 0.0
    """Dropout on the embeddings, between layers and before the softmax (Zaremba et al. 2014)."""
    variational_dropout: bool = False
    """Draw ``dropout``'s mask once per window and feature, the same at every time step (Gal &
    Ghahramani 2016); ``model.recurrent_dropout`` masks the recurrent state that way already."""
    embedding_dim: int = 200
    tie_embeddings: bool = False
    """Share the input embedding matrix with the output projection (Press & Wolf 2017)."""
    unroll: bool = False
    """Unroll the recurrence over the fixed training window instead of looping. On this CPU it
    halved the step time of PTB's 20-step windows and slowed 100-step character windows."""

    def __post_init__(self):
        super().__post_init__()
        if self.bidirectional:
            raise ConfigError(
                "model.bidirectional=true cannot be: a language model predicts the next token "
                "from the ones before it, so it reads left to right only"
            )
        if self.embedding_dim < 1:
            raise ConfigError(f"model.embedding_dim={self.embedding_dim} must be positive")


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
    hidden = _dropout(config, "embedding_dropout")(embedding(token_ids))
    per_layer = len(states_in) // config.layers
    states_out = []
    for index in range(config.layers):
        layer = recurrent_layer(
            config,
            index,
            return_sequences=True,
            return_state=explicit_states,
            stateful=stateful,
            unroll=config.unroll and sequence_length is not None,
        )
        if explicit_states:
            initial = states_in[index * per_layer : (index + 1) * per_layer]
            hidden, *layer_states = layer(hidden, initial_state=initial)
            states_out.extend(layer_states)
        else:
            hidden = layer(hidden)
        hidden = _dropout(config, f"dropout_{index}")(hidden)
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


def _dropout(config: LanguageModelConfig, name: str) -> keras.layers.Dropout:
    """Standard dropout, or variational: one mask over the time axis of (batch, time, features)."""
    noise_shape = (None, 1, None) if config.variational_dropout else None
    return keras.layers.Dropout(config.dropout, noise_shape=noise_shape, name=name)


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy weights layer by layer, matched by name (the variants above share names)."""
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
