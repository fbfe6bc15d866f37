"""The recurrent stack of every family: SimpleRNN, LSTM or GRU cells, stacked, one way or both.

``RecurrentStackConfig`` is the one definition of the stack's settings; each family's model config
extends it with what its model adds (embeddings, pooling, a forecast head), so ``model.cell``,
``model.layers`` and ``model.units`` mean the same in every pipeline.
"""

from __future__ import annotations

import dataclasses

import keras

from components.errors import ConfigError

CELLS = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


@dataclasses.dataclass
class RecurrentStackConfig:
    cell: str = "gru"
    """Recurrent cell: simple_rnn | lstm | gru."""
    bidirectional: bool = False
    """Read the sequence both ways and concatenate (doubles the recurrent cost)."""
    layers: int = 1
    """Stacked recurrent layers; all but the last return full sequences."""
    units: int = 64
    """Units per recurrent layer (per direction when bidirectional)."""
    dropout: float = 0.0
    """Dropout between stacked recurrent layers (and where each model's head says)."""
    recurrent_dropout: float = 0.0
    """Dropout on the recurrent state inside each cell."""

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ConfigError(
                f"model.cell={self.cell!r} is not a known model type; "
                f"choose one of: {', '.join(CELLS)}"
            )
        if self.layers < 1 or self.units < 1:
            raise ConfigError(
                f"model.layers={self.layers} and model.units={self.units} must be positive"
            )
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.recurrent_dropout < 1.0):
            raise ConfigError(
                f"model.dropout={self.dropout} and model.recurrent_dropout="
                f"{self.recurrent_dropout} must be in [0, 1)"
            )


def recurrent_layer(config: RecurrentStackConfig, index: int, **options) -> keras.layers.Layer:
    """Layer ``index`` of the stack, named ``<cell>_<index>``; ``options`` go to the Keras cell
    layer (``return_sequences``, ``stateful``, ...)."""
    return CELLS[config.cell](
        config.units,
        recurrent_dropout=config.recurrent_dropout,
        name=f"{config.cell}_{index}",
        **options,
    )


def recurrent_stack(
    config: RecurrentStackConfig, return_sequences: bool
) -> list[keras.layers.Layer]:
    """The stacked (bi)recurrent layers, named ``<cell>_<i>``, with dropout between them."""
    stack = []
    for index in range(config.layers):
        layer = recurrent_layer(
            config, index, return_sequences=return_sequences or index < config.layers - 1
        )
        if config.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bi{config.cell}_{index}")
        if index > 0 and config.dropout:
            stack.append(keras.layers.Dropout(config.dropout, name=f"dropout_{index}"))
        stack.append(layer)
    return stack
