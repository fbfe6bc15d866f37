"""Tune (Tuner): search a model space with KerasTuner on the validation split, before train.

The task hands over what the trainer gets (its ``TrainingSetup``: batched data, loss, metrics,
callbacks, a model builder) and the train and model configs; every trial changes those by
overrides (``{"model.units": 32}``) and is compiled exactly as the train stage compiles. This
component runs Bayesian
optimization, Hyperband or random search over ``space`` within a trial budget, logs every trial
as a nested MLflow run, and writes hyperparameters.json, whose ``best`` overrides the train stage
applies to its config.

Distributed search is KerasTuner's own: with ``KERASTUNER_ORACLE_IP``/``_PORT`` set, the process
whose ``KERASTUNER_TUNER_ID`` is ``chief`` serves the oracle (it hands out every trial once and
keeps their scores) and writes the result; each other process (``tuner0``, ``tuner1``, ...) runs
the trials it is handed, each a nested MLflow run of its own, and records which ones
(``pipelines/tune_workers.py`` starts them; ``make tune WORKERS=2``). The chief serves the oracle
with ``components/tune_chief.py``, which returns as soon as the last worker has reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import keras_tuner

from components import tracking
from components.artifacts import Hyperparameters
from components.errors import ConfigError, DataError, require_one_of
from components.train import TrainingData, TrainingSetup, compiled

TUNERS = {
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
    "random": keras_tuner.RandomSearch,
}
# What a trial may change: the model and its learning rate, never what the data pipeline was
# built with (batch size, windows, vocabulary: fixed for the search) nor the loss (every trial
# must be scored on the same objective).
SEARCHABLE = (
    "model.cell",
    "model.bidirectional",
    "model.layers",
    "model.units",
    "model.embedding_dim",
    "model.dropout",
    "model.architecture",
    "train.learning_rate",
)
SAMPLINGS = ("linear", "log")


@dataclasses.dataclass
class TuneConfig:
    algorithm: str = "bayesian"
    """bayesian (Gaussian-process optimization) | hyperband (successive halving) | random."""
    max_trials: int = 10
    """Trial budget: how many models are built and trained (Hyperband stops there too)."""
    epochs_per_trial: int = 3
    """Epochs each trial trains; for Hyperband, the longest bracket (its ``max_epochs``)."""
    objective: str = "val_loss"
    """A validation metric every fit logs: val_loss, or a task metric such as val_auc."""
    direction: str = "min"
    """min | max: whether a lower or a higher objective is better."""
    seed: int = 42
    """Seeds the search and every trial's weights, so trials differ only in their values."""
    space: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Config key -> ``{choices: [...]}`` or ``{min, max}`` with optional ``step`` or
    ``sampling: log`` (integer bounds search integers). Each pipeline's YAML sets its own; keys
    are among ``SEARCHABLE``."""

    def __post_init__(self):
        require_one_of("tune.algorithm", self.algorithm, tuple(TUNERS))
        require_one_of("tune.direction", self.direction, ("min", "max"))
        if self.max_trials < 1 or self.epochs_per_trial < 1:
            raise ConfigError("tune.max_trials and tune.epochs_per_trial must be positive")
        for key, spec in self.space.items():
            if key not in SEARCHABLE:
                raise ConfigError(
                    f"tune.space cannot search {key!r}; choose among: {', '.join(SEARCHABLE)}"
                )
            _check_spec(f"tune.space[{key}]", spec)


def _check_spec(field: str, spec: dict[str, Any]) -> None:
    if set(spec) == {"choices"}:
        choices = spec["choices"]
        if not choices or len({type(value) for value in choices}) != 1:
            raise ConfigError(f"{field}.choices must be a non-empty list of values of one type")
        return
    if not {"min", "max"} <= set(spec) <= {"min", "max", "step", "sampling"}:
        raise ConfigError(
            f"{field}={spec} is not valid; give choices: [...], or min and max with optional "
            "step or sampling"
        )
    if not spec["min"] < spec["max"]:
        raise ConfigError(f"{field}: min={spec['min']} must be below max={spec['max']}")
    require_one_of(f"{field}.sampling", spec.get("sampling", "linear"), SAMPLINGS)
    if spec.get("sampling") == "log" and spec["min"] <= 0:
        raise ConfigError(f"{field}: sampling: log needs min > 0, got {spec['min']}")


def search(
    config: TuneConfig,
    train_config: Any,
    model_config: Any,
    setup: TrainingSetup,
    out_dir: Path,
) -> Hyperparameters:
    """Search ``config.space`` over ``train.*`` and ``model.*`` values; each trial's model is built
    by ``setup`` and compiled as ``train.fit`` compiles it."""

    def build_and_compile(overrides: dict[str, Any]) -> keras.Model:
        sections = {"train": train_config, "model": model_config}
        trial = _with_overrides(sections, overrides)
        return compiled(
            trial["train"], setup.build_model(trial["model"]), setup.loss, setup.metrics
        )

    return run(config, build_and_compile, setup.data, out_dir, setup.callbacks)


def _with_overrides(sections: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``{"model": ..., "train": ...}`` with ``{"model.units": 32, ...}`` applied; the config
    classes validate the new values again."""
    changes: dict[str, dict[str, Any]] = {name: {} for name in sections}
    for key, value in overrides.items():
        section, field = key.split(".", 1)
        changes[section][field] = value
    return {name: dataclasses.replace(sections[name], **changes[name]) for name in sections}


