"""Full-data benchmarks: train and score each cell type, then write a table into BENCHMARKS.md.

Every model runs through the real pipeline stages (ingest -> evaluate; no push to serving), with
the default config plus the model preset, so the numbers describe what ``make sentiment`` gives.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import tensorflow as tf

from pipelines.runner import run_pipeline

# name -> (model preset, extra overrides). The default config pools over time (max), which gives
# every step a short gradient path; the "-last" runs classify from the final state only, the
# classic setup in which SimpleRNN's vanishing gradients show on long reviews.
BENCHMARK_RUNS = {
    "sentiment": {
        "simplernn": ("simplernn", []),
        "lstm": ("lstm", []),
        "gru": ("gru", []),
        "bilstm": ("bilstm", []),
        "bigru": ("bigru", []),
        "simplernn-last": ("simplernn", ["model.pooling=last"]),
        "lstm-last": ("lstm", ["model.pooling=last"]),
    }
}


def run(pipeline: str, models: list[str] | None, output: Path, overrides: list[str]) -> int:
    from components.errors import ConfigError
    from pipelines.__main__ import pipeline_module, resolve_config

    module = pipeline_module(pipeline)
    runs = BENCHMARK_RUNS[pipeline]
    unknown = sorted(set(models or ()) - set(runs))
    if unknown:
        raise ConfigError(f"unknown benchmark run(s) {unknown}; choose from: {', '.join(runs)}")
    rows = []
    for model in models or runs:
        preset, extra = runs[model]
        config = resolve_config(pipeline, None, preset, [*extra, *overrides])
        stages = [stage for stage in module.STAGES if stage.name != "export"]
        result = run_pipeline(pipeline, config, stages, Path("artifacts/bench"))
        training = json.loads((result.outputs["train"].path / "training.json").read_text())
        rows.append({**training, "model": model, "metrics": result.outputs["evaluate"].load()})
        print(_table(rows), flush=True)
    command = "make bench-sentiment" + (f" MODELS='{' '.join(models)}'" if models else "")
    _write_section(output, pipeline, _report(rows, command, overrides))
    return 0


def _table(rows: list[dict]) -> str:
    slices = list(rows[0]["metrics"]["by_length"])
    header = (
        "| model | test accuracy | ROC-AUC | F1 | "
        + " | ".join(f"acc. {s} words" for s in slices)
        + " | epochs (best) | train wall time | train reviews/s | parameters |"
    )
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for row in rows:
        metrics = row["metrics"]
        by_length = " | ".join(f"{metrics['by_length'][s]['accuracy']:.3f}" for s in slices)
        lines.append(
            f"| {row['model']} | **{metrics['accuracy']:.4f}** | {metrics['roc_auc']:.4f} | "
            f"{metrics['f1']:.4f} | {by_length} | {row['epochs_run']} ({row['best_epoch']}) | "
            f"{row['train_wall_time_s'] / 60:.1f} min | {row['train_reviews_per_s']:.0f} | "
            f"{row['parameters']:,} |"
        )
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


def _report(rows: list[dict], command: str, overrides: list[str]) -> str:
    test_examples = rows[0]["metrics"]["examples"]
    return "\n".join(
        [
            f"Command: `{command}`"
            + (f" with overrides `{' '.join(overrides)}`" if overrides else ""),
            f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"Machine: {_machine()}",
            f"Test split: the official {test_examples:,} IMDB test reviews; accuracy by review "
            "length "
            "in words (whitespace tokens before truncation).",
            "",
            _table(rows),
        ]
    )


def _write_section(path: Path, pipeline: str, body: str) -> None:
    """Replace this pipeline's section of BENCHMARKS.md (between markers), keeping the rest."""
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
