"""The multi-worker loop in one process (no TF_CONFIG: a cluster of one) against Keras ``fit``."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from components import shards, train
from components.errors import ConfigError
from components.train import TrainConfig
from tests.components.interruption import InterruptAtEpoch
from tests.conftest import REPOSITORY

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


def test_loop_resumes_after_an_interruption_as_if_never_stopped(train_shards, tmp_path):
    validation = train_shards.worker_batches(ONE_WORKER, BATCH, seed=99)
    data = train.TrainingData(None, validation, EXAMPLES, train_shards=train_shards)

    def fit(out, callbacks=()):
        return train.run(
            CONFIG, build, data, "binary_crossentropy", METRICS, tmp_path / out, callbacks
        )

    with pytest.raises(KeyboardInterrupt):
        fit("resumed", [InterruptAtEpoch(at=2)])
    resumed, uninterrupted = fit("resumed"), fit("uninterrupted")
    summary = json.loads((resumed.path / "training.json").read_text())
    assert summary["resumed_after_epoch"] == 2 and summary["epochs_run"] == EPOCHS
    # Epoch e reads the batches of seed + e, so a resumed epoch sees what it would have seen.
    for name in ("loss", "val_loss", "auc"):
        np.testing.assert_allclose(
            resumed.history()[name], uninterrupted.history()[name], rtol=1e-5, err_msg=name
        )


class FixedBatches:
    """The same batches every epoch, for one worker (``shards.WorkerBatches``)."""

    def __init__(self, batches: tf.data.Dataset):
        self.batches = batches

    def worker_batches(self, context, global_batch, seed):
        return self.batches

    def steps_per_epoch(self, global_batch):
        return EXAMPLES // global_batch


def next_token_model():
    """Logits of the next token at every step: a per-step loss, as a language model's."""
    return keras.Sequential(
        [
            keras.Input((4,), dtype="int64"),
            keras.layers.Embedding(6, 4),
            keras.layers.GRU(4, return_sequences=True),
            keras.layers.Dense(6),
        ]
    )


def forecast_model():
    """Four values at once: a loss per window, as a forecaster's."""
    return keras.Sequential(
        [keras.Input((4,), dtype="int64"), keras.layers.Embedding(6, 4), keras.layers.GRU(4)]
    )


@pytest.mark.parametrize("task", ["next tokens", "weighted forecasts"])
def test_the_loop_weighs_and_averages_losses_as_fit_does(tmp_path, task):
    """A sequence's loss is the mean over its steps; a window's loss counts by its sample weight
    (0 among them), as a forecaster's batches weigh them."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 6, size=(EXAMPLES, 5))
    if task == "next tokens":
        build, loss = next_token_model, keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        examples = (tokens[:, :-1], tokens[:, 1:])
    else:
        build, loss = forecast_model, keras.losses.MeanAbsoluteError()
        weights = rng.choice([0.0, 0.5, 2.0], EXAMPLES).astype("float32")
        examples = (tokens[:, :-1], tokens[:, 1:] / 6.0, weights)
    batches = tf.data.Dataset.from_tensor_slices(examples).batch(BATCH)
    data = train.TrainingData(None, batches, EXAMPLES, train_shards=FixedBatches(batches))
    trained = train.run(CONFIG, build, data, loss, [], tmp_path / "loop")

    keras.utils.set_random_seed(CONFIG.seed)
    model = train.compiled(CONFIG, build(), loss, [])
    fitted = model.fit(batches, validation_data=batches, epochs=EPOCHS, shuffle=False, verbose=0)
    history = fitted.history
    for name in ("loss", "val_loss"):
        np.testing.assert_allclose(
            trained.history()[name], history[name], rtol=1e-4, atol=1e-5, err_msg=name
        )


def test_multi_worker_needs_train_shards(tmp_path):
    batches = tf.data.Dataset.from_tensor_slices((np.zeros((4, 5), "int64"), np.zeros(4))).batch(2)
    data = train.TrainingData(batches, batches, 4)
    with pytest.raises(ConfigError, match="reads the train split in shards"):
        train.run(CONFIG, build, data, "binary_crossentropy", METRICS, tmp_path / "out")


# Two replicas in one process (two logical CPUs, set before TensorFlow starts, hence a process of
# its own): one epoch of the loop, then the collective ops in the train step it traced.
COUNT_COLLECTIVES = """
import collections, json, sys
from pathlib import Path
import keras, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
from components import custom_loop, shards
out = Path(sys.argv[1])
rng = np.random.default_rng(0)
features = rng.integers(0, 50, size=(64, 5))
shards.write(features, (features[:, 0] > 25).astype("int64"), 2, seed=1, out_dir=out / "shards")
with strategy.scope():
    model = keras.Sequential(
        [keras.Input((5,), dtype="int64"), keras.layers.Embedding(50, 4), keras.layers.GRU(4),
         keras.layers.Dense(1, "sigmoid")]
    )
    model.compile(optimizer="sgd", loss="binary_crossentropy")
settings = custom_loop.LoopSettings(1, 16, 0, 1, 0.5, None, out / "e", out / "b", out / "m")
loop = custom_loop._Loop(settings, model, "binary_crossentropy", ["accuracy"], strategy)
loop.train_epoch(shards.read(out / "shards"), 0)
[step] = loop.train_step._list_all_concrete_functions()
graph = step.graph
types = [op.type for op in graph.get_operations()]
types += [n.op for f in graph._functions.values() for n in f.definition.node_def]
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "collectives": collections.Counter(t for t in types if "Collective" in t or "AllReduce" in t),
}))
"""


def test_the_train_step_all_reduces_the_gradients_once(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", COUNT_COLLECTIVES, str(tmp_path)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    # One all-reduce of the (packed) gradients: one collective op on each replica's device. The
    # optimizer's own sum, which Keras adds in a replica context, would double it.
    assert found["replicas"] == 2
    assert found["collectives"] == {"CollectiveReduceV2": 2}, found
