import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components import train
from components.errors import ConfigError
from components.text_classification.vectorize import load_vectorizer
from components.train import TrainConfig
from tests.components.interruption import InterruptAtEpoch


def test_trained_classifier_beats_chance_and_writes_its_artifacts(tiny_sentiment):
    trained = tiny_sentiment["train"]
    for name in ("model.keras", "history.json", "training.json", "learning_curves.png"):
        assert (trained.path / name).is_file(), name
    history = trained.history()
    assert max(history["val_accuracy"]) > 0.9
    summary = json.loads((trained.path / "training.json").read_text())
    assert summary["parameters"] > 0 and summary["train_reviews_per_s"] > 0
    assert summary["best_epoch"] == int(np.argmin(history["val_loss"])) + 1


def test_saved_model_is_the_best_epoch(tiny_sentiment):
    trained, examples = tiny_sentiment["train"], tiny_sentiment["ingest"]
    vectorizer = load_vectorizer(tiny_sentiment["preprocess"])
    validation = examples.load("validation")
    model = trained.load()
    loss = model.evaluate(
        vectorizer(tf.constant(validation["text"].to_numpy())),
        validation["label"].to_numpy(),
        verbose=0,
    )[0]
    assert loss == pytest.approx(min(trained.history()["val_loss"]), rel=1e-3)


def test_training_is_reproducible_with_a_seed(tmp_path):
    features = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    labels = (features[:, 0] > 0).astype("float32")

    def fit(out):
        batches = tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)
        data = train.TrainingData(batches, batches, samples_per_epoch=64)

        def build():
            return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1, "sigmoid")])

        config = TrainConfig(epochs=2, batch_size=8, seed=7)
        return train.run(
            config, build, data, "binary_crossentropy", ["accuracy"], tmp_path / out
        ).history()

    assert fit("a")["loss"] == fit("b")["loss"]


def test_mirrored_training_fits_as_without_a_strategy(tmp_path):
    """On a machine with one device MirroredStrategy has one replica: the same training."""
    features = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    labels = (features[:, 0] > 0).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)
    data = train.TrainingData(batches, batches, samples_per_epoch=64)

    def fit(distribution):
        def build():
            return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1, "sigmoid")])

        config = TrainConfig(epochs=2, batch_size=8, seed=7, distribution=distribution)
        return train.run(
            config, build, data, "binary_crossentropy", [], tmp_path / distribution
        ).history()

    np.testing.assert_allclose(fit("mirrored")["loss"], fit("none")["loss"], rtol=1e-5)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("optimizer", "adagrad", "choose one of: adam, adamw, rmsprop, sgd"),
        ("clipnorm", 0.0, "must be positive"),
        ("epochs", 0, "must be positive"),
        ("steps_per_execution", 0, "train.steps_per_execution must be positive"),
        ("reduce_lr_factor", 1.5, "must be in \\(0, 1\\)"),
        ("distribution", "horovod", "choose one of: none, mirrored, multi_worker"),
        ("weight_decay", -0.1, "must not be negative"),
    ],
)
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_weight_decay_reaches_the_optimizer_and_shrinks_unused_weights(optimizer):
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    config = TrainConfig(optimizer=optimizer, weight_decay=0.5, learning_rate=0.1, clipnorm=None)
    train.compiled(config, model, "mse", [])
    assert model.optimizer.weight_decay == 0.5
    before = model.get_weights()[0].copy()
    # A zero input gives a zero gradient: only the decay moves the weights, by lr * decay.
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=1, batch_size=4, verbose=0)
    np.testing.assert_allclose(model.get_weights()[0], before * (1 - 0.1 * 0.5), rtol=1e-5)


def test_training_resumes_after_an_interruption_as_if_never_stopped(tmp_path):
    features = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    labels = (features[:, 0] > 0).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)
    data = train.TrainingData(batches, batches, samples_per_epoch=64)
    config = TrainConfig(epochs=5, batch_size=8, seed=7, early_stopping_patience=10)

    def fit(out, callbacks=()):
        def build():
            return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1, "sigmoid")])

        return train.run(config, build, data, "binary_crossentropy", [], tmp_path / out, callbacks)

    with pytest.raises(KeyboardInterrupt):
        fit("resumed", [InterruptAtEpoch(at=2)])
    assert len(pd.read_csv(tmp_path / "resumed" / train.EPOCH_LOG)) == 2
    resumed = fit("resumed")
    uninterrupted = fit("uninterrupted")
    summary = json.loads((resumed.path / "training.json").read_text())
    assert summary["resumed_after_epoch"] == 2 and summary["epochs_run"] == 5
    np.testing.assert_allclose(
        resumed.history()["loss"], uninterrupted.history()["loss"], rtol=1e-5
    )
    assert not (resumed.path / train.BACKUP_DIR).exists()  # removed once training finished


