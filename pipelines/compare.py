"""Compare a pipeline's finished runs from MLflow: a table and a bar chart of their test metrics.

One row per run, newest first; columns are the config values that differ between the runs (cell
type, direction, units, ... as train actually used them, tuned or not), then the pipeline's
``compare_metrics`` and the training wall time. Written to compare.md, compare.csv and
compare.png, and logged to a ``compare`` run (tagged ``report=compare``) of the same experiment.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from components import tracking
from components.errors import ConfigError, DataError
from components.reporting import markdown_table
from pipelines import registry

WALL_TIME = "train_wall_time_s"


def run(pipeline: str, out_dir: Path, last: int | None = None) -> Path:
    """Compare the latest ``last`` (default: all) runs; returns the markdown table's path."""
    if last is not None and last < 1:
        raise ConfigError(f"--last={last} must be at least 1")
    metrics = [*registry.get(pipeline).compare_metrics, WALL_TIME]
    uri = tracking.configure(pipeline)
    table = comparison(tracking.finished_pipeline_runs(pipeline), metrics, last)
    if table.empty:
        raise DataError(
            f"no finished {pipeline} run with test metrics in MLflow ({uri}); run the pipeline "
            f"first, e.g. `python -m pipelines run {pipeline}`"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "compare.md"
    markdown.write_text(f"# Finished {pipeline} runs ({len(table)})\n\n{_markdown(table)}\n")
    table.to_csv(out_dir / "compare.csv", index=False)
    _plot(table, [column for column in metrics if column in table], out_dir / "compare.png")
    with tracking.report_run("compare"):
        tracking.log_params({"pipeline": pipeline, "runs": len(table)})
        for name in ("compare.md", "compare.csv", "compare.png"):
            tracking.log_artifact(out_dir / name)
    return markdown


def comparison(
    runs: list[dict[str, Any]], metrics: list[str], last: int | None = None
) -> pd.DataFrame:
    """The first ``last`` runs that logged any of ``metrics``: run id, the params that differ
    between them, those metrics and the MLflow run id."""
    scored = [run for run in runs if any(name in run["metrics"] for name in metrics)][:last]
    params = pd.DataFrame([run["params"] for run in scored], dtype=object).fillna("")
    differing = [key for key in params.columns if params[key].nunique() > 1]
    table = pd.DataFrame({"run": [run["run_id"] for run in scored]})
    for key in differing:
        table[key] = params[key].to_list()
    for name in metrics:
        if any(name in run["metrics"] for run in scored):
            table[name] = [run["metrics"].get(name, math.nan) for run in scored]
    table["mlflow_run_id"] = [run["mlflow_run_id"] for run in scored]
    return table


def _markdown(table: pd.DataFrame) -> str:
    shown = table.drop(columns="mlflow_run_id")

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    return markdown_table(
        [
            dict(zip(shown.columns, map(cell, row), strict=True))
            for row in shown.itertuples(index=False)
        ]
    )


def _plot(table: pd.DataFrame, metrics: list[str], path: Path) -> None:
    """One horizontal bar chart per metric, a bar per run labelled with its differing values."""
    params = [key for key in table.columns if key not in {*metrics, "run", "mlflow_run_id"}]

    def label(row: pd.Series) -> str:
        values = " ".join(f"{key.rsplit('.', 1)[-1]}={row[key]}" for key in params)
        return f"{row['run']}\n{values}" if values else row["run"]

    labels = [label(row) for _, row in table.iterrows()]
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    # A bare Figure (no pyplot) needs no GUI backend and no global state.
    figure = Figure(figsize=(4.5 * columns + 3, rows * (0.6 * len(table) + 1.5)))
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True).flatten()
    for axis, name in zip(axes, metrics, strict=False):
        bars = axis.barh(labels, table[name].astype(float))
        axis.bar_label(bars, fmt="%.4g", padding=2)
        axis.set(title=name)
    for axis in axes[len(metrics) :]:
        axis.set_visible(False)
    axes[0].invert_yaxis()  # newest run on top, as in the table (the y axis is shared)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
