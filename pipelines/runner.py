"""Run a pipeline's stages in order, each into its own directory, with a manifest and an MLflow run.

Layout: ``<artifacts_root>/<pipeline>/<run_id>/<stage>/{<artifact>/, manifest.json}``. A stage
writes into ``.<stage>.partial/`` and the directory is renamed only when the stage has finished,
so an interrupted run never leaves an artifact a later step would trust.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components import artifacts, tracking
from components.artifacts import Artifact
from components.errors import PipelineError
from pipelines.config import flatten, to_yaml

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Stage:
    """A pipeline step: ``run(config, inputs, out_dir)`` gets the artifacts named in ``inputs``."""

    name: str
    run: Callable[[Any, dict[str, Artifact], Path], Artifact]
    output: type[Artifact]
    inputs: tuple[str, ...] = ()
    config_sections: tuple[str, ...] = ()
    """Every config attribute the stage reads: recorded in its manifest and part of its cache key,
    so a change to any of them reruns the stage (and, through its new output, what follows)."""


@dataclasses.dataclass(frozen=True)
class PipelineResult:
    run_id: str
    run_dir: Path
    mlflow_run_id: str
    outputs: dict[str, Artifact]


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_pipeline(
    pipeline: str,
    config: Any,
    stages: list[Stage],
    artifacts_root: Path,
    only: str | None = None,
    from_run: str | None = None,
) -> PipelineResult:
    """Run every stage, or with ``only`` a single stage fed by the artifacts of run ``from_run``."""
    selected = [stage for stage in stages if only in (None, stage.name)]
    if not selected:
        raise PipelineError(
            f"unknown stage {only!r}; stages are: {', '.join(s.name for s in stages)}"
        )
    run_id = new_run_id()
    run_dir = Path(artifacts_root) / pipeline / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(to_yaml(config))
    outputs = load_outputs(Path(artifacts_root) / pipeline / from_run) if from_run else {}
    tracking.configure(pipeline)
    tags = {"pipeline": pipeline, "run_id": run_id, "stages": ",".join(s.name for s in selected)}
    with tracking.pipeline_run(f"{pipeline}-{run_id}", tags) as mlflow_run_id:
        tracking.log_params(flatten(config))
        tracking.log_artifact(run_dir / "config.yaml")
        for stage in selected:
            outputs[stage.name] = _run_stage(stage, config, outputs, run_dir, run_id)
    log.info("run %s finished: artifacts in %s, MLflow run %s", run_id, run_dir, mlflow_run_id)
    return PipelineResult(run_id, run_dir, mlflow_run_id, outputs)


def _run_stage(stage: Stage, config: Any, outputs: dict, run_dir: Path, run_id: str) -> Artifact:
    missing = [name for name in stage.inputs if name not in outputs]
    if missing:
        raise PipelineError(
            f"stage {stage.name} needs the output of {missing}; run the whole pipeline or pass "
            "--from-run with a run that has them"
        )
    inputs = {name: outputs[name] for name in stage.inputs}
    final_dir = run_dir / stage.name
    partial_dir = run_dir / f".{stage.name}.partial"
    shutil.rmtree(partial_dir, ignore_errors=True)
    log.info("stage %s: starting", stage.name)
    started_at, started = datetime.now(UTC), time.perf_counter()
    with tracking.component_run(stage.name) as mlflow_run_id:
        output = stage.run(config, inputs, partial_dir / _snake(stage.output.__name__))
        if not isinstance(output, stage.output):
            raise PipelineError(
                f"stage {stage.name} returned {type(output).__name__}, "
                f"expected {stage.output.__name__}"
            )
        manifest = {
            "pipeline": run_dir.parent.name,
            "run_id": run_id,
            "component": stage.name,
            "mlflow_run_id": mlflow_run_id,
            "started_at": started_at.isoformat(timespec="seconds"),
            "duration_s": round(time.perf_counter() - started, 2),
            "config": {
                section: flatten(getattr(config, section)) for section in stage.config_sections
            },
            "inputs": {name: artifact.describe() for name, artifact in inputs.items()},
            "output": output.describe(),
        }
        if output.path.is_relative_to(partial_dir):
            output = dataclasses.replace(
                output, path=final_dir / output.path.relative_to(partial_dir)
            )
            manifest["output"]["path"] = str(output.path)
        (partial_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
        partial_dir.rename(final_dir)
        tracking.log_artifact(final_dir / "manifest.json")
    log.info("stage %s: done in %.1fs -> %s", stage.name, manifest["duration_s"], output.path)
    return output


def load_outputs(run_dir: Path) -> dict[str, Artifact]:
    """The output artifact of every completed stage of an earlier run, read from its manifests."""
    if not run_dir.is_dir():
        raise PipelineError(
            f"no run directory {run_dir}; pass a run id listed under {run_dir.parent}"
        )
    return {
        manifest.parent.name: artifacts.from_description(json.loads(manifest.read_text())["output"])
        for manifest in sorted(run_dir.glob("*/manifest.json"))
    }


def _snake(type_name: str) -> str:
    """``TrainedModel`` -> ``trained_model``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type_name).lower()
