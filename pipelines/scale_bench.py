"""``make bench-scale``: what a second worker buys, for training and for tuning, on pinned cores.

Every variant runs in a scratch folder of its own (artifacts, MLflow store: nothing cached between
them), each worker process pinned to one CPU core with ``taskset``. Training runs the shipped
sentiment model (vocabulary, embedding, units; no n-gram branch, no dropout, shorter reviews) on
an IMDB slice with ``python -m pipelines.workers``, and counts only the steady epochs (the first,
which traces and warms up, is left out):

- weak scaling: the same batch per worker (global batch doubled, learning rate doubled), 2 workers
  against 1; the losses after the same number of examples;
- strong scaling: the same global batch, 2 workers against 1, with the Amdahl bound that one
  worker's fixed cost per step allows (``amdahl_bound``) and the final validation-loss gap;
- control: two independent single-worker runs at once, one per core: the machine's own ceiling;
- the per-step split of 2 workers into compute, all-reduce and waiting (``pipelines.scale_probe``);
- tuning: ``python -m pipelines run --tune --tune-workers N``, random search, the tune stage's
  wall time.

Writes BENCHMARKS.md's ``scale`` section.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipelines import scale_probe, scale_report
from pipelines.registry import resolve_config
from pipelines.spec import CONFIG_DIR


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much data and time the bench takes; the model is the shipped one at any size."""

    reviews: int = 4000
    """``data.max_reviews_per_split`` of the training runs."""
    sequence_length: int = 200
    """Tokens per review (the shipped 400 would double every run)."""
    epochs: int = 4
    """Per training run; the first is not counted. About 15 minutes in all on 2 quiet cores (an
    estimate from a smoke run and one worker's step time; the report states the real one)."""
    batch_per_worker: int = 128
    """Weak scaling's batch on each worker; strong scaling's global batch is twice it."""
    probe_steps: int = 10
    tuning_reviews: int = 6000
    tuning_trials: int = 8
    tuning_epochs: int = 3
    """Per trial: with 3 epochs on 6000 reviews a trial takes 20 s or more on one core, so the
    search measures trials rather than the chief's start-up and hand-out."""


SMOKE = Sizes(400, 20, 2, 16, 2, 400, 2, 1)
"""Seconds per run: checks that every path works; its numbers mean nothing."""


def training_settings(sizes: Sizes) -> list[str]:
    return [
        f"data.max_reviews_per_split={sizes.reviews}",
        f"preprocess.sequence_length={sizes.sequence_length}",
        "ngrams.enabled=false",  # only the recurrent model trains on the workers
        "model.dropout=0.0",  # no per-replica dropout noise: the losses can be compared
        f"train.epochs={sizes.epochs}",
        f"train.early_stopping_patience={sizes.epochs}",
    ]


def tuning_settings(sizes: Sizes) -> list[str]:
    return [
        f"data.max_reviews_per_split={sizes.tuning_reviews}",
        "tune.algorithm=random",  # the same trials whoever runs them
        f"tune.max_trials={sizes.tuning_trials}",
        f"tune.epochs_per_trial={sizes.tuning_epochs}",
        "train.epochs=1",
        "export.register=false",
        "blessing.baseline=warn",
        "blessing.thresholds=[]",
    ]


def training_command(
    root: Path,
    workers: int,
    settings: list[str],
    core: int | None,
    pipeline: str = "sentiment",
    config: str = "sentiment.yaml",
) -> list[str]:
    """A pinned training launch of ``pipeline`` (on ``core`` alone when given) into ``root``."""
    command = [sys.executable, "-m", "pipelines.workers", "--workers", str(workers), "--pin-cores"]
    command += [pipeline, "--config", str(CONFIG_DIR / config), "--until", "train"]
    command += ["--artifacts-root", str(root / "runs")]
    command += [item for setting in settings for item in ("--set", setting)]
    return command if core is None else ["taskset", "-c", str(core), *command]


def train(scratch: Path, name: str, workers: int, settings: list[str], copies: int = 1) -> list:
    """``copies`` independent pinned launches at once (one per core); each one's record."""
    print(f"training: {name}", flush=True)
    cores = sorted(os.sched_getaffinity(0))
    roots = [scratch / f"{name}-{copy}" for copy in range(copies)]
    launches = []
    for copy, root in enumerate(roots):
        root.mkdir(parents=True)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        core = cores[copy] if copies > 1 else None
        command = training_command(root, workers, settings, core)
        launches.append(subprocess.Popen(command, env=env))
    if any([launch.wait() for launch in launches]):
        raise RuntimeError(f"training run {name} failed; its output is above")
    return [training_record(root) for root in roots]


