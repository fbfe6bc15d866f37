"""Run a pipeline's stages in order, each into its own directory, with a manifest and an MLflow run.

Layout: ``<artifacts_root>/<pipeline>/<run_id>/<stage>/{<artifact>/, manifest.json}``. Every
manifest records the stage's fingerprint (pipelines/cache.py): when an earlier run completed the
same stage with the same code, config and inputs, its artifact is reused instead of recomputed.
A stage writes into ``<pipeline>/.partial/<stage>-<fingerprint>/``, renamed into the run only when
the stage has finished, so an interrupted run never leaves an artifact a later step would trust; a
resumable stage (training) finds its own half-done work there when the same execution is rerun.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components import artifacts, tracking
from components.artifacts import Artifact
from components.errors import PipelineError
from pipelines import cache
from pipelines.config import flatten, narrowed, to_yaml, with_overrides
from pipelines.spec import Stage

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
ATTEMPT_FILE = "attempt.json"
"""In a resumable stage's partial directory: the MLflow runs of the attempt in progress."""


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
    use_cache: bool = True,
    run_id: str | None = None,
) -> PipelineResult:
    """Run every stage, or with ``only`` a single stage fed by the artifacts of run ``from_run``.

    With ``use_cache`` a stage whose fingerprint matches a completed execution is not run again;
    without it every stage runs (and its fingerprint is still recorded for later runs).
    ``run_id`` names the run (default: its start time and a random suffix), so that processes
    started beside it (tuning workers) can find its artifacts.
    """
    selected = [stage for stage in stages if only in (None, stage.name)]
    if not selected:
        raise PipelineError(
            f"unknown stage {only!r}; stages are: {', '.join(s.name for s in stages)}"
        )
    run_id = run_id or new_run_id()
    run_dir = Path(artifacts_root) / pipeline / run_id
    run_dir.mkdir(parents=True)  # an existing run id is an error: runs never share a directory
    (run_dir / "config.yaml").write_text(to_yaml(config))
    outputs = load_outputs(Path(artifacts_root) / pipeline / from_run) if from_run else {}
    digests = {name: artifact.digest() for name, artifact in outputs.items()}
    tracking.configure(pipeline)
    tags = {"pipeline": pipeline, "run_id": run_id, "stages": ",".join(s.name for s in selected)}
    with tracking.pipeline_run(f"{pipeline}-{run_id}", tags) as mlflow_run_id:
        tracking.log_params(flatten(config))
        tracking.log_artifact(run_dir / "config.yaml")
        executed, tuned_values, tuned_config = [], {}, config
        ingest_run = None
        for stage in selected:
            if "tune" in outputs and not tuned_values:
                # The tune stage's best values, read once: every stage after it then builds,
                # scores and exports the model that was tuned.
                tuned_values = outputs["tune"].overrides()
                tuned_config = with_overrides(config, tuned_values)
            applied = (config, {}) if stage.name == "tune" else (tuned_config, tuned_values)
            execution = _Execution(stage, *applied, outputs, digests, run_dir, mlflow_run_id)
            manifest = execution.reuse() if use_cache else None
            if manifest is None:
                manifest = execution.run()
                executed.append(stage.name)
            outputs[stage.name] = artifacts.from_description(manifest["output"])
            digests[stage.name] = manifest["output"]["digest"]
            if stage.name == "ingest":  # where the splits were logged as MLflow datasets
                ingest_run = manifest.get("cached_from", manifest)["mlflow_run_id"]
                tracking.link_datasets(ingest_run, mlflow_run_id)
            elif ingest_run is not None:
                tracking.link_datasets(ingest_run, manifest["mlflow_run_id"])
        tracking.set_tags({"executed_stages": ",".join(executed) or "none (all cached)"})
        # The scores on the parent run too, so runs compare in the MLflow UI's run table.
        tracking.log_metrics(_scores(outputs))
    log.info("run %s finished: artifacts in %s, MLflow run %s", run_id, run_dir, mlflow_run_id)
    return PipelineResult(run_id, run_dir, mlflow_run_id, outputs)


def _scores(outputs: dict) -> dict[str, float]:
    """Every number of the run's metrics files, two levels deep, named ``<stage>_<key>[_<key>]``
    (``evaluate_accuracy``, ``evaluate_test_perplexity``, ``backtest_relative_to_...``)."""
    scores = {}
    for stage, output in outputs.items():
        if not isinstance(output, artifacts.Metrics):
            continue
        for key, value in output.load().items():
            values = value.items() if isinstance(value, dict) else [(None, value)]
            for inner, number in values:
                name = f"{stage}_{key}" + (f"_{inner}" if inner else "")
                if isinstance(number, int | float) and not isinstance(number, bool):
                    scores[re.sub(r"[^A-Za-z0-9_.-]", "_", name)] = float(number)
    return scores