def run(
    config: TuneConfig,
    build_and_compile: Callable[[dict[str, Any]], keras.Model],
    data: TrainingData,
    out_dir: Path,
    callbacks: list[keras.callbacks.Callback] = (),
) -> Hyperparameters:
    """Search ``config.space``; ``build_and_compile`` gets one trial's overrides (key -> value)."""
    if not config.space:
        raise ConfigError("tune.space is empty; give the config keys to search in the YAML")
    # Making the tuner builds one model from each key's first value, so overrides the task cannot
    # apply fail right here with their ConfigError, not as a series of failed trials.
    tuner = _tuner(config, build_and_compile, out_dir)
    tuner.search(
        data.train,
        validation_data=data.validation,
        epochs=config.epochs_per_trial,
        callbacks=[*callbacks, keras.callbacks.TerminateOnNaN()],
        shuffle=False,  # the task's input pipeline decides the order, as in training
        verbose=1 if sys.stdout.isatty() else 2,
    )
    result = _worker_result(tuner) if _is_worker() else _result(config, tuner.oracle)
    (out_dir / "hyperparameters.json").write_text(json.dumps(result, indent=2))
    tracking.log_dict(result, "hyperparameters.json")
    if "best" in result:
        tracking.log_params({f"best.{key}": value for key, value in result["best"].items()})
        tracking.log_metrics({f"tuned_{config.objective}": result["best_score"]})
    return Hyperparameters(out_dir)


def _is_chief() -> bool:
    """The chief of a distributed search: it serves the oracle and keeps the result."""
    return "KERASTUNER_ORACLE_IP" in os.environ and not _is_worker()


def _is_worker() -> bool:
    """A worker of a distributed search: it runs trials; the chief's oracle keeps the result."""
    distributed = "KERASTUNER_ORACLE_IP" in os.environ
    return distributed and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"


def _worker_result(tuner) -> dict[str, Any]:
    """What one worker did; the best values are the chief's to say (its oracle saw every trial,
    and may have stopped serving by now)."""
    return {"tuner_id": tuner.tuner_id, "trials_run": tuner.trials_run}