def _fit_logistic(out_dir, config, flip_validation=False, callbacks=()) -> train.TrainedModel:
    """A one-unit logistic regression on 64 points; validated on the same points, or on them with
    their labels flipped (then validation loss rises every epoch, so epoch 1 stays the best)."""
    features = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    labels = (features[:, 0] > 0).astype("float32")
    batches = tf.data.Dataset.from_tensor_slices((features, labels)).batch(8)
    flipped = tf.data.Dataset.from_tensor_slices((features, 1.0 - labels)).batch(8)
    data = train.TrainingData(batches, flipped if flip_validation else batches, 64)

    def build():
        return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1, "sigmoid")])

    return train.run(config, build, data, "binary_crossentropy", [], out_dir, callbacks)


def _interrupted_then_resumed(out_dir, config, at: int, flip_validation=False):
    with pytest.raises(KeyboardInterrupt):
        _fit_logistic(out_dir, config, flip_validation, [InterruptAtEpoch(at=at)])
    assert len(pd.read_csv(out_dir / train.EPOCH_LOG)) == at
    return _fit_logistic(out_dir, config, flip_validation)


def _assert_same_weights(first: train.TrainedModel, second: train.TrainedModel) -> None:
    for mine, theirs in zip(first.load().get_weights(), second.load().get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("at", [1, 2])
def test_early_stopping_counts_the_epochs_of_the_interrupted_attempt(tmp_path, at):
    # Validation loss rises from the first epoch on, so patience 2 stops after epoch 3 whether or
    # not training was interrupted: the resumed attempt must remember epoch 1 as the best and the
    # epochs it has waited since.
    config = TrainConfig(epochs=8, batch_size=8, seed=7, early_stopping_patience=2)
    uninterrupted = _fit_logistic(tmp_path / "uninterrupted", config, flip_validation=True)
    val_loss = uninterrupted.history()["val_loss"]
    assert len(val_loss) == 3 and val_loss[0] < val_loss[1] < val_loss[2]

    resumed = _interrupted_then_resumed(tmp_path / "resumed", config, at, flip_validation=True)
    summary = json.loads((resumed.path / "training.json").read_text())
    assert summary["resumed_after_epoch"] == at
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == 1
    np.testing.assert_allclose(resumed.history()["val_loss"], val_loss, rtol=1e-6)
    _assert_same_weights(resumed, uninterrupted)


def test_a_worse_epoch_after_resuming_does_not_replace_the_best_checkpoint(tmp_path):
    # The best epoch (1) is in the interrupted attempt; epochs 3-4 after resuming are worse and
    # must not overwrite model.keras, though the resumed attempt itself has not seen a better one.
    config = TrainConfig(epochs=4, batch_size=8, seed=7, early_stopping_patience=10)
    resumed = _interrupted_then_resumed(tmp_path / "resumed", config, at=2, flip_validation=True)
    val_loss = resumed.history()["val_loss"]
    assert len(val_loss) == 4 and int(np.argmin(val_loss)) == 0
    features = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    flipped = 1.0 - (features[:, 0] > 0).astype("float32")
    saved_loss = resumed.load().evaluate(features, flipped, batch_size=8, verbose=0)
    assert saved_loss == pytest.approx(val_loss[0], rel=1e-5)
    assert saved_loss < min(val_loss[2:])
    _assert_same_weights(resumed, _fit_logistic(tmp_path / "whole", config, flip_validation=True))


def test_a_resumed_run_saves_the_same_model_as_an_uninterrupted_one(tmp_path):
    config = TrainConfig(epochs=5, batch_size=8, seed=7, early_stopping_patience=10)
    resumed = _interrupted_then_resumed(tmp_path / "resumed", config, at=2)
    uninterrupted = _fit_logistic(tmp_path / "uninterrupted", config)
    assert resumed.summary()["best_epoch"] == 5  # saved after resuming, from restored weights
    _assert_same_weights(resumed, uninterrupted)


def test_each_epoch_logs_the_unclipped_global_gradient_norm(tmp_path):
    features = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    targets = 1000.0 * features[:, :1]  # a large error: gradients far above the clip norm
    batches = tf.data.Dataset.from_tensor_slices((features, targets)).batch(16)
    data = train.TrainingData(batches, batches, samples_per_epoch=64)

    def build():
        return tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])

    config = TrainConfig(epochs=2, batch_size=16, clipnorm=1.0)
    train.run(config, build, data, "mse", [], tmp_path / "out")

    epochs = pd.read_csv(tmp_path / "out" / "epochs.csv")
    assert (epochs["grad_norm_max"] >= epochs["grad_norm_mean"]).all()
    # Recorded before clipping: far above the 1.0 each gradient was clipped to.
    assert (epochs["grad_norm_mean"] > 100).all()
    saved = tf.keras.models.load_model(tmp_path / "out" / "model.keras")
    assert type(saved.optimizer).__name__ == "Adam"  # the wrapper never reaches the saved model
