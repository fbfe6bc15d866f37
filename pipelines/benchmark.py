"""Full-data benchmarks: train and score each configuration, then write a table into BENCHMARKS.md.

Every run goes through the real pipeline stages (everything but the push to serving) with a
shipped config plus a model preset and overrides, so the numbers describe what the ``make``
targets give. Each pipeline's spec lists its runs and formats its metric columns (``Benchmark``).
"""

from __future__ import annotations

import json
import re
import statistics
from datetime import UTC, datetime
from pathlib import Path

from components.errors import ConfigError
from components.reporting import (
    cpu_model,
    machine_description,
    markdown_table,
    rows_in_section,
    write_section,
    write_whole,
)
from pipelines import registry
from pipelines.runner import run_pipeline
from pipelines.spec import CONFIG_DIR, UPSTREAM, BenchmarkRun, PipelineSpec

BENCH_ROOT = Path("artifacts/bench")


def run(
    pipeline: str,
    names: list[str] | None,
    output: Path,
    overrides: list[str],
    seeds: list[int] | None = None,
) -> int:
    """Measure the rows ``names`` (default: all) and rewrite the pipeline's table in ``output``.

    ``seeds``: only these of a headline row's seeds, the others kept from earlier runs of the same
    command (in ``<output>.seeds.json``): a three-seed row of 45-minute runs can be measured one
    seed per sitting, and the row shows the seeds measured so far."""
    spec = registry.get(pipeline)
    runs = spec.benchmark.runs
    unknown = sorted(set(names or ()) - set(runs))
    if unknown:
        raise ConfigError(f"unknown benchmark run(s) {unknown}; choose from: {', '.join(runs)}")
    for name in names or runs:
        _check_seeds(name, runs[name], seeds)
    store = output.with_suffix(".seeds.json")
    rows = []
    for name in names or runs:
        bench_run = runs[name]
        command = _command(spec, name, overrides)
        measured_now, metrics = _measure(spec, bench_run, overrides, seeds or bench_run.seeds)
        today = f"{datetime.now(UTC):%Y-%m-%d}"
        if bench_run.seeds:
            by_seed = _seed_runs(store, pipeline, name, command, measured_now, today)
            cells = [by_seed[seed]["cells"] for seed in bench_run.seeds if seed in by_seed]
            measured = f"{_date_range(by_seed)}, `{command}`, {_seeds_note(bench_run, by_seed)}"
        else:
            cells, measured = list(measured_now.values()), f"{today}, `{command}`"
        rows.append({"run": name, **over_seeds(cells), "measured": measured})
        # Reference rows (e.g. forecasting baselines) scored in the same run, once per table.
        for reference in spec.benchmark.reference_rows(metrics):
            if bench_run.dataset:
                reference = {**reference, "run": f"{bench_run.dataset} {reference['run']}"}
            rows = [row for row in rows if row["run"] != reference["run"]]
            rows.append({**reference, "measured": measured})
        print(markdown_table(rows), flush=True)
    # Rows of runs not redone this time stay, so a single run can be measured again on its own.
    done = {row["run"] for row in rows}
    kept = [row for row in rows_in_section(output, pipeline) if row["run"] not in done]
    order = list(runs)
    merged = sorted(
        kept + rows, key=lambda row: order.index(row["run"]) if row["run"] in order else 99
    )
    machine = machine_description(with_cpu_model=False)
    machine = f"Machine: {machine}; each row's CPU model in its CPU column"
    write_section(output, pipeline, f"{machine}\n\n{markdown_table(merged)}")
    return 0


def _check_seeds(name: str, bench_run: BenchmarkRun, seeds: list[int] | None) -> None:
    """Before anything runs: ``seeds`` must be among the row's own."""
    if not seeds:
        return
    if not bench_run.seeds:
        raise ConfigError(f"benchmark run {name!r} is measured once, not over seeds: drop SEEDS")
    if outside := sorted(set(seeds) - set(bench_run.seeds)):
        allowed = ", ".join(map(str, bench_run.seeds))
        raise ConfigError(f"benchmark run {name!r} has no seed(s) {outside}; its seeds: {allowed}")


def _seed_runs(
    store: Path, pipeline: str, name: str, command: str, measured: dict, date: str
) -> dict[int, dict]:
    """Seed -> ``{"date", "cells"}`` for the row: the earlier runs of the same command kept in
    ``store``, this run's added (another command, e.g. other overrides, starts the row afresh).
    The store is written whole or not at all, like BENCHMARKS.md."""
    saved = json.loads(store.read_text()) if store.exists() else {}
    row = saved.setdefault(pipeline, {}).get(name, {})
    seeds = row.get("seeds", {}) if row.get("command") == command else {}
    seeds.update({str(seed): {"date": date, "cells": cells} for seed, cells in measured.items()})
    saved[pipeline][name] = {"command": command, "seeds": seeds}
    write_whole(store, json.dumps(saved, indent=1, ensure_ascii=False) + "\n")
    return {int(seed): record for seed, record in seeds.items()}


def _date_range(by_seed: dict[int, dict]) -> str:
    dates = sorted(record["date"] for record in by_seed.values())
    return dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"


