"""The Trainer's loop for ``train.distribution: multi_worker``, where Keras ``fit`` cannot run.

Keras 3's ``fit`` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so this loop
keeps fit's contract by hand: the same early stopping on validation loss, best-epoch model,
``epochs.csv`` rows and per-epoch callbacks (MLflow), and resumption after a kill from a
``tf.train.CheckpointManager`` backup. Every worker runs it in step. The training loss is averaged
over the global batch and the metrics are summed over the workers, so all of them log the same
numbers; the chief's checkpoint and its decision to stop are sent to the others, so they can
never disagree on where to start or when to end. Each worker writes into its own ``out_dir``: the
pipeline gives the workers other than the chief a throwaway one.
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
    loop = _Loop(settings, model, loss, metrics, strategy)
    # The slots made now, alike on every worker: made in the first step, a restored optimizer's
    # make the chief trace that step again, and its collectives then match no other worker's.
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
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
    for index in range(int(epoch.numpy()), settings.epochs):
        callback_list.on_epoch_begin(index)
        started = time.perf_counter()
        logs = loop.train_epoch(shards, index)
        callback_list.on_test_begin()  # as in fit: a stateful model starts validation afresh
        logs |= loop.validate(validation)
        callback_list.on_test_end(logs)
        logs["epoch_time_s"] = time.perf_counter() - started
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


class _Loop:
    """The compiled train and validation steps, and the metrics they update."""

    def __init__(self, settings, model, loss, metric_names, strategy):
        self.settings, self.model, self.strategy = settings, model, strategy
        if isinstance(loss, str):  # "binary_crossentropy" -> BinaryCrossentropy()
            loss = keras.losses.get("".join(word.title() for word in loss.split("_")))
        self.loss = loss  # its ``call``: the loss of each example, unreduced
        self.train_metrics = [_metric(name, loss.name) for name in metric_names]
        self.val_metrics = [_metric(name, loss.name) for name in metric_names]
        self.train_step = tf.function(self._train_step)
        self.val_step = tf.function(self._val_step)

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

    def train_epoch(self, shards: WorkerBatches, epoch: int) -> dict[str, float]:
        batch_size = self.settings.batch_size
        batches = self.strategy.distribute_datasets_from_function(
            lambda context: shards.worker_batches(context, batch_size, self.settings.seed + epoch)
        )
        iterator, loss_total, rows_total = iter(batches), 0.0, 0
        # Set here, not in the step: the replicas trace the step in threads of their own.
        with _gradients_already_summed(self.model.optimizer):
            for _ in range(shards.steps_per_epoch(batch_size)):
                loss, rows = self.train_step(iterator)
                loss_total += float(loss) * int(rows)
                rows_total += int(rows)
        return {"loss": loss_total / rows_total, **self._results(self.train_metrics, "")}

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
        results = self._results(self.val_metrics, "val_")
        return {"val_loss": float(loss_sum / rows) + regularization, **results}

    def _train_step(self, iterator):
        def replica_step(features, labels, sample_weight=None):
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
            summed = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, gradients
            )
            # Clipped once the replicas' gradients are summed, as one worker would clip them.
            self.model.optimizer.apply(self._clipped(summed), variables)
            return loss, rows, labels, predictions

        loss, rows, labels, predictions = self.strategy.run(replica_step, args=next(iterator))
        local = self.strategy.experimental_local_results
        for replica in zip(local(labels), local(predictions), strict=True):
            for metric in self.train_metrics:
                metric.update_state(*replica)
        return (
            self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
            local(rows)[0],
        )

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

    def _results(self, metrics: list[keras.metrics.Metric], prefix: str) -> dict[str, float]:
        """Each metric over every worker's examples (metric states add up), then reset."""
        state = [v for metric in metrics for v in metric.variables]
        summed = distribute.sum_over_workers(
            self.strategy, [tf.cast(v.value, tf.float64) for v in state]
        )
        for variable, value in zip(state, summed, strict=True):
            variable.assign(tf.cast(value, variable.dtype))
        results = {prefix + metric.name: float(metric.result()) for metric in metrics}
        for metric in metrics:
            metric.reset_state()
        return results


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
