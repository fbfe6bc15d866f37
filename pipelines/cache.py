"""Execution cache: a stage's result is reused when its code, config and inputs are unchanged.

The fingerprint of a stage execution hashes the project's source code with the TensorFlow and Keras
versions, the config sections the stage reads, the digests of its input artifacts, and any outside
state the stage declares (e.g. which model is serving). The runner writes it into every manifest; a
later run with the same fingerprint reuses that stage's artifact. Any source change invalidates
every entry, on purpose: a stale artifact costs more than a rerun.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

from components import artifacts

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CODE_PACKAGES = ("components", "pipelines")
"""The packages whose source defines what a stage computes (serving/ only serves the results)."""
LIBRARIES = ("tensorflow", "keras")


@functools.cache
def code_version() -> str:
    """SHA-256 over the project's Python sources and the versions of the numeric libraries."""
    sha = hashlib.sha256()
    for package in CODE_PACKAGES:
        for file in sorted((PROJECT_ROOT / package).rglob("*.py")):
            sha.update(file.relative_to(PROJECT_ROOT).as_posix().encode())
            sha.update(file.read_bytes())
    for library in LIBRARIES:
        sha.update(f"{library}=={metadata.version(library)}".encode())
    return sha.hexdigest()


def fingerprint(
    stage: str,
    config: dict[str, Any],
    input_digests: dict[str, str],
    external_state: dict[str, Any],
) -> str:
    """The cache key of one stage execution."""
    payload = {
        "stage": stage,
        "code": code_version(),
        "config": config,
        "inputs": input_digests,
        "external_state": external_state,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def find(pipeline_dir: Path, stage: str, key: str) -> dict[str, Any] | None:
    """The newest manifest of a completed ``stage`` with fingerprint ``key`` whose artifact is still
    intact (present, same digest), or None."""
    matches = []
    for path in pipeline_dir.glob(f"*/{stage}/manifest.json"):
        manifest = json.loads(path.read_text())
        if manifest.get("fingerprint") == key:
            matches.append(manifest)
    for manifest in sorted(matches, key=lambda m: m["started_at"], reverse=True):
        output = artifacts.from_description(manifest["output"])
        if output.path.is_dir() and output.digest() == manifest["output"]["digest"]:
            return manifest
        log.warning("cached %s artifact %s is missing or was modified; not reused", stage, output)
    return None


def files_state(paths: list[Path]) -> dict[str, list[int]]:
    """Path -> [size, modification time] of every file (directories walked), for the stages that
    read data from outside the artifacts: a new or changed file reruns them, without reading it."""
    files = []
    for path in map(Path, paths):
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    state = {}
    for file in files:
        stat = file.stat() if file.exists() else None
        state[str(file.resolve())] = [stat.st_size, stat.st_mtime_ns] if stat else [-1, -1]
    return state
