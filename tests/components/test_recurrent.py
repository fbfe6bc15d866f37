"""The one recurrent stack: its config checks and the layers it builds for every family."""

import keras
import pytest

from components.errors import ConfigError
from components.forecasting.model import ForecastModelConfig
from components.language_modeling.model import LanguageModelConfig
from components.recurrent import RecurrentStackConfig, recurrent_stack
from components.text_classification.model import TextClassifierConfig


def test_a_stacked_bidirectional_lstm_has_dropout_between_its_layers():
    config = RecurrentStackConfig(cell="lstm", bidirectional=True, layers=3, units=5, dropout=0.3)
    stack = recurrent_stack(config, return_sequences=False)
    assert [layer.name for layer in stack] == [
        "bilstm_0",
        "dropout_1",
        "bilstm_1",
        "dropout_2",
        "bilstm_2",
    ]
    recurrent = [
        layer.forward_layer for layer in stack if isinstance(layer, keras.layers.Bidirectional)
    ]
    assert [layer.return_sequences for layer in recurrent] == [True, True, False]
    assert all(isinstance(layer, keras.layers.LSTM) and layer.units == 5 for layer in recurrent)
    hidden = keras.Input((7, 3))
    for layer in stack:
        hidden = layer(hidden)
    assert hidden.shape == (None, 10)  # 5 units each way


def test_return_sequences_reaches_the_last_layer_and_no_dropout_without_a_rate():
    stack = recurrent_stack(RecurrentStackConfig(cell="gru", layers=2), return_sequences=True)
    assert [type(layer) for layer in stack] == [keras.layers.GRU, keras.layers.GRU]
    assert all(layer.return_sequences for layer in stack)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"cell": "transformer"}, "model.cell='transformer' is not a known model type"),
        ({"layers": 0}, "model.layers=0 and model.units=64 must be positive"),
        (
            {"dropout": 1.0},
            r"model.dropout=1.0 and model.recurrent_dropout=0.0 must be in \[0, 1\)",
        ),
    ],
)
def test_bad_stack_settings_name_the_field(settings, message):
    with pytest.raises(ConfigError, match=message):
        RecurrentStackConfig(**settings)


@pytest.mark.parametrize("family", [TextClassifierConfig, LanguageModelConfig, ForecastModelConfig])
def test_every_family_checks_the_stack_settings_the_same_way(family):
    """The families extend the one config, so model.cell and friends mean the same everywhere."""
    assert issubclass(family, RecurrentStackConfig)
    with pytest.raises(ConfigError, match="model.cell='cnn' is not a known model type"):
        family(cell="cnn")


def test_a_language_model_refuses_to_read_both_ways():
    with pytest.raises(ConfigError, match="reads left to right only"):
        LanguageModelConfig(bidirectional=True)
