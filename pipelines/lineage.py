"""Lineage: which data, config, runs and upstream artifacts produced an artifact or served version.

No separate metadata store: the runner's manifests name every input by path and digest, and the
export stage's push record names the serving version it wrote. Following inputs back from any
artifact, or from ``serving/models/<name>/<version>``, gives the chain down to the ingested data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.errors import DataError

SUMMARY_FILES = ("statistics.json", "training.json", "metrics.json", "blessing.json", "push.json")
"""Files whose top-level scalars describe an artifact in the printed chain."""


def run(target: Path, artifacts_root: Path) -> list[dict[str, Any]]:
    """The manifests of ``target``'s producer and of everything upstream, data first.

    Raises:
        DataError: no manifest under ``artifacts_root`` produced ``target``.
    """
    producers = _producers(Path(artifacts_root))
    target = Path(target).resolve()
    manifest = _producer_of(target, producers)
    if manifest is None:
        raise DataError(
            f"no pipeline run under {artifacts_root}/ produced {target}; pass an artifact, a "
            "stage directory or an exported version directory (serving/models/<name>/<version>)"
        )
    chain: list[dict[str, Any]] = []
    _walk(manifest, producers, chain)
    return chain


def format_chain(chain: list[dict[str, Any]]) -> str:
    """One block per stage, data first: artifact, digest, runs, config and a summary."""
    blocks = []
    for manifest in chain:
        output = manifest["output"]
        lines = [
            f"{manifest['component']}: {output['type']} {output['path']}",
            f"  digest {output['digest'][:16]}  run {manifest['run_id']}  "
            f"({manifest['duration_s']} s, started {manifest['started_at']})",
            f"  MLflow: component run {manifest['mlflow_run_id']}, "
            f"pipeline run {manifest.get('pipeline_mlflow_run_id', '?')}",
        ]
        for name, artifact in manifest["inputs"].items():
            lines.append(f"  input {name}: {artifact['type']} digest {artifact['digest'][:16]}")
        if not manifest["inputs"]:
            for section, values in manifest["config"].items():
                settings = ", ".join(f"{k}={v}" for k, v in values.items() if v not in (None, []))
                lines.append(f"  config {section}: {settings}")
        lines += _outside_inputs(manifest.get("external_state", {}))
        for name, summary in _summaries(Path(output["path"])).items():
            lines.append(f"  {name}: {summary}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _producers(artifacts_root: Path) -> dict[Path, dict[str, Any]]:
    """Resolved artifact path -> the manifest of the execution that wrote it (cache hits skipped);
    a push also maps the serving version directory it wrote."""
    producers = {}
    for path in sorted(artifacts_root.glob("*/*/*/manifest.json")):
        manifest = json.loads(path.read_text())
        if "cached_from" in manifest:
            continue
        output = Path(manifest["output"]["path"]).resolve()
        producers[output] = producers[path.parent.resolve()] = manifest
        record = output / "push.json"
        push = json.loads(record.read_text()) if record.is_file() else {}
        if push and push.get("pushed", True):
            producers[Path(push["path"]).resolve()] = manifest
    return producers


def _producer_of(target: Path, producers: dict[Path, dict]) -> dict[str, Any] | None:
    """The producer of ``target`` itself, or of the artifact that contains it (the deepest one)."""
    containing = [path for path in producers if target == path or target.is_relative_to(path)]
    return producers[max(containing, key=lambda p: len(p.parts))] if containing else None


def _walk(manifest: dict, producers: dict[Path, dict], chain: list[dict]) -> None:
    """Depth-first over inputs, appending each execution once, after everything it depends on."""
    for artifact in manifest["inputs"].values():
        upstream = producers.get(Path(artifact["path"]).resolve())
        if upstream is not None and upstream not in chain:
            _walk(upstream, producers, chain)
    if manifest not in chain:
        chain.append(manifest)


def _outside_inputs(state: dict[str, Any]) -> list[str]:
    """What a stage read from outside the artifacts: data files (path -> [size, mtime]), the
    language model a classifier started from, the model serving when it was blessed..."""
    lines = []
    for key, value in state.items():
        if isinstance(value, list) and len(value) == 2:
            lines.append(f"  data file {key}: {value[0]:,} bytes")
        else:
            lines.append(f"  {key}: {value}")
    return lines


def _summaries(artifact_dir: Path) -> dict[str, str]:
    summaries = {}
    for name in SUMMARY_FILES:
        path = artifact_dir / name
        if path.is_file():
            content = json.loads(path.read_text())
            summary = ", ".join(
                f"{key}={_short(value)}"
                for key, value in content.items()
                if isinstance(value, str | int | float | bool)
                or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            )
            if summary:
                summaries[name] = summary
    return summaries


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)
