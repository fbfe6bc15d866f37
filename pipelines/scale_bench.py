"""``make bench-scale``: what a second worker buys, for training and for tuning, on pinned cores.

Each variant runs the sentiment pipeline on an IMDB slice in a scratch folder of its own
(artifacts, MLflow store, serving folder: nothing cached between variants), each worker process
pinned to one CPU core with ``taskset``, so 2 workers on 2 cores against 1 worker on 1 core is
real parallelism rather than two processes sharing the machine:

- training: ``python -m pipelines.workers --workers N`` (``train.distribution=multi_worker``),
  same model, global batch and epochs; the train stage's examples/s and final validation loss;
- tuning: ``python -m pipelines run --tune --tune-workers N`` with random search over 8 trials;
  the chief's tune stage wall time (from the first trial handed out to the last score).

Writes BENCHMARKS.md's ``scale`` section with the gradient all-reduce size of the default model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from components.reporting import machine_description, markdown_table, write_section
from pipelines.spec import CONFIG_DIR

SECTION = "scale"
TARGET_RATIO = 1.7
SMOKE = CONFIG_DIR / "sentiment.smoke.yaml"
TRAINING = [
    "data.max_reviews_per_split=6000",
    "preprocess.vocabulary_size=10000",
    "preprocess.sequence_length=200",
    "model.units=64",
    "model.embedding_dim=64",
    "model.dropout=0.0",  # no per-replica dropout noise: the two losses should agree
    "train.epochs=3",
    "train.early_stopping_patience=10",
]
TUNING = [
    "data.max_reviews_per_split=3000",
    "tune.algorithm=random",  # the same 8 trials whoever runs them
    "tune.max_trials=8",
    "tune.epochs_per_trial=1",
    "train.epochs=1",
]
DEFAULT_MODEL_REVIEWS_PER_S = 172
"""Training speed of the shipped BiGRU on this 2-core machine (BENCHMARKS.md, sentiment, bigru)."""
QUIET = ["export.register=false", "blessing.baseline=warn", "blessing.thresholds=[]"]


def run_variant(kind: str, workers: int, scratch: Path, batch_size: int = 64) -> dict:
    """One pinned run in its own scratch folder; what its train or tune stage recorded."""
    root = scratch / f"{kind}-{workers}"
    training = [*TRAINING, f"train.batch_size={batch_size}"]
    settings = [*(training if kind == "training" else TUNING), *QUIET]
    settings.append(f"export.serving_dir={root / 'models'}")
    overrides = [item for setting in settings for item in ("--set", setting)]
    common = ["sentiment", "--config", str(SMOKE), "--artifacts-root", str(root / "runs")]
    if kind == "training":
        command = ["-m", "pipelines.workers", "--workers", str(workers), "--pin-cores"]
    else:
        command = ["-m", "pipelines", "run", "--tune", "--tune-workers", str(workers)]
        command.append("--pin-cores")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    root.mkdir(parents=True)
    print(f"{kind}, {workers} worker(s) on {workers} core(s)", flush=True)
    subprocess.run([sys.executable, *command, *common, *overrides], env=env, check=True)
    [run_dir] = (root / "runs" / "sentiment").glob("2*")
    if kind == "training":
        [record] = run_dir.glob("train/**/training.json")
        epochs = list(run_dir.glob("train/**/epochs.csv"))
        final = _last_val_loss(epochs[0]) if epochs else float("nan")
        return {**json.loads(record.read_text()), "final_val_loss": final}
    manifest = json.loads((run_dir / "tune" / "manifest.json").read_text())
    [result] = run_dir.glob("tune/**/hyperparameters.json")
    tuned = json.loads(result.read_text())
    return {"tune_s": manifest["duration_s"], "trials": len(tuned["trials"]), **tuned}


def _last_val_loss(epochs_csv: Path) -> float:
    import pandas as pd

    return float(pd.read_csv(epochs_csv)["val_loss"].iloc[-1])


def default_model_parameters() -> int:
    """Trainable parameters of the shipped sentiment model: what each step all-reduces."""
    from components.text_classification.model import build_text_classifier
    from pipelines.registry import resolve_config

    config = resolve_config("sentiment", None, None, [])
    model = build_text_classifier(
        config.model, config.preprocess.vocabulary_size, config.preprocess.sequence_length
    )
    return int(sum(int(weight.numpy().size) for weight in model.trainable_weights))


def report(
    training: dict[int, dict], tuning: dict[int, dict], parameters: int, batch_size: int = 64
) -> str:
    unit = next(key for key in training[1] if key.startswith("train_") and key.endswith("_per_s"))
    speed = training[2][unit] / training[1][unit]
    tune_speed = tuning[1]["tune_s"] / tuning[2]["tune_s"]
    losses = [training[n]["final_val_loss"] for n in (1, 2)]
    gap = abs(losses[1] - losses[0]) / losses[0]
    rows = [
        _row(f"training: {unit.removeprefix('train_')}", training, unit, speed, "{:,.1f}"),
        _row("training: final validation loss", training, "final_val_loss", None, "{:.4f}"),
        _row("training: wall time of train (s)", training, "train_wall_time_s", None, "{:,.1f}"),
        _row("tuning: wall time of 8 trials (s)", tuning, "tune_s", tune_speed, "{:,.1f}"),
        _row("tuning: best val_loss", tuning, "best_score", None, "{:.4f}"),
    ]
    size_mb = parameters * 4 / 1e6
    steps = DEFAULT_MODEL_REVIEWS_PER_S / 64
    return "\n\n".join(
        [
            f"Machine: {machine_description()}",
            f"Measured {datetime.now(UTC):%Y-%m-%d} with `make bench-scale`: each worker process "
            "pinned to its own core (`taskset`), every variant from scratch. Training: "
            f"`{' '.join(TRAINING)}` on the smoke config (IMDB slice), global batch {batch_size}. "
            f"Tuning: `{' '.join(TUNING)}`.",
            markdown_table(rows),
            f"Training throughput ×{speed:.2f} with 2 workers (target ≥ ×{TARGET_RATIO}: "
            f"{'met' if speed >= TARGET_RATIO else 'missed'}); final validation losses differ by "
            f"{gap:.2%}. Tuning ×{tune_speed:.2f} (target ≥ ×{TARGET_RATIO}: "
            f"{'met' if tune_speed >= TARGET_RATIO else 'missed'}).",
            f"Per step, each worker all-reduces the gradient of every trainable weight: "
            f"{parameters:,} float32 values ({size_mb:.1f} MB) for the shipped sentiment model. "
            f"A ring all-reduce sends and receives about 2(N-1)/N of that per worker per step, "
            f"so N workers each doing s steps/s need about {2 * size_mb:.1f}·s MB/s each way: "
            f"at this CPU's pace for that model ({DEFAULT_MODEL_REVIEWS_PER_S} reviews/s on 2 "
            f"cores, BENCHMARKS' bigru row: {steps:.1f} steps/s of 64) "
            f"{2 * size_mb * steps:.0f} MB/s, within a 1 Gbit/s link (125 MB/s); accelerators "
            "stepping 10-100x faster make the network the limit unless the gradients are "
            "compressed or the batch per worker grows.",
        ]
    )


def _row(name: str, results: dict[int, dict], key: str, ratio: float | None, style: str) -> dict:
    return {
        "measure": name,
        "1 worker, 1 core": style.format(results[1][key]),
        "2 workers, 1 core each": style.format(results[2][key]),
        "ratio": "-" if ratio is None else f"×{ratio:.2f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.scale_bench", description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--batch-size", type=int, default=64, help="global training batch")
    parser.add_argument(
        "--training-only", action="store_true", help="print the training rows, write nothing"
    )
    args = parser.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        parser.error("needs 2 CPU cores to pin 2 workers")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        training = {n: run_variant("training", n, Path(scratch), args.batch_size) for n in (1, 2)}
        if args.training_only:
            print(json.dumps(training, indent=2, default=str))
            return 0
        tuning = {n: run_variant("tuning", n, Path(scratch)) for n in (1, 2)}
    text = report(training, tuning, default_model_parameters(), args.batch_size)
    print(text)
    write_section(args.output, SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
