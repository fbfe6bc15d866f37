"""Train (Trainer): fit a Keras model with early stopping on validation and keep the best epoch.

The task supplies a model builder and unbatched ``(features, label)`` datasets plus an optional
per-batch preprocessing function (e.g. the fitted vectorizer); this component seeds, shuffles,
batches, compiles (optimizer, learning rate, gradient clipping), trains with progress output, logs
every epoch to MLflow, and writes the best model, its history, a summary and learning curves.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402

from components import tracking  # noqa: E402
from components.artifacts import TrainedModel  # noqa: E402
from components.errors import ConfigError  # noqa: E402

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
    clipnorm: float | None = 1.0
    """Clip each gradient to this L2 norm (recurrent nets explode without it); null disables."""
    early_stopping_patience: int = 2
    """Epochs without validation-loss improvement before stopping."""
    reduce_lr_factor: float | None = None
    """Multiply the learning rate by this after an epoch without validation-loss improvement."""
    seed: int = 42
    """Seeds weight init, dropout and shuffling."""

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"train.optimizer={self.optimizer!r} is not valid; "
                f"choose one of: {', '.join(OPTIMIZERS)}"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("train.epochs and train.batch_size must be positive")
        if self.learning_rate <= 0 or (self.clipnorm is not None and self.clipnorm <= 0):
            raise ConfigError("train.learning_rate and train.clipnorm must be positive")
        if self.reduce_lr_factor is not None and not 0.0 < self.reduce_lr_factor < 1.0:
            raise ConfigError(f"train.reduce_lr_factor={self.reduce_lr_factor} must be in (0, 1)")


def run(
    config: TrainConfig,
    build_model: Callable[[], keras.Model],
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    loss: str | keras.losses.Loss,
    metrics: list,
    out_dir: Path,
    batch_preprocess: Callable | None = None,
) -> TrainedModel:
    keras.utils.set_random_seed(config.seed)
    train_examples = int(train_data.cardinality())
    train_batches = _batched(train_data, config, batch_preprocess, shuffle_seed=config.seed)
    validation_batches = _batched(validation_data, config, batch_preprocess)
    model = build_model()
    model.compile(
        optimizer=OPTIMIZERS[config.optimizer](
            learning_rate=config.learning_rate, clipnorm=config.clipnorm
        ),
        loss=loss,
        metrics=metrics,
    )
    summary_lines: list[str] = []
    model.summary(print_fn=lambda line, **_: summary_lines.append(line))
    tracking.log_text("\n".join(summary_lines), "model_summary.txt")
    out_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            out_dir / "model.keras", monitor="val_loss", save_best_only=True
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience),
        keras.callbacks.TerminateOnNaN(),
    ]
    if config.reduce_lr_factor:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(factor=config.reduce_lr_factor, patience=0, verbose=1)
        )
    if tracking.active():
        callbacks.append(tracking.keras_callback())
    started = time.perf_counter()
    history = model.fit(
        train_batches,
        validation_data=validation_batches,
        epochs=config.epochs,
        callbacks=callbacks,
        shuffle=False,  # already shuffled, reproducibly, by the input pipeline
        verbose=1
        if sys.stdout.isatty()
        else 2,  # progress bar in a terminal, a line per epoch in logs
    ).history
    wall_time = time.perf_counter() - started
    (out_dir / "history.json").write_text(json.dumps(history, indent=2))
    summary = _summary(model, history, wall_time, train_examples)
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2))
    tracking.log_metrics({key: value for key, value in summary.items() if key != "model"})
    _plot_learning_curves(history, out_dir / "learning_curves.png")
    return TrainedModel(out_dir)


def _batched(
    data: tf.data.Dataset,
    config: TrainConfig,
    preprocess: Callable | None,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    if shuffle_seed is not None:
        data = data.shuffle(
            int(data.cardinality()), seed=shuffle_seed, reshuffle_each_iteration=True
        )
    data = data.batch(config.batch_size)
    if preprocess is not None:
        data = data.map(lambda x, y: (preprocess(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def _summary(model: keras.Model, history: dict, wall_time: float, train_examples: int) -> dict:
    epochs_run = len(history["loss"])
    best_epoch = int(min(range(epochs_run), key=lambda i: history["val_loss"][i])) + 1
    samples = train_examples * epochs_run
    return {
        "model": model.name,
        "parameters": int(model.count_params()),
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "best_val_loss": float(history["val_loss"][best_epoch - 1]),
        "train_wall_time_s": round(wall_time, 1),
        "train_samples_per_s": round(samples / wall_time, 1),
    }


def _plot_learning_curves(history: dict[str, list[float]], path: Path) -> None:
    names = sorted(key for key in history if not key.startswith("val_") and f"val_{key}" in history)
    figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        epochs = range(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], marker="o", label="train")
        axis.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        axis.set(title=name, xlabel="epoch")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    tracking.log_figure(figure, "learning_curves.png")
    plt.close(figure)