class _TrackedTrials:
    """Mixed into a KerasTuner tuner: each trial is a nested MLflow run with its values as
    params and its epochs and score as metrics."""

    trials_run: list[str]
    """The ids of the trials this process ran (a worker runs only some of a distributed search)."""

    def run_trial(self, trial, *args, **kwargs):
        self.trials_run.append(trial.trial_id)
        with tracking.trial_run(f"trial_{trial.trial_id}", trial.hyperparameters.values):
            histories = super().run_trial(trial, *args, **kwargs)
            objective = self.oracle.objective
            for history in histories:
                for index, epoch in enumerate(history.epoch):
                    epoch_logs = {name: values[index] for name, values in history.history.items()}
                    tracking.log_metrics(epoch_logs, step=epoch)
                if objective.name in history.history:  # else KerasTuner reports what is missing
                    best = min if objective.direction == "min" else max
                    tracking.log_metrics({"score": best(history.history[objective.name])})
        return histories

    def search(self, *fit_args, **fit_kwargs):
        """As KerasTuner searches, except that a chief serves its oracle with ``tune_chief``,
        which returns when the last worker reports, not at KerasTuner's next 20 s look."""
        if not _is_chief():
            return super().search(*fit_args, **fit_kwargs)
        # Imported here, as KerasTuner imports its own chief: only a chief needs gRPC's protos.
        from components import tune_chief

        if "verbose" in fit_kwargs:
            self.oracle.verbose = fit_kwargs["verbose"]
        self.save()
        tune_chief.serve(self.oracle)

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        """Skipped: trials go to MLflow, not TensorBoard, and KerasTuner would import tensorboard
        for every trial on the TensorFlow backend (TF 2.21 no longer installs it)."""


def _tuner(config: TuneConfig, build_and_compile, out_dir: Path) -> keras_tuner.Tuner:
    def build(hp: keras_tuner.HyperParameters) -> keras.Model:
        overrides = {key: _declare(hp, key, spec) for key, spec in config.space.items()}
        keras.utils.set_random_seed(config.seed)
        return build_and_compile(overrides)

    base = TUNERS[config.algorithm]
    budget = (
        {"max_epochs": config.epochs_per_trial}
        if config.algorithm == "hyperband"
        else {"max_trials": config.max_trials}
    )
    tuner = type(f"Tracked{base.__name__}", (_TrackedTrials, base), {})(
        hypermodel=build,
        objective=keras_tuner.Objective(config.objective, config.direction),
        seed=config.seed,
        directory=out_dir,
        project_name="search",
        overwrite=True,
        **budget,
    )
    # Hyperband's constructor takes no trial budget, but its oracle stops at one like any other.
    tuner.oracle.max_trials = config.max_trials
    tuner.trials_run = []
    return tuner


def _declare(hp: keras_tuner.HyperParameters, key: str, spec: dict[str, Any]) -> Any:
    """Register ``key`` with KerasTuner and return this trial's value for it."""
    if "choices" in spec:
        return hp.Choice(key, spec["choices"])
    integral = all(isinstance(spec.get(name, 1), int) for name in ("min", "max", "step"))
    declare = hp.Int if integral else hp.Float
    sampling = spec.get("sampling", "linear")
    return declare(key, spec["min"], spec["max"], step=spec.get("step"), sampling=sampling)


def _result(config: TuneConfig, oracle) -> dict[str, Any]:
    def overrides(trial) -> dict[str, Any]:
        return {key: trial.hyperparameters.values[key] for key in config.space}

    best = oracle.get_best_trials(1)
    if not best or best[0].status != keras_tuner.engine.trial.TrialStatus.COMPLETED:
        raise DataError(
            f"no tuning trial finished with a {config.objective} score; see the trial errors above"
        )
    return {
        "algorithm": config.algorithm,
        "objective": config.objective,
        "direction": config.direction,
        "best": overrides(best[0]),
        "best_score": best[0].score,
        "trials": [
            {"trial": trial.trial_id, "overrides": overrides(trial), "score": trial.score}
            for trial in oracle.trials.values()
        ],
    }
