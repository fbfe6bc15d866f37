"""The multi-worker loop in one process (no TF_CONFIG: a cluster of one) against Keras ``fit``."""

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from components import custom_loop, distribute, shards, train
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


class FixedBatches(shards.WorkerBatches):
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


LOOP_CONFIG = dataclasses.replace(CONFIG, optimizer="adam", learning_rate=0.02)
"""Adam: its slots too must come out the same."""


def loop_epochs(strategy, train_shards, steps_per_execution, epochs=EPOCHS):
    """``epochs`` epochs of the loop on a fresh seeded model: their losses, and the loop."""
    keras.utils.set_random_seed(CONFIG.seed)
    with strategy.scope():
        model = train.compiled(LOOP_CONFIG, build(), "binary_crossentropy", [], clip=False)
    settings = custom_loop.LoopSettings(
        epochs, BATCH, CONFIG.seed, epochs, 0.5, None, steps_per_execution, False, *[None] * 3
    )
    loop = custom_loop.TrainLoop(settings, model, "binary_crossentropy", ["accuracy"], strategy)
    batches, steps = loop.batches(train_shards, range(epochs)), train_shards.steps_per_epoch(BATCH)
    progress = keras.utils.Progbar(steps, verbose=0)
    return [loop.train_epoch(batches, steps, progress)["loss"] for _ in range(epochs)], loop


def test_several_steps_per_call_train_as_one_step_per_call(train_shards):
    strategy = distribute.strategy("multi_worker")  # no TF_CONFIG: a cluster of one
    # 6 steps an epoch: calls of 4 and then 2 steps, the second cut short at the epoch's end.
    assert train_shards.steps_per_epoch(BATCH) == 6
    one_losses, one = loop_epochs(strategy, train_shards, steps_per_execution=1)
    four_losses, four = loop_epochs(strategy, train_shards, steps_per_execution=4)
    np.testing.assert_allclose(four_losses, one_losses, rtol=1e-6)
    assert one_losses[-1] < one_losses[0]  # it learns: the match is not two untrained models
    for a, b in zip(four.model.get_weights(), one.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


class ProgressRecorder:
    """Stands in for the progress bar: the step counts it is moved to."""

    def __init__(self):
        self.steps = []

    def update(self, current, values=None, finalize=None):
        self.steps.append(current)


def test_the_progress_bar_moves_once_a_call_to_the_epochs_end(train_shards):
    _, loop = loop_epochs(distribute.strategy("multi_worker"), train_shards, 4, epochs=1)
    progress = ProgressRecorder()
    logs = loop.train_epoch(loop.batches(train_shards, range(1)), 6, progress)
    assert progress.steps == [4, 6] and np.isfinite(logs["loss"])


# One worker of a cluster (its TF_CONFIG in the environment, or none: a cluster of one), in a
# process of its own since the strategy must come first: the loop's epochs on the test's shards,
# then how often the train step was traced and the collective ops in what it traced.
WORKER = """
import collections, json, sys
from pathlib import Path
from components import distribute
strategy = distribute.strategy("multi_worker")
from components import shards
from tests.components.test_custom_loop import loop_epochs
losses, loop = loop_epochs(strategy, shards.read(Path(sys.argv[1])), steps_per_execution=4)
types = []
for step in loop.train_steps._list_all_concrete_functions():
    types += [op.type for op in step.graph.get_operations()]
    types += [n.op for f in step.graph._functions.values() for n in f.definition.node_def]
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "traces": loop.train_steps.experimental_get_tracing_count(),
    "collectives": collections.Counter(t for t in types if "Collective" in t or "AllReduce" in t),
    "losses": losses,
    "weights": [w.tolist() for w in loop.model.get_weights()],
}))
"""


@pytest.fixture(scope="module")
def cluster_runs(tmp_path_factory):
    """What a 2-worker cluster on loopback ports and a lone worker report, keyed by worker count."""
    out = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(0)
    features = rng.integers(0, 50, size=(EXAMPLES, 5))
    shards.write(features, (features[:, 0] > 25).astype("int64"), SHARDS, 1, out / "shards")
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(2)]
        for listener in sockets:  # all bound at once, so the ports differ
            listener.bind(("localhost", 0))
        addresses = [f"localhost:{listener.getsockname()[1]}" for listener in sockets]
    configs = [
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}} for i in (0, 1)
    ]
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.pop("TF_CONFIG", None)
    command = [sys.executable, "-c", WORKER, str(out / "shards")]
    workers = [
        subprocess.Popen(
            command,
            env={**environment, "TF_CONFIG": json.dumps(config)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for config in configs
    ]
    lone = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    reports = {1: [lone.stdout]}
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr[-3000:]
        reports.setdefault(2, []).append(stdout)
    assert lone.returncode == 0, lone.stderr[-3000:]
    return {
        n: [json.loads(text.strip().splitlines()[-1]) for text in texts]
        for n, texts in reports.items()
    }


def test_each_step_all_reduces_the_gradients_once_and_nothing_else(cluster_runs):
    # One all-reduce of the (packed) gradients. The optimizer's own sum, which Keras adds in a
    # replica context, would double it; a finite dataset adds a "has data" flag to every step,
    # and a loss reduced each step one more.
    for worker in cluster_runs[2]:
        assert worker["replicas"] == 2
        assert worker["collectives"] == {"CollectiveReduceV2": 1}, worker["collectives"]


def test_the_train_step_is_traced_once_for_every_epoch(cluster_runs):
    # Calls of 4 and 2 steps over 3 epochs of one iterator: the same traced function throughout.
    assert [worker["traces"] for worker in cluster_runs[1] + cluster_runs[2]] == [1, 1, 1]


def test_two_workers_end_with_the_losses_and_weights_of_one(cluster_runs):
    [one], two = cluster_runs[1], cluster_runs[2]
    assert one["replicas"] == 1 and one["losses"][-1] < one["losses"][0]
    for worker in two:  # only the order of float additions differs
        np.testing.assert_allclose(worker["losses"], one["losses"], rtol=1e-5)
        for a, b in zip(worker["weights"], one["weights"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
