"""Full-data benchmarks: train and score each configuration, then write a table into BENCHMARKS.md.

Every run goes through the real pipeline stages (everything but the push to serving) with a
shipped config plus a model preset and overrides, so the numbers describe what the ``make``
targets give. Each pipeline's spec lists its runs and formats its metric columns (``Benchmark``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from components.errors import ConfigError
from components.reporting import machine_description, markdown_table, rows_in_section, write_section
from pipelines import registry
from pipelines.runner import run_pipeline
from pipelines.spec import CONFIG_DIR, PipelineSpec


def run(pipeline: str, names: list[str] | None, output: Path, overrides: list[str]) -> int:
    spec = registry.get(pipeline)
    runs = spec.benchmark.runs
    unknown = sorted(set(names or ()) - set(runs))
    if unknown:
        raise ConfigError(f"unknown benchmark run(s) {unknown}; choose from: {', '.join(runs)}")
    rows = []
    for name in names or runs:
        bench_run = runs[name]
        config = registry.resolve_config(
            pipeline,
            CONFIG_DIR / bench_run.config_file,
            bench_run.preset,
            [*bench_run.overrides, *overrides],
        )
        # A benchmark measures; it neither judges against nor replaces the model being served.
        stages = [stage for stage in spec.stages if stage.name not in ("bless", "export")]
        # Never from the cache: a benchmark row is a measurement made now.
        result = run_pipeline(pipeline, config, stages, Path("artifacts/bench"), use_cache=False)
        training = result.outputs["train"].summary()
        metrics = result.outputs[spec.benchmark.stage].load()
        measured = f"{datetime.now(UTC):%Y-%m-%d}, `{_command(spec, name, overrides)}`"
        rows.append({
            "run": name,
            **spec.benchmark.columns(metrics),
            **_training_columns(training),
            "measured": measured,
        })  # fmt: skip
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
    write_section(output, pipeline, f"Machine: {machine_description()}\n\n{markdown_table(merged)}")
    return 0


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
    }