class _Execution:
    """One stage in one run: its inputs, its narrowed config, fingerprint and directories."""

    def __init__(
        self, stage, config, tuned: dict, outputs, digests, run_dir: Path, parent_mlflow_run: str
    ):
        """``config`` already holds the ``tuned`` values (key -> value) of the run's tune stage."""
        missing = [name for name in stage.inputs if name not in outputs]
        if missing:
            raise PipelineError(
                f"stage {stage.name} needs the output of {missing}; run the whole pipeline or "
                "pass --from-run with a run that has them"
            )
        self.stage, self.run_dir = stage, run_dir
        self.config = narrowed(config, stage.config_sections, stage.name)
        self.parent_mlflow_run = parent_mlflow_run
        self.inputs = {name: outputs[name] for name in stage.inputs}
        self.input_digests = {name: digests[name] for name in stage.inputs}
        self.stage_config = {
            section: flatten(getattr(config, section)) for section in stage.config_sections
        }
        self.tuned = {
            key: value for key, value in tuned.items() if key.split(".")[0] in stage.config_sections
        }
        self.external = stage.external_state(self.config) if stage.external_state else {}
        self.fingerprint = cache.fingerprint(
            stage.name, self.stage_config, self.input_digests, self.external
        )
        self.final_dir = run_dir / stage.name
        self.partial_dir = run_dir.parent / PARTIAL_DIR / f"{stage.name}-{self.fingerprint[:16]}"

    def reuse(self) -> dict[str, Any] | None:
        """Record a completed execution with the same fingerprint as this run's; None if none."""
        earlier = cache.find(self.run_dir.parent, self.stage.name, self.fingerprint)
        if earlier is None:
            return None
        with tracking.component_run(self.stage.name) as mlflow_run_id:
            tracking.set_tags({"cached": True, "cached_from_mlflow_run": earlier["mlflow_run_id"]})
            manifest = {
                **self._manifest(mlflow_run_id, datetime.now(UTC), 0.0),
                "output": earlier["output"],
                "cached_from": {
                    key: earlier.get("cached_from", {}).get(key, earlier[key])
                    for key in ("run_id", "mlflow_run_id")
                },
            }
            self.final_dir.mkdir()
            self._write_manifest(self.final_dir, manifest)
            tracking.log_artifact(self.final_dir / "manifest.json")
        log.info(
            "stage %s: cached, reusing run %s's %s",
            self.stage.name,
            manifest["cached_from"]["run_id"],
            earlier["output"]["path"],
        )
        return manifest

    def run(self) -> dict[str, Any]:
        stage, partial_dir = self.stage, self.partial_dir
        resumed_from = self._previous_attempt()
        if not stage.resumable:
            shutil.rmtree(partial_dir, ignore_errors=True)
        partial_dir.mkdir(parents=True, exist_ok=True)
        log.info("stage %s: %s", stage.name, "resuming" if resumed_from else "starting")
        started_at, started = datetime.now(UTC), time.perf_counter()
        # Training (the resumable, long stage) records CPU and memory use beside its metrics.
        with tracking.component_run(stage.name, stage.resumable) as mlflow_run_id:
            if resumed_from:
                tracking.end_interrupted_runs(resumed_from)
                tracking.set_tags({"resumed_from_mlflow_runs": ",".join(resumed_from)})
            if self.tuned:  # so a comparison of runs sees the values actually used
                log.info("stage %s uses the tuned values %s", stage.name, self.tuned)
                tracking.log_params(self.tuned)
            if stage.resumable:
                attempt = {"mlflow_run_ids": [self.parent_mlflow_run, mlflow_run_id]}
                (partial_dir / ATTEMPT_FILE).write_text(json.dumps(attempt))
            output = stage.run(
                self.config, self.inputs, partial_dir / _snake(stage.output.__name__)
            )
            if not isinstance(output, stage.output):
                raise PipelineError(
                    f"stage {stage.name} returned {type(output).__name__}, "
                    f"expected {stage.output.__name__}"
                )
            (partial_dir / ATTEMPT_FILE).unlink(missing_ok=True)
            duration = time.perf_counter() - started
            manifest = {
                **self._manifest(mlflow_run_id, started_at, duration),
                "output": output.describe(),
            }
            if output.path.is_relative_to(partial_dir):
                output = dataclasses.replace(
                    output, path=self.final_dir / output.path.relative_to(partial_dir)
                )
                manifest["output"]["path"] = str(output.path)
            if resumed_from:
                manifest["resumed_from_mlflow_runs"] = resumed_from
            # The manifest marks the stage complete, so it goes in before the directory is renamed.
            self._write_manifest(partial_dir, manifest)
            partial_dir.rename(self.final_dir)
            tracking.log_artifact(self.final_dir / "manifest.json")
        log.info("stage %s: done in %.1fs -> %s", stage.name, duration, output.path)
        return manifest

    def _previous_attempt(self) -> list[str]:
        """MLflow run ids of an interrupted attempt at this very execution, if one left its work."""
        attempt = self.partial_dir / ATTEMPT_FILE
        if not (self.stage.resumable and attempt.is_file()):
            return []
        return json.loads(attempt.read_text())["mlflow_run_ids"]

    def _manifest(self, mlflow_run_id: str, started_at: datetime, duration: float) -> dict:
        return {
            "pipeline": self.run_dir.parent.name,
            "run_id": self.run_dir.name,
            "component": self.stage.name,
            "mlflow_run_id": mlflow_run_id,
            "pipeline_mlflow_run_id": self.parent_mlflow_run,
            "fingerprint": self.fingerprint,
            "started_at": started_at.isoformat(timespec="seconds"),
            "duration_s": round(duration, 2),
            "config": self.stage_config,
            "tuned_values": self.tuned,
            "external_state": self.external,
            "inputs": {
                name: {
                    "type": type(artifact).__name__,
                    "path": str(artifact.path),
                    "digest": self.input_digests[name],
                }
                for name, artifact in self.inputs.items()
            },
        }

    @staticmethod
    def _write_manifest(stage_dir: Path, manifest: dict) -> None:
        path = stage_dir / "manifest.json"
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(manifest, indent=2))
        partial.rename(path)


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
