"""Train (Trainer): fit a Keras model with early stopping on validation and keep the best epoch.

The task supplies a model builder and batched datasets (it knows how its data must be batched:
shuffled reviews, or contiguous windows for a stateful language model); this component seeds,
compiles (optimizer, learning rate, gradient clipping), trains with progress output, logs every
epoch to MLflow, and writes the best model, its history, a summary and learning curves.

Training resumes where a killed attempt stopped: the weights, optimizer and epoch counter are backed
up after every epoch (Keras ``BackupAndRestore``) and each epoch's logs are appended to
``epochs.csv``, from which the best-model checkpoint and early stopping take up their state again.
The runner keeps a resumable stage's unfinished directory, so rerunning the pipeline continues.

``distribution`` spreads each batch over devices (``mirrored``: one machine, Keras ``fit``) or
over the workers of a cluster (``multi_worker``: ``components/custom_loop.py``, since ``fit``
fails there), where each worker reads only its own part of every global batch (the task's
``TrainingData.train_shards``: TFRecord files, a language model's streams, forecasting windows).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pandas as pd
import tensorflow as tf
from matplotlib.figure import Figure

from components import custom_loop, distribute, tracking
from components.artifacts import TrainedModel
from components.errors import ConfigError, require_one_of
from components.gradient_norms import GradientNorms
from components.shards import WorkerBatches

log = logging.getLogger(__name__)

BACKUP_DIR = "backup"
EPOCH_LOG = "epochs.csv"

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 6
    """Upper bound; early stopping usually ends sooner."""
    batch_size: int = 64
    optimizer: str = "adam"
    """adam | adamw | rmsprop | sgd."""
    learning_rate: float = 1e-3
    weight_decay: float | None = None
    """Decoupled weight decay (Loshchilov & Hutter), per step times the learning rate; null:
    none, or AdamW's own 0.004 with ``optimizer: adamw``."""
    clipnorm: float | None = 1.0
    """Clip each gradient to this L2 norm (recurrent nets explode without it); null disables."""
    global_clipnorm: float | None = None
    """Clip the global L2 norm of all gradients together (language models: 5); null disables."""
    early_stopping_patience: int = 2
    """Epochs without validation-loss improvement before stopping."""
    reduce_lr_factor: float | None = None
    """Multiply the learning rate by this after an epoch without validation-loss improvement."""
    lr_decay: float | None = None
    """Multiply the learning rate by this every epoch after ``lr_decay_after_epoch``."""
    lr_decay_after_epoch: int = 0
    seed: int = 42
    """Seeds weight init, dropout and shuffling."""
    distribution: str = "none"
    """none | mirrored (this machine's devices) | multi_worker (the workers in TF_CONFIG; see
    ``make train-workers``). ``batch_size`` stays the global batch, split over the replicas."""
    steps_per_execution: int = 8
    """multi_worker: train steps per call of the compiled loop. The host reads nothing back
    within a call, so a few steps hide its per-call dispatch; the progress bar moves once a
    call. A value above the epoch's steps means one call an epoch."""

    def __post_init__(self):
        require_one_of("train.optimizer", self.optimizer, tuple(OPTIMIZERS))
        require_one_of("train.distribution", self.distribution, distribute.DISTRIBUTIONS)
        if self.epochs < 1 or self.batch_size < 1 or self.steps_per_execution < 1:
            raise ConfigError(
                "train.epochs, train.batch_size and train.steps_per_execution must be positive"
            )
        clips = [c for c in (self.clipnorm, self.global_clipnorm) if c is not None]
        if self.learning_rate <= 0 or any(c <= 0 for c in clips):
            raise ConfigError("train.learning_rate, clipnorm and global_clipnorm must be positive")
        if self.clipnorm is not None and self.global_clipnorm is not None:
            raise ConfigError("set train.clipnorm or train.global_clipnorm, not both")
        if self.lr_decay is not None and not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"train.lr_decay={self.lr_decay} must be in (0, 1]")
        if self.reduce_lr_factor is not None and not 0.0 < self.reduce_lr_factor < 1.0:
            raise ConfigError(f"train.reduce_lr_factor={self.reduce_lr_factor} must be in (0, 1)")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay={self.weight_decay} must not be negative")


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """Batched ``(inputs, targets)`` datasets and the size of one epoch, for throughput."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    samples_per_epoch: int
    sample_unit: str = "samples"
    """What a sample is (reviews, tokens): names the ``train_<unit>_per_s`` metric."""
    train_shards: WorkerBatches | None = None
    """The train split as each worker reads its part, for ``multi_worker``; None where the task
    has none."""


@dataclasses.dataclass(frozen=True)
class TrainingSetup:
    """A task's side of training, shared by the train and tune stages: the data, loss and metrics
    stay fixed while ``build_model`` takes a model config (a tuning trial's, or the pipeline's)."""

    build_model: Callable[[Any], keras.Model]
    data: TrainingData
    loss: str | keras.losses.Loss
    metrics: list
    """Metric names, not instances: every model compiled from one setup needs its own state."""
    callbacks: list[keras.callbacks.Callback] = dataclasses.field(default_factory=list)
    """The task's own callbacks; the tuner deep-copies them for every trial."""


