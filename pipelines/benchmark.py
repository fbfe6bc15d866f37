"""Full-data benchmarks: train and score each configuration, then write a table into BENCHMARKS.md.

Every run goes through the real pipeline stages (everything but the push to serving) with a
shipped config plus a model preset and overrides, so the numbers describe what the ``make``
targets give. Each pipeline module formats its own metric columns (``benchmark_columns``).
"""

from __future__ import annotations

import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import tensorflow as tf

from components.errors import ConfigError
from pipelines.runner import run_pipeline

CONFIGS = Path(__file__).parent / "configs"
# name -> (config file, model preset or None, extra overrides), in the order they run.
BENCHMARK_RUNS = {
    # The default config pools over time (max), which gives every step a short gradient path;
    # the "-last" runs classify from the final state only, the classic setup in which
    # SimpleRNN's vanishing gradients show on long reviews.
    "sentiment": {
        "simplernn": ("sentiment.yaml", "simplernn", []),
        "lstm": ("sentiment.yaml", "lstm", []),
        "gru": ("sentiment.yaml", "gru", []),
        "bilstm": ("sentiment.yaml", "bilstm", []),
        "bigru": ("sentiment.yaml", "bigru", []),
        "simplernn-last": ("sentiment.yaml", "simplernn", ["model.pooling=last"]),
        "lstm-last": ("sentiment.yaml", "lstm", ["model.pooling=last"]),
        "bigru-relu_max": ("sentiment.yaml", "bigru", ["model.pooling=relu_max"]),
    },
    # PTB at equal size (2 x 200, Zaremba "small" schedule) for each cell; char level on Tiny
    # Shakespeare with the shipped config.
    "language_model": {
        "ptb-lstm": ("ptb.yaml", "lstm", []),
        # At LSTM's learning rate (20) GRU diverged in epoch 3 (valid perplexity 192 -> 343).
        "ptb-gru": ("ptb.yaml", "gru", ["train.learning_rate=10.0"]),
        "ptb-simplernn": ("ptb.yaml", "simplernn", ["train.learning_rate=5.0"]),
        "char-lstm": ("language_model.yaml", "lstm", []),
        "char-gru": ("language_model.yaml", "gru", []),
    },
    # Walmart department series, 3-fold backtest; every model retrains per fold. The baselines
    # (scored on the same folds by the evaluate component) are added as rows of their own.
    "sales_forecast": {
        "gru": ("sales_forecast.yaml", "gru", []),
        "lstm": ("sales_forecast.yaml", "lstm", []),
        "simplernn": ("sales_forecast.yaml", "simplernn", []),
        "gru-seq2seq": ("sales_forecast.yaml", "gru-seq2seq", []),
        "bigru": ("sales_forecast.yaml", "gru", ["model.bidirectional=true"]),
        "gru-stacked": ("sales_forecast.yaml", "gru", ["model.layers=2"]),
        "gru-quantiles": ("sales_forecast.yaml", "gru", ["model.quantiles=[0.1,0.5,0.9]"]),
        "gru-no-residual": ("sales_forecast.yaml", "gru", ["model.seasonal_residual=false"]),
        # The shipped config as it is: the direct GRU and the GRU encoder-decoder, averaged.
        "gru-ensemble": ("sales_forecast.yaml", None, []),
    },
}


