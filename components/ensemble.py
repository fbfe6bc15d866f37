"""Ensemble: one model whose output is the mean of independently trained members' outputs.

Members that differ in architecture or seed make partly independent errors, so their mean beats
the typical member (the M4 and M5 forecasting winners averaged many networks). The average is a
plain Keras model with the members as layers: evaluation, export and serving take it unchanged,
and the serving graph runs every member on the same raw inputs. The task trains the members (one
train run each, in its own directory) and hands them here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import keras

from components import tracking
from components.artifacts import TrainedModel
from components.errors import ConfigError


@dataclasses.dataclass
class EnsembleConfig:
    members: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Each member: config overrides applied to the pipeline's config before training it, e.g.
    ``{model.architecture: direct}`` or ``{train.seed: 7}``. Empty: a single model."""
    seeds: int = 1
    """Train each member (with no members: the one model) this many times, with train.seed,
    train.seed + 1, ... (a member's own train.seed, if it sets one, counts up instead); all are
    averaged. A seed ensemble: the same network, errors that differ only by initialization and
    shuffle order. 1: once."""

    def __post_init__(self):
        if self.seeds < 1:
            raise ConfigError(f"ensemble.seeds={self.seeds} must be >= 1")
        if len(self.members) == 1 and self.seeds == 1:
            raise ConfigError(
                "ensemble.members lists one member; list two or more, set ensemble.seeds >= 2 to "
                "train it with several seeds, or list none for a single model"
            )
        for i, member in enumerate(self.members):
            if member in self.members[:i]:
                raise ConfigError(
                    f"ensemble.members[{i}] {member} repeats an earlier member, which would train "
                    "the same model twice; give it another train.seed"
                )

    def member_overrides(self, seed: int) -> list[dict[str, Any]]:
        """Every model to train, as config overrides: each member once per seed (the seed counts
        up from ``seed``, the pipeline's train.seed); empty for a single model."""
        if self.seeds == 1:
            return list(self.members)
        overrides = [
            {**member, "train.seed": member.get("train.seed", seed) + offset}
            for member in self.members or [{}]
            for offset in range(self.seeds)
        ]
        for i, member in enumerate(overrides):
            if member in overrides[:i]:
                raise ConfigError(
                    f"ensemble.members with ensemble.seeds={self.seeds} train {member} twice: "
                    "members that differ only in train.seed need seeds further apart"
                )
        return overrides


def run(members: list[TrainedModel], name: str, out_dir: Path) -> TrainedModel:
    """The mean of ``members`` as one model named ``name``, saved with their training summaries;
    the totals (parameters, wall time, throughput) are logged to the active MLflow run.

    Raises:
        ConfigError: the members do not take the same inputs or give outputs of the same shape.
    """
    models = [member.load() for member in members]
    _require_same_interface(models)
    inputs = keras.tree.map_structure(
        lambda tensor: keras.Input(tensor.shape[1:], dtype=tensor.dtype, name=tensor.name),
        models[0].input,
    )
    # Rewrapped under distinct names: members of one architecture share a model name.
    outputs = [
        keras.Model(model.input, model.output, name=f"member_{i}_{model.name}")(inputs)
        for i, model in enumerate(models)
    ]
    ensemble = keras.Model(inputs, keras.layers.Average(name="mean")(outputs), name=name)
    out_dir.mkdir(parents=True, exist_ok=True)
    ensemble.save(out_dir / "model.keras")
    summaries = [member.summary() for member in members]
    histories = {
        f"member_{i}_{metric}": values
        for i, member in enumerate(members)
        for metric, values in member.history().items()
    }
    (out_dir / "history.json").write_text(json.dumps(histories, indent=2))
    summary = _summary(name, summaries)
    (out_dir / "training.json").write_text(json.dumps(summary, indent=2))
    tracking.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
    return TrainedModel(out_dir)


def _require_same_interface(models: list[keras.Model]) -> None:
    first = _interface(models[0])
    for model in models[1:]:
        if _interface(model) != first:
            raise ConfigError(
                f"ensemble member {model.name} takes and gives {_interface(model)}, but "
                f"{models[0].name} {first}; averaging needs the same inputs and output shape"
            )


def _interface(model: keras.Model) -> dict[str, Any]:
    inputs = sorted((t.name, tuple(t.shape), t.dtype) for t in model.inputs)
    return {"inputs": inputs, "output": tuple(model.output.shape)}


def _summary(name: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the members (trained one after another), and each member's own summary."""
    seconds = sum(member["train_wall_time_s"] for member in members)
    rate = next(key for key in members[0] if key.startswith("train_") and key.endswith("_per_s"))
    samples = sum(member[rate] * member["train_wall_time_s"] for member in members)
    return {
        "model": name,
        "parameters": sum(member["parameters"] for member in members),
        "epochs_run": "+".join(str(member["epochs_run"]) for member in members),
        "best_epoch": "+".join(str(member["best_epoch"]) for member in members),
        "train_wall_time_s": round(seconds, 1),
        rate: round(samples / seconds, 1),
        "members": members,
    }
