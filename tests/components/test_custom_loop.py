"""The multi-worker loop in one process (no TF_CONFIG: a cluster of one) against Keras ``fit``."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from components import shards, train
from components.train import TrainConfig

EXAMPLES, BATCH, SHARDS, EPOCHS = 96, 16, 4, 3
CONFIG = TrainConfig(
    epochs=EPOCHS,
    batch_size=BATCH,
    optimizer="sgd",
    learning_rate=0.5,
    clipnorm=0.5,
    early_stopping_patience=EPOCHS,
    seed=3,
    distribution="multi_worker",
)
METRICS = ["accuracy", "auc"]
ONE_WORKER = tf.distribute.InputContext()


@pytest.fixture
def train_shards(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.integers(0, 50, size=(EXAMPLES + 3, 5))  # 3 left out: shards stay equal
    labels = (features[:, 0] > 25).astype("int64")
    shards.write(features, labels, SHARDS, seed=1, out_dir=tmp_path / "shards")
    return shards.read(tmp_path / "shards")


def build():
    return keras.Sequential(
        [
            keras.Input((5,), dtype="int64"),
            keras.layers.Embedding(50, 4),
            keras.layers.GRU(4),
            keras.layers.Dense(1, "sigmoid"),
        ]
    )


def test_multi_worker_loop_on_one_worker_matches_fit(train_shards, tmp_path):
    validation = train_shards.worker_batches(ONE_WORKER, BATCH, seed=99)
    data = train.TrainingData(None, validation, EXAMPLES, train_shards=train_shards)
    trained = train.run(CONFIG, build, data, "binary_crossentropy", METRICS, tmp_path / "loop")

    # fit, one epoch at a time on the batches the loop reads (reshuffled with seed + epoch).
    keras.utils.set_random_seed(CONFIG.seed)
    model = train.compiled(CONFIG, build(), "binary_crossentropy", METRICS)
    history, weights = {}, []
    for epoch in range(EPOCHS):
        batches = train_shards.worker_batches(ONE_WORKER, BATCH, seed=CONFIG.seed + epoch)
        logs = model.fit(batches, validation_data=validation, shuffle=False, verbose=0).history
        for name, values in logs.items():
            history.setdefault(name, []).extend(values)
        weights.append(model.get_weights())

    got = trained.history()
    for name in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"):
        np.testing.assert_allclose(got[name], history[name], rtol=1e-4, atol=1e-5, err_msg=name)
    best_epoch = json.loads((trained.path / "training.json").read_text())["best_epoch"]
    for saved, expected in zip(trained.load().get_weights(), weights[best_epoch - 1], strict=True):
        np.testing.assert_allclose(saved, expected, rtol=1e-4, atol=1e-5)
    assert not (trained.path / "backup").exists()