def run(pipeline: str, names: list[str] | None, output: Path, overrides: list[str]) -> int:
    from pipelines.__main__ import pipeline_module, resolve_config

    module = pipeline_module(pipeline)
    runs = BENCHMARK_RUNS[pipeline]
    unknown = sorted(set(names or ()) - set(runs))
    if unknown:
        raise ConfigError(f"unknown benchmark run(s) {unknown}; choose from: {', '.join(runs)}")
    rows = []
    for name in names or runs:
        config_file, preset, extra = runs[name]
        config = resolve_config(pipeline, CONFIGS / config_file, preset, [*extra, *overrides])
        # A benchmark measures; it neither judges against nor replaces the model being served.
        stages = [stage for stage in module.STAGES if stage.name not in ("bless", "export")]
        # Never from the cache: a benchmark row is a measurement made now.
        result = run_pipeline(pipeline, config, stages, Path("artifacts/bench"), use_cache=False)
        training = result.outputs["train"].summary()
        metrics = result.outputs[getattr(module, "BENCHMARK_STAGE", "evaluate")].load()
        measured = f"{datetime.now(UTC):%Y-%m-%d}, `{_command(pipeline, name, overrides)}`"
        rows.append({
            "run": name,
            **module.benchmark_columns(metrics),
            **_training_columns(training),
            "measured": measured,
        })  # fmt: skip
        # Reference rows (e.g. forecasting baselines) scored in the same run, once per table.
        for reference in getattr(module, "benchmark_reference_rows", lambda _: [])(metrics):
            rows = [row for row in rows if row["run"] != reference["run"]]
            rows.append({**reference, "measured": measured})
        print(_table(rows), flush=True)
    # Rows of runs not redone this time stay, so a single run can be measured again on its own.
    done = {row["run"] for row in rows}
    kept = [row for row in _rows_in_section(output, pipeline) if row["run"] not in done]
    order = list(runs)
    merged = sorted(
        kept + rows, key=lambda row: order.index(row["run"]) if row["run"] in order else 99
    )
    _write_section(output, pipeline, f"Machine: {_machine()}\n\n{_table(merged)}")
    return 0


def _command(pipeline: str, name: str, overrides: list[str]) -> str:
    suffix = {"language_model": "lm", "sales_forecast": "sales"}.get(pipeline, pipeline)
    extra = f" SET='{' '.join(overrides)}'" if overrides else ""
    return f"make bench-{suffix} MODELS={name}{extra}"


def _training_columns(training: dict) -> dict[str, str]:
    rate = next(key for key in training if key.startswith("train_") and key.endswith("_per_s"))
    unit = rate.removeprefix("train_").removesuffix("_per_s")
    return {
        "epochs (best)": f"{training['epochs_run']} ({training['best_epoch']})",
        "train wall time": f"{training['train_wall_time_s'] / 60:.1f} min",
        f"train {unit}/s": f"{training[rate]:,.0f}",
        "parameters": f"{training['parameters']:,}",
    }


def _table(rows: list[dict[str, str]]) -> str:
    columns = list(dict.fromkeys(column for row in rows for column in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else cpu
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), {memory_gib:.0f} GiB RAM, no GPU; "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}"
    )


def _rows_in_section(path: Path, pipeline: str) -> list[dict[str, str]]:
    """The table rows already in this pipeline's section of BENCHMARKS.md."""
    start, end = f"<!-- bench:{pipeline}:start -->", f"<!-- bench:{pipeline}:end -->"
    text = path.read_text() if path.exists() else ""
    if start not in text or end not in text:
        return []
    section = text[text.index(start) : text.index(end)]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    if not lines:
        return []
    columns = _cells(lines[0])
    return [dict(zip(columns, _cells(line), strict=True)) for line in lines[2:]]


def _cells(line: str) -> list[str]:
    """``| a |  | b |`` -> ``["a", "", "b"]``: empty cells kept (a row may lack a column)."""
    return [cell.strip() for cell in line.strip()[1:-1].split("|")]


def _write_section(path: Path, pipeline: str, body: str) -> None:
    """Replace this pipeline's generated part of BENCHMARKS.md (between markers), keep the rest."""
    start, end = f"<!-- bench:{pipeline}:start -->", f"<!-- bench:{pipeline}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + f"\n\n## {pipeline}\n\n{section}\n"
    temporary = path.with_suffix(".md.tmp")
    temporary.write_text(text)
    temporary.replace(path)
    print(f"wrote {path}", file=sys.stderr)