def _seeds_note(bench_run: BenchmarkRun, by_seed: dict[int, dict]) -> str:
    done = [seed for seed in bench_run.seeds if seed in by_seed]
    missing = [seed for seed in bench_run.seeds if seed not in by_seed]
    if not missing:
        return f"mean ± std over seeds {', '.join(map(str, done))}"
    return (
        f"seed(s) {', '.join(map(str, done))} of {', '.join(map(str, bench_run.seeds))} so far "
        f"(SEEDS='{' '.join(map(str, missing))}' measures the rest)"
    )


def _measure(
    spec: PipelineSpec, bench_run: BenchmarkRun, overrides: list[str], seeds: tuple | list = ()
) -> tuple[dict[int | None, dict[str, str]], dict]:
    """The row's cells from each seed's run (``seeds``; one run, keyed None, without), and the
    last run's metrics."""
    cells, metrics = {}, {}
    upstream_dir = None
    for upstream in bench_run.upstream:
        config = registry.resolve_config(
            upstream.pipeline,
            CONFIG_DIR / upstream.config_file,
            None,
            _filled(upstream.overrides, upstream_dir),
        )
        stages = _measured_stages(registry.get(upstream.pipeline), upstream.stages)
        result = run_pipeline(upstream.pipeline, config, stages, BENCH_ROOT, use_cache=False)
        upstream_dir = result.run_dir
    for seed in seeds or (None,):
        seeded = [] if seed is None else [f"train.seed={seed}"]
        config = registry.resolve_config(
            spec.name,
            CONFIG_DIR / bench_run.config_file,
            bench_run.preset,
            [*_filled(bench_run.overrides, upstream_dir), *overrides, *seeded],
        )
        # Never from the cache: a benchmark row is a measurement made now.
        result = run_pipeline(
            spec.name, config, _measured_stages(spec), BENCH_ROOT, use_cache=False
        )
        metrics = result.outputs[spec.benchmark.stage].load()
        training = _training_columns(result.outputs["train"].summary())
        # Rows kept from earlier sittings may come from another VM: each names its CPU.
        cells[seed] = {**spec.benchmark.columns(metrics), **training, "CPU": cpu_model()}
    return cells, metrics


def _measured_stages(spec: PipelineSpec, names: tuple[str, ...] = ()) -> list:
    """``names``, or every stage but bless and export: a benchmark measures; it neither judges
    against nor replaces the model being served."""
    if names:
        return [stage for stage in spec.stages if stage.name in names]
    return [stage for stage in spec.stages if stage.name not in ("bless", "export")]


def _filled(overrides: tuple[str, ...], upstream_dir: Path | None) -> list[str]:
    if upstream_dir is None:
        return list(overrides)
    return [override.replace(UPSTREAM, str(upstream_dir)) for override in overrides]


def over_seeds(cells: list[dict[str, str]]) -> dict[str, str]:
    """One row from a row per seed: numeric cells as mean ± std in their own format, the others
    as they are when all seeds agree, else each seed's value (empty where a seed lacks it)."""
    row = {}
    for key in dict.fromkeys(key for cell in cells for key in cell):
        values = [cell.get(key, "") for cell in cells]
        row[key] = values[0] if len(set(values)) == 1 else _mean_std(values)
    return row


_NUMBER_CELL = re.compile(r"^(\D*?)([+-]?[\d,]*\.?\d+)(\D*)$")


def _mean_std(values: list[str]) -> str:
    """``["**0.8716**", "**0.8802**"]`` -> ``"**0.8759 ± 0.0061**"`` (sample std)."""
    parts = [_NUMBER_CELL.match(value) for value in values]
    if not all(parts) or len({(part[1], part[3]) for part in parts}) != 1:
        return " / ".join(values)
    numbers = [float(part[2].replace(",", "")) for part in parts]
    decimals = len(parts[0][2].partition(".")[2])
    grouping = "," if "," in "".join(part[2] for part in parts) else ""
    mean, std = statistics.mean(numbers), statistics.stdev(numbers)
    sign = "+" if parts[0][2].startswith("+") else ""
    return (
        f"{parts[0][1]}{mean:{sign}{grouping}.{decimals}f} ± {std:{grouping}.{decimals}f}"
        f"{parts[0][3]}"
    )


def _command(spec: PipelineSpec, name: str, overrides: list[str]) -> str:
    extra = f" SET='{' '.join(overrides)}'" if overrides else ""
    return f"make {spec.benchmark.make_target} MODELS={name}{extra}"


def _training_columns(training: dict) -> dict[str, str]:
    rate = next(key for key in training if key.startswith("train_") and key.endswith("_per_s"))
    unit = rate.removeprefix("train_").removesuffix("_per_s")
    return {
        "epochs (best)": f"{training['epochs_run']} ({training['best_epoch']})",
        "train wall time": f"{training['train_wall_time_s'] / 60:.1f} min",
        f"train {unit}/s": f"{training[rate]:,.0f}",
        "parameters": f"{training['parameters']:,}",
        **(
            {"largest gradient norm": f"{training['grad_norm_max']:,.1f}"}
            if "grad_norm_max" in training
            else {}
        ),
    }
