"""What a pipeline is: its stages, its config class and what the CLI, compare and benchmarks need.

Each application folder (``pipelines/<name>/pipeline.py``) builds one ``PipelineSpec`` named
``SPEC``; ``pipelines/registry.py`` lists them. Nothing else probes a pipeline module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.artifacts import Artifact
from components.errors import PipelineError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclasses.dataclass(frozen=True)
class Stage:
    """A pipeline step: ``run(config, inputs, out_dir)`` gets the artifacts named in ``inputs`` and
    a config holding only the sections named in ``config_sections``."""

    name: str
    run: Callable[[Any, dict[str, Artifact], Path], Artifact]
    output: type[Artifact]
    inputs: tuple[str, ...] = ()
    config_sections: tuple[str, ...] = ()
    """The config sections the stage reads: the runner hands it these and no others (reading
    another is an error), records them in its manifest and makes them part of its cache key, so
    a change to any of them reruns the stage (and, through its new output, what follows)."""
    external_state: Callable[[Any], dict[str, Any]] | None = None
    """State outside the artifacts that the result depends on (e.g. the model now serving, which
    the blessing compares against), as config -> dict; part of the cache key."""
    resumable: bool = False
    """Keep the partial output of an interrupted execution, so rerunning it continues the work."""


HEADLINE_SEEDS = (42, 43, 44)
"""``train.seed`` of each run behind a headline row (42: the shipped configs' own seed)."""


UPSTREAM = "{upstream}"
"""In a benchmark run's overrides: the run folder of the upstream run made just before it."""


@dataclasses.dataclass(frozen=True)
class UpstreamRun:
    """A run of another pipeline that a benchmark row starts from (a pre-trained model), made
    first; its run folder replaces ``{upstream}`` in the overrides of what follows it."""

    pipeline: str
    config_file: str
    overrides: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    """Only these stages; empty: all but bless and export."""


@dataclasses.dataclass(frozen=True)
class BenchmarkRun:
    """One row of a benchmark table: a shipped config, a model preset and extra overrides."""

    config_file: str
    preset: str | None = None
    overrides: tuple[str, ...] = ()
    dataset: str = ""
    """Set for a data set other than the pipeline's default: names its reference rows
    (``stores baseline: naive``), so the baselines of two data sets share one table. Another
    split of the same file is another data set here: rows under one name must ingest the same."""
    seeds: tuple[int, ...] = ()
    """For headline rows and rows a target is judged on: one run per ``train.seed``, cells
    reported as mean ± standard deviation (one seed says little about a model whose best epoch
    moves with its initialisation)."""
    upstream: tuple[UpstreamRun, ...] = ()
    """Runs made first, in order, each fed the previous one's run folder (``{upstream}``)."""


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """How ``make bench-<target>`` measures a pipeline on its full data."""

    make_target: str
    """The make target that runs it (``bench-lm``), quoted with every row of BENCHMARKS.md."""
    runs: dict[str, BenchmarkRun]
    """Row name -> run, in the order they run and appear."""
    columns: Callable[[dict], dict[str, str]]
    """The metrics file of ``stage`` -> the row's score cells."""
    stage: str = "evaluate"
    """Whose metrics the table reports (a backtest's means rather than one test fold's)."""
    reference_rows: Callable[[dict], list[dict[str, str]]] = lambda metrics: []
    """Rows scored in the same run besides the model's, e.g. forecasting baselines."""


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    name: str
    """Also the MLflow experiment and the folder under the artifacts root."""
    config_class: type
    default_config: str
    """File under ``pipelines/configs/`` used when no ``--config`` is given."""
    stages: list[Stage]
    tune_stage: Stage
    """Not in ``stages``: ``--tune`` puts it before train, and the runner then applies the best
    values it found to the config of every later stage."""
    model_presets: dict[str, dict[str, Any]]
    """``--model bigru`` -> config overrides."""
    compare_metrics: list[str]
    """Test metrics the evaluate stage logs to MLflow, compared across runs by ``make compare``."""
    headline: Callable[[dict], str]
    """The evaluate stage's metrics -> one line for the end of a run."""
    benchmark: Benchmark

    def __post_init__(self):
        names = [stage.name for stage in self.stages]
        if "train" not in names or len(set(names)) != len(names):
            raise ValueError(f"pipeline {self.name}: stage names must be unique and include train")

    def stages_to_run(self, tune: bool = False, until: str | None = None) -> list[Stage]:
        """The stages in order; with ``tune``, the tune stage goes right before train; with
        ``until``, none after that stage (a run that stops before bless and export)."""
        stages = list(self.stages)
        if tune:
            position = [stage.name for stage in stages].index("train")
            stages = [*stages[:position], self.tune_stage, *stages[position:]]
        if until is None:
            return stages
        names = [stage.name for stage in stages]
        if until not in names:
            raise PipelineError(f"--until {until!r}: not a stage; stages are: {', '.join(names)}")
        return stages[: names.index(until) + 1]

    def config_path(self, path: Path | None = None) -> Path:
        return path or CONFIG_DIR / self.default_config
