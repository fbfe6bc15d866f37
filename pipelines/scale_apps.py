"""``make bench-scale``, its second part: the language model and sales forecasting on workers.

Each application trains at its shipped model size on a slice of its data with one worker and with
two (``python -m pipelines.workers --pin-cores``: each worker on a core of its own), as weak
scaling: the same batch on each worker, so the global batch and the learning rate double with
two, and the same data every epoch. Steady epochs only (the first traces and warms up). The ratio
is one worker's epoch time over two workers'; the loss gap compares the last epoch's training
and validation losses. Writes BENCHMARKS.md's ``scale-apps`` section.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from components.reporting import machine_description, markdown_table, write_section
from pipelines.registry import resolve_config
from pipelines.scale_bench import training_command
from pipelines.spec import CONFIG_DIR

SECTION = "scale-apps"


@dataclasses.dataclass(frozen=True)
class App:
    pipeline: str
    config: str
    settings: tuple[str, ...]
    """The slice and the epochs; dropout off, so one and two workers' losses compare."""


APPS = {
    "language model (Tiny Shakespeare chars, 2 x LSTM 256)": App(
        "language_model",
        "language_model.yaml",
        ("data.max_characters=200000", "model.dropout=0.0", "train.epochs=3"),
    ),
    "sales (Walmart departments, GRU encoder-decoder 64)": App(
        "sales_forecast",
        "sales_forecast.yaml",
        ("ingest.max_series=600", "model.dropout=0.0", "train.epochs=3"),
    ),
}
SMOKE_SETTINGS = {
    "language_model": (
        "data.max_characters=40000",
        "windows.num_steps=20",
        "model.units=16",
        "train.epochs=2",
    ),
    "sales_forecast": ("ingest.max_series=20", "model.units=8", "train.epochs=2"),
}


def train(scratch: Path, app: App, workers: int, extra: tuple[str, ...]) -> dict:
    """One pinned run, weak-scaled to ``workers``: its steady epoch time and last losses."""
    config = resolve_config(app.pipeline, CONFIG_DIR / app.config, None, list(extra))
    root = scratch / f"{app.pipeline}-{workers}"
    root.mkdir(parents=True)
    settings = [
        *app.settings,
        *extra,
        f"train.batch_size={config.train.batch_size * workers}",
        f"train.learning_rate={config.train.learning_rate * workers}",
        "train.early_stopping_patience=10",
    ]
    command = training_command(root, workers, settings, None, app.pipeline, app.config)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    print(f"training: {app.pipeline}, {workers} worker(s)", flush=True)
    subprocess.run(command, env=env, check=True)
    [epochs_csv] = (root / "runs" / app.pipeline).glob("2*/train/**/epochs.csv")
    epochs = pd.read_csv(epochs_csv)
    return {
        "epoch_s": float(epochs["epoch_time_s"].iloc[1:].mean()),
        "loss": float(epochs["loss"].iloc[-1]),
        "val_loss": float(epochs["val_loss"].iloc[-1]),
    }


def rows(measured: dict[str, dict[int, dict]]) -> list[dict]:
    """A table row per application: epoch times, the ratio and the loss gaps."""
    table = []
    for name, runs in measured.items():
        one, two = runs[1], runs[2]
        table.append(
            {
                "application": name,
                "steady epoch, 1 worker (s)": f"{one['epoch_s']:.1f}",
                "steady epoch, 2 workers (s)": f"{two['epoch_s']:.1f}",
                "ratio": f"×{one['epoch_s'] / two['epoch_s']:.2f}",
                "loss, 1 / 2 workers": f"{one['loss']:.4f} / {two['loss']:.4f}",
                "val_loss, 1 / 2 workers": f"{one['val_loss']:.4f} / {two['val_loss']:.4f}",
                "val_loss gap": f"{two['val_loss'] / one['val_loss'] - 1:+.1%}",
            }
        )
    return table


def report(measured: dict, command: str) -> str:
    today = datetime.now(UTC).date().isoformat()
    settings = "; ".join(f"{name}: `{' '.join(app.settings)}`" for name, app in APPS.items())
    return "\n".join(
        [
            f"Machine: {machine_description()}",
            "",
            f"Measured {today} with `{command}` (`make bench-scale` runs it after the sentiment "
            "part): weak scaling, each worker pinned to its own core, the same batch per worker "
            "(global batch and learning rate doubled with 2 workers), the same data every "
            f"epoch, steady epochs only. Settings: {settings}.",
            "",
            markdown_table(rows(measured)),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.scale_apps", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; writes nothing")
    args = parser.parse_args(argv)
    measured = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-apps-") as scratch:
        for name, app in APPS.items():
            extra = SMOKE_SETTINGS[app.pipeline] if args.smoke else ()
            measured[name] = {w: train(Path(scratch), app, w, extra) for w in (1, 2)}
    command = " ".join(["python -m pipelines.scale_apps", *(argv or sys.argv[1:])])
    text = report(measured, command)
    print(text)
    if not args.smoke:
        write_section(Path("BENCHMARKS.md"), SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