def training_record(root: Path) -> dict:
    """The chief's steady epochs: mean epoch time, examples an epoch, final losses."""
    [run_dir] = (root / "runs" / "sentiment").glob("2*")
    [epochs_csv] = run_dir.glob("train/**/epochs.csv")
    [layout] = run_dir.glob("preprocess/**/shards.json")
    epochs, shards = pd.read_csv(epochs_csv), json.loads(layout.read_text())
    return {
        "epoch_s": float(epochs["epoch_time_s"].iloc[1:].mean()),
        "examples": shards["examples_per_shard"] * len(shards["files"]),
        "examples_per_shard": shards["examples_per_shard"],
        "shards": len(shards["files"]),
        "loss": float(epochs["loss"].iloc[-1]),
        "val_loss": float(epochs["val_loss"].iloc[-1]),
    }


def tune(scratch: Path, workers: int, sizes: Sizes) -> dict:
    """The chief's tune stage wall time (first trial handed out to last score) and its best."""
    print(f"tuning: {workers} worker(s)", flush=True)
    root = scratch / f"tuning-{workers}"
    root.mkdir(parents=True)
    settings = [*tuning_settings(sizes), f"export.serving_dir={root / 'models'}"]
    command = [sys.executable, "-m", "pipelines", "run", "sentiment", "--tune"]
    command += ["--tune-workers", str(workers), "--pin-cores"]
    command += ["--config", str(CONFIG_DIR / "sentiment.smoke.yaml")]
    command += ["--artifacts-root", str(root / "runs")]
    command += [item for setting in settings for item in ("--set", setting)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    subprocess.run(command, env=env, check=True)
    [run_dir] = (root / "runs" / "sentiment").glob("2*")
    manifest = json.loads((run_dir / "tune" / "manifest.json").read_text())
    [result] = run_dir.glob("tune/**/hyperparameters.json")
    return {"tune_s": manifest["duration_s"], **json.loads(result.read_text())}


def measure(sizes: Sizes, scratch: Path) -> dict:
    """Every run of the bench, in the shape ``scale_report.report`` reads."""
    common = training_settings(sizes)
    learning_rate = resolve_config("sentiment", None, None, []).train.learning_rate
    batch = sizes.batch_per_worker

    def settings(global_batch: int, rate: float) -> list[str]:
        return [*common, f"train.batch_size={global_batch}", f"train.learning_rate={rate}"]

    runs = {
        "weak_1": train(scratch, "weak-1", 1, settings(batch, learning_rate))[0],
        "weak_2": train(scratch, "weak-2", 2, settings(2 * batch, 2 * learning_rate))[0],
        "strong_1": train(scratch, "strong-1", 1, settings(2 * batch, learning_rate))[0],
        "strong_2": train(scratch, "strong-2", 2, settings(2 * batch, learning_rate))[0],
        "control": train(scratch, "control", 1, settings(batch, learning_rate), copies=2),
    }
    print("per-step split: 2 probe workers", flush=True)
    model_settings = [f"preprocess.sequence_length={sizes.sequence_length}", "model.dropout=0.0"]
    probes = scale_probe.run_pair(2 * batch, sizes.probe_steps, model_settings, scratch)
    tuning = {workers: tune(scratch, workers, sizes) for workers in (1, 2)}
    return {"training": runs, "probes": probes, "tuning": tuning}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.scale_bench", description=__doc__)
    parser.add_argument(
        "--output", type=Path, help="the file to write the section into (default: BENCHMARKS.md)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes: checks every path, measures nothing; writes only to --output if given",
    )
    parser.add_argument("--record", type=Path, help="also write every run's numbers here (JSON)")
    parser.add_argument(
        "--tuning-only",
        action="store_true",
        help="only the tuning search with 1 and 2 workers: prints its wall times, writes nothing",
    )
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        parser.error("needs 2 CPU cores to pin 2 workers")
    sizes = SMOKE if args.smoke else Sizes()
    if args.tuning_only:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
            tuning = {workers: tune(Path(scratch), workers, sizes) for workers in (1, 2)}
        seconds = {workers: round(result["tune_s"], 1) for workers, result in tuning.items()}
        print(
            f"tuning wall time of {sizes.tuning_trials} trials: {seconds} s, "
            f"×{seconds[1] / seconds[2]:.2f} with 2 workers"
        )
        return 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        measured = measure(sizes, Path(scratch))
    if args.record:
        args.record.write_text(json.dumps(measured, indent=2))
    command = " ".join(["python -m pipelines.scale_bench", *(argv or sys.argv[1:])])
    parameters = scale_report.default_model_parameters()
    text = scale_report.report(measured, sizes, command, parameters, time.monotonic() - started)
    print(text)
    output = args.output or (None if args.smoke else Path("BENCHMARKS.md"))
    if output:
        scale_report.write(output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
