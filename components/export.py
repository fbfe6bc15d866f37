"""Export (Pusher): write a SavedModel for TensorFlow Serving and register the model in MLflow.

The task supplies a ``keras.export.ExportArchive`` whose signatures take raw inputs (preprocessing
is inside the graph). The SavedModel is written to a hidden temporary directory beside the model's
versions, loaded back and called once, registered in MLflow, and only then renamed to the next
integer version, so TF Serving (which watches ``<serving_dir>/<model_name>/``) never sees a
half-written or unverified version.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from pathlib import Path

import keras
import pandas as pd
import tensorflow as tf

from components import tracking
from components.artifacts import PushedModel
from components.errors import ConfigError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ExportConfig:
    model_name: str = "sentiment"
    """Directory under ``serving_dir`` and name in the MLflow model registry."""
    serving_dir: str = "serving/models"
    """TF Serving model base directory; versions are written as ``<model_name>/<N>/``."""
    register: bool = True
    """Log the SavedModel to MLflow (as a pyfunc over its signature) and register a new version."""

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.model_name):
            raise ConfigError(
                f"export.model_name={self.model_name!r} must be letters, digits, '.', '_' or '-'"
            )


def run(
    config: ExportConfig,
    archive: keras.export.ExportArchive,
    example_inputs: dict[str, tf.Tensor],
    out_dir: Path,
    extra_files: dict[str, str] | None = None,
) -> PushedModel:
    """Push ``archive``; ``example_inputs`` (one batch per signature input) must make it answer.

    ``extra_files`` (name -> text) go to the SavedModel's ``assets.extra/``, which TF Serving
    ignores: the place for what a client needs to know to build a request.
    """
    base = Path(config.serving_dir).resolve() / config.model_name
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    archive.write_out(str(staging), verbose=False)
    for name, text in (extra_files or {}).items():
        (staging / "assets.extra").mkdir(exist_ok=True)
        (staging / "assets.extra" / name).write_text(text)
    outputs = tf.saved_model.load(str(staging)).signatures["serving_default"](**example_inputs)
    log.info(
        "exported model answers with outputs %s", {k: v.shape.as_list() for k, v in outputs.items()}
    )
    record = {"model_name": config.model_name, "serving_dir": str(base)}
    if config.register:
        input_example = pd.DataFrame({k: v.numpy().tolist() for k, v in example_inputs.items()})
        record["mlflow_model_uri"] = tracking.log_serving_model(
            staging, config.model_name, input_example
        )
    # Renaming is the last step: only a verified, registered SavedModel becomes a servable version.
    version_dir = _rename_to_next_version(staging, base)
    record.update(version=int(version_dir.name), path=str(version_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "push.json").write_text(json.dumps(record, indent=2))
    tracking.log_dict(record, "push.json")
    tracking.set_tags({"serving_version": record["version"], "serving_path": version_dir})
    return PushedModel(version_dir)


def _rename_to_next_version(staging: Path, base: Path) -> Path:
    """Move ``staging`` to the lowest free version above every existing one (safe against races)."""
    while True:
        versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
        target = base / str(max(versions, default=0) + 1)
        try:
            staging.rename(target)
            return target
        except OSError:
            if not target.exists():
                raise
