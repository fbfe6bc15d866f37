"""The tune component on tiny sequences: Hyperband's trial budget, config validation, and overrides
a task cannot apply. A tuned pipeline run is tested in tests/pipelines/test_tuning.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from components import tune
from components.errors import ConfigError
from components.train import TrainingData
from components.tune import TuneConfig

CELLS = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}


def sequences() -> TrainingData:
    """Sign of the first step of a short sequence: learnable within an epoch or two."""
    steps = np.random.default_rng(0).normal(size=(64, 5, 1)).astype("float32")
    labels = (steps[:, 0, 0] > 0).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((steps, labels)).batch(16)
    return TrainingData(batches, batches, samples_per_epoch=64)


def tiny_model(overrides: dict) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((5, 1)),
            CELLS[overrides["model.cell"]](overrides["model.units"]),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    return model


def test_hyperband_keeps_to_the_trial_budget(tmp_path):
    # Unbounded, Hyperband's first bracket alone would run 3 one-epoch trials and continue one.
    config = TuneConfig(
        algorithm="hyperband",
        max_trials=2,
        epochs_per_trial=3,
        space={"model.cell": {"choices": ["gru", "lstm"]}, "model.units": {"min": 2, "max": 6}},
    )
    result = tune.run(config, tiny_model, sequences(), tmp_path / "tuned").load()
    assert len(result["trials"]) == 2
    assert result["best"]["model.cell"] in ("gru", "lstm")
    assert 2 <= result["best"]["model.units"] <= 6
    assert result["best_score"] == min(trial["score"] for trial in result["trials"])


def test_an_override_the_task_cannot_apply_fails_before_any_trial(tmp_path):
    def build(overrides: dict) -> keras.Model:
        raise ConfigError("model.bidirectional is not a field of this pipeline's model")

    config = TuneConfig(max_trials=2, space={"model.bidirectional": {"choices": [True, False]}})
    with pytest.raises(ConfigError, match="not a field"):
        tune.run(config, build, sequences(), tmp_path / "tuned")
    with pytest.raises(ConfigError, match="tune.space is empty"):
        tune.run(TuneConfig(), build, sequences(), tmp_path / "empty")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"algorithm": "grid"}, "choose one of: bayesian, hyperband, random"),
        ({"direction": "up"}, "choose one of: min, max"),
        ({"max_trials": 0}, "must be positive"),
        ({"space": {"model.pooling": {"choices": ["max"]}}}, "cannot search 'model.pooling'"),
        ({"space": {"model.units": {"choices": []}}}, "non-empty list of values of one type"),
        ({"space": {"model.units": {"choices": [8, "16"]}}}, "of one type"),
        ({"space": {"model.units": {"min": 8}}}, "give choices"),
        ({"space": {"model.units": {"min": 8, "max": 8}}}, "must be below max"),
        ({"space": {"model.dropout": {"min": 0, "max": 0.5, "sampling": "log"}}}, "min > 0"),
        ({"space": {"model.dropout": {"min": 0, "max": 0.5, "sampling": "exp"}}}, "linear, log"),
    ],
)
def test_invalid_settings_name_the_field_and_the_choices(settings, message):
    with pytest.raises(ConfigError, match=message):
        TuneConfig(**settings)
