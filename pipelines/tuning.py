"""Glue between a pipeline's tune stage and the stages that build its model.

The tune stage searches with the same training setup the train stage fits (data, loss, metrics,
compilation); train, and every later stage that rebuilds the model from the config, then applies
the best values found (``--tune`` puts the stage in a run; without it nothing changes).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import keras

from components import tracking, train, tune
from components.artifacts import Hyperparameters, TrainedModel
from pipelines.config import with_overrides

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT")


def search(config: Any, setup: train.TrainingSetup, out_dir: Path) -> Hyperparameters:
    """Run ``config.tune``'s search, every trial compiled exactly as the train stage compiles."""

    def build_and_compile(overrides: dict[str, Any]) -> keras.Model:
        trial = with_overrides(config, overrides)
        return train.compiled(trial.train, setup.build_model(trial), setup.loss, setup.metrics)

    return tune.run(config.tune, build_and_compile, setup.data, out_dir, setup.callbacks)


def fit(
    config: Any,
    setup: train.TrainingSetup,
    out_dir: Path,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainedModel:
    """Train ``setup``'s model for ``config``, compiled as the search's trials are; ``callbacks``
    are added to the setup's own (ones the tuner must not copy into every trial)."""
    return train.run(
        config.train,
        build_model=lambda: setup.build_model(config),
        data=setup.data,
        loss=setup.loss,
        metrics=setup.metrics,
        out_dir=out_dir,
        callbacks=[*setup.callbacks, *callbacks],
    )


def tuned(config: ConfigT, inputs: dict) -> ConfigT:
    """``config`` with the best values of the run's tune stage, if it had one (logged as params
    of the calling stage's MLflow run, so a comparison of runs sees the values actually used)."""
    if "tune" not in inputs:
        return config
    overrides = inputs["tune"].overrides()
    log.info("applying the tuned hyperparameters %s", overrides)
    tracking.log_params(overrides)
    return with_overrides(config, overrides)