def compiled(
    config: TrainConfig,
    model: keras.Model,
    loss: str | keras.losses.Loss,
    metrics: list,
    clip: bool = True,
) -> keras.Model:
    """``model`` compiled with the configured optimizer, learning rate and (with ``clip``)
    gradient clipping."""
    decay = {} if config.weight_decay is None else {"weight_decay": config.weight_decay}
    model.compile(
        optimizer=OPTIMIZERS[config.optimizer](
            learning_rate=config.learning_rate,
            clipnorm=config.clipnorm if clip else None,
            global_clipnorm=config.global_clipnorm if clip else None,
            **decay,
        ),
        loss=loss,
        metrics=metrics,
    )
    return model


def fit(
    config: TrainConfig,
    model_config: Any,
    setup: TrainingSetup,
    out_dir: Path,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainedModel:
    """Train ``setup``'s model built from ``model_config``, compiled as tuning trials are;
    ``callbacks`` are added to the setup's own (ones the tuner must not copy into every trial)."""
    return run(
        config,
        build_model=lambda: setup.build_model(model_config),
        data=setup.data,
        loss=setup.loss,
        metrics=setup.metrics,
        out_dir=out_dir,
        callbacks=[*setup.callbacks, *callbacks],
    )


def run(
    config: TrainConfig,
    build_model: Callable[[], keras.Model],
    data: TrainingData,
    loss: str | keras.losses.Loss,
    metrics: list,
    out_dir: Path,
    callbacks: list[keras.callbacks.Callback] = (),
) -> TrainedModel:
    """Seed (before ``build_model``, so weights are reproducible), compile, fit, keep the best."""
    strategy = distribute.strategy(config.distribution)
    multi_worker = config.distribution == "multi_worker"
    if multi_worker and data.train_shards is None:
        raise ConfigError(
            "train.distribution=multi_worker reads the train split in shards, one part per "
            "worker, and this task has none (too few training examples to fill them, or a task "
            "that does not make them)"
        )
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():  # the model's variables are mirrored on every replica
        model = compiled(config, build_model(), loss, metrics, clip=not multi_worker)
    summary_lines: list[str] = []
    model.summary(print_fn=lambda line, **_: summary_lines.append(line))
    tracking.log_text("\n".join(summary_lines), "model_summary.txt")
    earlier = _earlier_epochs(out_dir)
    if multi_worker:
        _fit_on_workers(config, model, data, loss, metrics, strategy, out_dir, earlier, callbacks)
    else:
        model.fit(
            data.train,
            validation_data=data.validation,
            epochs=config.epochs,
            callbacks=[*callbacks, *_standard_callbacks(config, out_dir, earlier)],
            shuffle=False,  # the task's input pipeline decides the order, reproducibly
            verbose=1 if sys.stdout.isatty() else 2,  # a progress bar in a terminal, a line in logs
        )
    history = _logged_epochs(out_dir / EPOCH_LOG)
    wall_time = sum(history.pop("epoch_time_s"))
    (out_dir / "history.json").write_text(json.dumps(history, indent=2))
    summary = _summary(model, history, wall_time, data)
    summary["resumed_after_epoch"] = len(earlier.get("loss", []))
    summary["replicas_in_sync"] = strategy.num_replicas_in_sync  # over every worker of a cluster
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2))
    tracking.log_metrics({key: value for key, value in summary.items() if key != "model"})
    _plot_learning_curves(history, out_dir / "learning_curves.png")
    return TrainedModel(out_dir)


def _fit_on_workers(config, model, data, loss, metrics, strategy, out_dir, earlier, callbacks):
    """The custom loop, with fit's callbacks that it does not do itself (learning-rate
    schedules, MLflow)."""
    settings = custom_loop.LoopSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        patience=config.early_stopping_patience,
        clipnorm=config.clipnorm,
        global_clipnorm=config.global_clipnorm,
        steps_per_execution=config.steps_per_execution,
        progress_bar=sys.stdout.isatty(),  # as fit's verbose=1; logs get the epoch's line
        epoch_log=out_dir / EPOCH_LOG,
        backup_dir=out_dir / BACKUP_DIR,
        best_model=out_dir / "model.keras",
    )
    custom_loop.fit(
        settings,
        model,
        data.train_shards,
        data.validation,
        loss,
        metrics,
        strategy,
        earlier.get("val_loss", []),
        [*callbacks, *_schedule_callbacks(config)],
    )


