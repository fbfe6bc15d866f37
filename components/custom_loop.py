"""The Trainer's loop for ``train.distribution: multi_worker``, where Keras ``fit`` cannot run.

Keras 3's ``fit`` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so this loop
keeps fit's contract by hand: the same early stopping on validation loss, best-epoch model,
``epochs.csv`` rows and per-epoch callbacks (MLflow), and resumption after a kill from a
``tf.train.CheckpointManager`` backup. Every worker runs it in step. The training loss is averaged
over the global batch and the metrics are summed over the workers, so all of them log the same
numbers; the chief's checkpoint and its decision to stop are sent to the others, so they can
never disagree on where to start or when to end. Each worker writes into its own ``out_dir``: the
pipeline gives the workers other than the chief a throwaway one.

A run reads one endless dataset through one distributed iterator (``steps_per_epoch`` batches an
epoch), calls one traced function for several steps at a time, and keeps the loss sums on the
device: per step the workers exchange the summed gradients and nothing else, and the host reads
the epoch's numbers once it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from components import distribute
from components.shards import WorkerBatches

log = logging.getLogger(__name__)

ACCURACY = {
    "binary_crossentropy": keras.metrics.BinaryAccuracy,
    "categorical_crossentropy": keras.metrics.CategoricalAccuracy,
    "sparse_categorical_crossentropy": keras.metrics.SparseCategoricalAccuracy,
}


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """What the loop takes from the train config, and where it writes."""

    epochs: int
    batch_size: int
    seed: int
    patience: int
    clipnorm: float | None
    global_clipnorm: float | None
    steps_per_execution: int
    progress_bar: bool
    epoch_log: Path
    backup_dir: Path
    best_model: Path


def fit(
    settings: LoopSettings,
    model: keras.Model,
    shards: WorkerBatches,
    validation: tf.data.Dataset,
    loss: str | keras.losses.Loss,
    metrics: list[str],
    strategy: tf.distribute.Strategy,
    earlier_val_losses: list[float],
    callbacks: list[keras.callbacks.Callback],
) -> None:
    """Train ``model`` (compiled under ``strategy.scope()`` with an optimizer that does not
    clip: the loop clips the summed gradients itself), continuing from its backup if the chief
    has one."""
    loop = TrainLoop(settings, model, loss, metrics, strategy)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch)
    backups = tf.train.CheckpointManager(checkpoint, settings.backup_dir, max_to_keep=2)
    if earlier_val_losses and backups.latest_checkpoint:
        checkpoint.restore(backups.latest_checkpoint).assert_existing_objects_matched()
    loop.take_chiefs_state(epoch)
    best, wait = min(earlier_val_losses, default=math.inf), 0
    if earlier_val_losses:  # epochs since the best one, as early stopping counted them
        wait = len(earlier_val_losses) - 1 - int(np.argmin(earlier_val_losses))
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    callback_list.on_train_begin()
    epochs = range(int(epoch.numpy()), settings.epochs)
    batches = loop.batches(shards, epochs) if epochs else None  # None: all run before a kill
    steps = shards.steps_per_epoch(settings.batch_size)
    for index in epochs:
        callback_list.on_epoch_begin(index)
        started = time.perf_counter()
        progress = loop.progress_bar(steps)
        logs = loop.train_epoch(batches, steps, progress)
        callback_list.on_test_begin()  # as in fit: a stateful model starts validation afresh
        logs.update(loop.validate(validation))
        callback_list.on_test_end(logs)
        logs["epoch_time_s"] = time.perf_counter() - started
        progress.update(progress.target, list(logs.items()), finalize=True)
        log.info("epoch %d/%d: %s", index + 1, settings.epochs, _rounded(logs))
        _append_row(settings.epoch_log, index, logs)  # before the backup, as in fit
        epoch.assign(index + 1)
        backups.save()
        wait += 1
        if logs["val_loss"] < best:
            best, wait = logs["val_loss"], 0
            model.save(settings.best_model)
        callback_list.on_epoch_end(index, logs)
        stop = (wait >= settings.patience and index > 0) or not math.isfinite(logs["loss"])
        if loop.chief_says(stop):
            break
    callback_list.on_train_end()
    shutil.rmtree(settings.backup_dir)  # as BackupAndRestore does: the run is complete


class TrainLoop:
    """The compiled train and validation steps, and the metrics they update.

    The train step runs ``steps_per_execution`` steps a call and keeps the epoch's loss and row
    sums in variables on this worker's device: nothing is read back, and nothing but the
    gradients is all-reduced, until the epoch ends.
    """

    def __init__(self, settings, model, loss, metric_names, strategy):
        self.settings, self.model, self.strategy = settings, model, strategy
        if isinstance(loss, str):  # "binary_crossentropy" -> BinaryCrossentropy()
            loss = keras.losses.get("".join(word.title() for word in loss.split("_")))
        self.loss = loss  # its ``call``: the loss of each example, unreduced
        self.train_metrics = [_metric(name, loss.name) for name in metric_names]
        self.val_metrics = [_metric(name, loss.name) for name in metric_names]
        # This worker's part of the epoch: its replicas' losses times the global batch, and rows.
        self.loss_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.rows = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        if not model.optimizer.built:
            # Its slots made now, under the strategy, rather than in the step's first trace:
            # that would trace it twice and broadcast their initial values from inside it.
            with strategy.scope():
                model.optimizer.build(model.trainable_variables)
        self.train_steps = tf.function(self._train_steps)
        self.val_step = tf.function(self._val_step)

    def batches(self, shards: WorkerBatches, epochs: range) -> Iterator:
        """The one distributed iterator of a run: the batches of ``epochs``, one after another."""
        distributed = self.strategy.distribute_datasets_from_function(
            lambda context: shards.epochs_of_batches(
                context, self.settings.batch_size, self.settings.seed, epochs
            )
        )
        return iter(distributed)

    def progress_bar(self, steps: int) -> keras.utils.Progbar:
        """Keras's bar on the chief in a terminal (as ``fit`` shows it); silent elsewhere."""
        shown = self.settings.progress_bar and self.strategy.extended.should_checkpoint
        return keras.utils.Progbar(steps, verbose=1 if shown else 0)

    def take_chiefs_state(self, epoch: tf.Variable) -> None:
        """Weights, optimizer slots and epoch counter as the chief has them (restored or new)."""
        if distribute.worker_count(self.strategy) == 1:
            return
        state = [*self.model.weights, *self.model.optimizer.variables]
        *values, chiefs_epoch = distribute.from_chief(
            self.strategy,
            [tf.cast(v.value, tf.float64) for v in state] + [tf.cast(epoch, tf.float64)],
        )
        for variable, value in zip(state, values, strict=True):
            variable.assign(tf.cast(value, variable.dtype))
        epoch.assign(tf.cast(chiefs_epoch, tf.int64))

    def chief_says(self, stop: bool) -> bool:
        if distribute.worker_count(self.strategy) == 1:
            return stop
        return bool(distribute.from_chief(self.strategy, [tf.constant(float(stop))])[0] > 0)

    def train_epoch(
        self, batches: Iterator, steps: int, progress: keras.utils.Progbar
    ) -> dict[str, float]:
        """``steps`` steps on ``batches``; the loss and metrics over every worker's examples."""
        per_call = self.settings.steps_per_execution
        for done in range(0, steps, per_call):
            self.run_steps(batches, min(per_call, steps - done))
            progress.update(min(done + per_call, steps))
        (loss_sum, rows), results = self._results(
            self.train_metrics, "", [self.loss_sum.value(), self.rows.value()]
        )
        self.loss_sum.assign(0.0)
        self.rows.assign(0.0)
        return {"loss": float(loss_sum / rows), **results}

    def run_steps(self, batches: Iterator, count: int) -> None:
        """``count`` train steps in one call of the traced function."""
        # Set here, not in the step: the replicas trace the step in threads of their own.
        with _gradients_already_summed(self.model.optimizer):
            self.train_steps(batches, tf.constant(count))  # a tensor: one trace for any count

    def validate(self, validation: tf.data.Dataset) -> dict[str, float]:
        """Each worker scores its share of the validation batches; the sums are then added up."""
        own = validation.shard(
            distribute.worker_count(self.strategy), distribute.worker_index(self.strategy)
        )
        loss_sum, rows = tf.constant(0.0, tf.float64), tf.constant(0.0, tf.float64)
        for batch in own:  # (features, labels) or (features, labels, sample weights)
            batch_loss, batch_rows = self.val_step(*batch)
            loss_sum, rows = loss_sum + batch_loss, rows + batch_rows
        loss_sum, rows = distribute.sum_over_workers(self.strategy, [loss_sum, rows])
        regularization = float(sum(self.model.losses)) if self.model.losses else 0.0
        _, results = self._results(self.val_metrics, "val_")
        return {"val_loss": float(loss_sum / rows) + regularization, **results}

    def _train_steps(self, iterator, steps):
        for _ in tf.range(steps):
            self._train_step(*next(iterator))

    def _train_step(self, features, labels, sample_weight=None):
        def replica_step(features, labels, sample_weight):
            # Every replica's batch is equally large (equal shards), so this is the global batch.
            rows = tf.shape(labels)[0] * self.strategy.num_replicas_in_sync
            with tf.GradientTape() as tape:
                predictions = self.model(features, training=True)
                loss = tf.nn.compute_average_loss(
                    self._per_example(labels, predictions, sample_weight), global_batch_size=rows
                )
                if self.model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            variables = self.model.trainable_variables
            # Dense: an embedding's sparse gradient would be all-gathered rather than summed.
            gradients = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
            # Clipped once the replicas' gradients are summed, as one worker would clip them.
            self.model.optimizer.apply(self._clipped(self.sum_gradients(gradients)), variables)
            # This replica's share of the mean, times the global batch: its part of the loss sum.
            return tf.cast(loss, tf.float64) * tf.cast(rows, tf.float64), predictions

        loss_part, predictions = self.strategy.run(
            replica_step, args=(features, labels, sample_weight)
        )
        local = self.strategy.experimental_local_results
        self.loss_sum.assign_add(tf.add_n(local(loss_part)))
        for replica in zip(local(labels), local(predictions), strict=True):
            self.rows.assign_add(tf.cast(tf.shape(replica[0])[0], tf.float64))
            for metric in self.train_metrics:
                metric.update_state(*replica)

    def sum_gradients(self, gradients: list[tf.Tensor]) -> list[tf.Tensor]:
        """The step's one collective: the replicas' gradients summed (``make bench-scale``
        replaces it with the identity to time the compute alone)."""
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, gradients)

    def _val_step(self, features, labels, sample_weight=None):
        predictions = self.model(features, training=False)
        for metric in self.val_metrics:
            metric.update_state(labels, predictions)
        per_example = tf.cast(self._per_example(labels, predictions, sample_weight), tf.float64)
        return tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float64)

    def _per_example(self, labels, predictions, sample_weight):
        """The loss of each example, weighted as fit weighs it; a sequence's (a language model's
        window) is the mean over its steps, as fit's loss averages over every element."""
        loss = self.loss.call(labels, predictions)
        if loss.shape.rank > 1:
            loss = tf.reduce_mean(loss, axis=list(range(1, loss.shape.rank)))
        return loss if sample_weight is None else loss * tf.cast(sample_weight, loss.dtype)

    def _clipped(self, gradients: list[tf.Tensor]) -> list[tf.Tensor]:
        if self.settings.clipnorm is not None:
            return [tf.clip_by_norm(g, self.settings.clipnorm) for g in gradients]
        if self.settings.global_clipnorm is not None:
            return tf.clip_by_global_norm(gradients, self.settings.global_clipnorm)[0]
        return gradients

    def _results(
        self, metrics: list[keras.metrics.Metric], prefix: str, sums: list[tf.Tensor] = ()
    ) -> tuple[list[tf.Tensor], dict[str, float]]:
        """``sums`` and each metric over every worker's examples (metric states add up), in one
        all-reduce; the metrics are then reset."""
        state = [v for metric in metrics for v in metric.variables]
        summed = distribute.sum_over_workers(
            self.strategy, [*sums, *(tf.cast(v.value, tf.float64) for v in state)]
        )
        for variable, value in zip(state, summed[len(sums) :], strict=True):
            variable.assign(tf.cast(value, variable.dtype))
        results = {prefix + metric.name: float(metric.result()) for metric in metrics}
        for metric in metrics:
            metric.reset_state()
        return summed[: len(sums)], results