def _earlier_epochs(out_dir: Path) -> dict[str, list[float]]:
    """The epochs an interrupted attempt logged in ``out_dir``; {} when starting afresh.

    Without a backup (the attempt died before its first epoch ended, or after training had
    finished and deleted it) there is nothing to continue from, so its files are cleared.
    """
    if (out_dir / BACKUP_DIR).is_dir() and (out_dir / EPOCH_LOG).is_file():
        earlier = _logged_epochs(out_dir / EPOCH_LOG)
        log.info("resuming training after epoch %d of an interrupted attempt", len(earlier["loss"]))
        return earlier
    (out_dir / EPOCH_LOG).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {}


def _logged_epochs(path: Path) -> dict[str, list[float]]:
    """``epochs.csv`` as a Keras history; an epoch logged twice (killed before its backup was
    written, then redone) keeps its last row."""
    table = pd.read_csv(path).drop_duplicates("epoch", keep="last").sort_values("epoch")
    return {name: table[name].tolist() for name in table.columns if name != "epoch"}


class _EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_time_s`` to the logs, so wall time adds up across resumed attempts."""

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_time_s"] = time.perf_counter() - self._started


class _ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping that also counts the epochs of an interrupted attempt."""

    def __init__(self, patience: int, earlier_val_losses: list[float]):
        super().__init__(patience=patience)
        self.earlier_val_losses = earlier_val_losses

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.earlier_val_losses:
            best = int(np.argmin(self.earlier_val_losses))
            self.best, self.best_epoch = self.earlier_val_losses[best], best
            self.wait = len(self.earlier_val_losses) - 1 - best


def _standard_callbacks(
    config: TrainConfig, out_dir: Path, earlier: dict[str, list[float]]
) -> list[keras.callbacks.Callback]:
    earlier_val_losses = earlier.get("val_loss", [])
    callbacks = [
        _EpochTimer(),
        GradientNorms(),  # before the CSV logger and MLflow, which write the epoch's logs
        # Before the backup: a kill between the two then repeats an epoch rather than losing one.
        keras.callbacks.CSVLogger(out_dir / EPOCH_LOG, append=True),
        # Restores weights, optimizer state and the epoch counter; double_checkpoint keeps the
        # previous backup in case the process dies while writing the new one.
        keras.callbacks.BackupAndRestore(out_dir / BACKUP_DIR, double_checkpoint=True),
        keras.callbacks.ModelCheckpoint(
            out_dir / "model.keras",
            save_best_only=True,
            initial_value_threshold=min(earlier_val_losses, default=None),
        ),
        _ResumableEarlyStopping(config.early_stopping_patience, earlier_val_losses),
        keras.callbacks.TerminateOnNaN(),
    ]
    return callbacks + _schedule_callbacks(config)


def _schedule_callbacks(config: TrainConfig) -> list[keras.callbacks.Callback]:
    """Learning-rate schedules and per-epoch MLflow metrics, which both training loops use."""
    callbacks = []
    if config.reduce_lr_factor:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(factor=config.reduce_lr_factor, patience=0, verbose=1)
        )
    if config.lr_decay:
        callbacks.append(keras.callbacks.LearningRateScheduler(_decayed(config)))
    if tracking.active():
        callbacks.append(_EpochMetrics(log_every_epoch=True))
    return callbacks


class _EpochMetrics(mlflow.keras.MlflowCallback):
    """MLflow's Keras callback without its second copy of the validation metrics: it logs
    ``validation_*`` after every evaluation beside the ``val_*`` each epoch already logs.
    (Here, not in components/tracking.py, which stays free of Keras: processes that only track,
    such as reports, need not import TensorFlow.)"""

    def on_test_end(self, logs=None):
        pass


def _decayed(config: TrainConfig):
    """Epoch (0-based) -> learning rate: constant, then multiplied by ``lr_decay`` each epoch."""

    def schedule(epoch: int, learning_rate: float) -> float:
        return config.learning_rate * config.lr_decay ** max(
            0, epoch + 1 - config.lr_decay_after_epoch
        )

    return schedule


def _summary(model: keras.Model, history: dict, wall_time: float, data: TrainingData) -> dict:
    epochs_run = len(history["loss"])
    best_epoch = int(min(range(epochs_run), key=lambda i: history["val_loss"][i])) + 1
    return {
        "model": model.name,
        "parameters": int(model.count_params()),
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "best_val_loss": float(history["val_loss"][best_epoch - 1]),
        "train_wall_time_s": round(wall_time, 1),
        **({"grad_norm_max": max(history["grad_norm_max"])} if "grad_norm_max" in history else {}),
        f"train_{data.sample_unit}_per_s": round(
            data.samples_per_epoch * epochs_run / wall_time, 1
        ),
    }


def _plot_learning_curves(history: dict[str, list[float]], path: Path) -> None:
    names = sorted(key for key in history if not key.startswith("val_") and f"val_{key}" in history)
    # A bare Figure (no pyplot) needs no GUI backend and no global state.
    figure = Figure(figsize=(5 * len(names), 3.5))
    axes = figure.subplots(1, len(names), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        epochs = range(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], marker="o", label="train")
        axis.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        axis.set(title=name, xlabel="epoch")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    tracking.log_figure(figure, "learning_curves.png")