@contextlib.contextmanager
def _gradients_already_summed(optimizer: keras.optimizers.Optimizer) -> Iterator[None]:
    """While the train step runs, ``optimizer.apply`` takes the gradients as they are.

    Keras 3's TensorFlow optimizer sums the gradients over the replicas itself when ``apply`` runs
    in a replica context (``TFOptimizer._all_reduce_sum_gradients``, keras==3.15.1 as
    requirements.lock pins it), before it could clip the sum; the loop clips the sum, so it does
    the one all-reduce and this turns the optimizer's off. A test counts the collectives in the
    traced step: a Keras that renames the hook fails it rather than summing twice unseen.
    """
    optimizer._all_reduce_sum_gradients = list
    try:
        yield
    finally:
        del optimizer._all_reduce_sum_gradients


def _metric(name: str, loss_name: str) -> keras.metrics.Metric:
    """A fresh metric for a name ``compile`` accepts; "accuracy" is the one the loss implies."""
    if name == "accuracy":
        return ACCURACY[loss_name](name=name)
    found = keras.metrics.get(name)
    if isinstance(found, keras.metrics.Metric):
        return type(found)(name=name)
    return keras.metrics.MeanMetricWrapper(found, name=name)


def _rounded(logs: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in logs.items())


def _append_row(path: Path, epoch: int, logs: dict[str, float]) -> None:
    """One ``epochs.csv`` row, in the columns Keras's CSVLogger writes."""
    row = pd.DataFrame([{"epoch": epoch, **dict(sorted(logs.items()))}])
    row.to_csv(path, mode="a", header=not path.is_file(), index=False)
