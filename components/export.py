"""Export (Pusher): write a SavedModel for TensorFlow Serving and register the model in MLflow.

The task supplies a ``keras.export.ExportArchive`` whose signatures take raw inputs (preprocessing
is inside the graph). The SavedModel is written to a hidden temporary directory beside the model's
versions with TF Serving warmup requests built from the example inputs, loaded back and made to
answer them, registered in MLflow, and only then renamed to the next integer version, so TF Serving
(which watches ``<serving_dir>/<model_name>/``) never sees a half-written or unverified version.
TF Serving's deployment files beside ``serving_dir`` are then regenerated (serving/deployment.py).
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
import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from components import tracking
from components.artifacts import PushedModel
from components.errors import ConfigError
from serving import deployment

log = logging.getLogger(__name__)

WARMUP_FILE = "tf_serving_warmup_requests"
"""TF Serving replays this file's requests (under ``assets.extra/``) before serving a version."""


@dataclasses.dataclass
class ExportConfig:
    model_name: str = "sentiment"
    """Directory under ``serving_dir`` and name in the MLflow model registry."""
    serving_dir: str = "serving/models"
    """TF Serving model base directory; versions are written as ``<model_name>/<N>/``."""
    register: bool = True
    """Log the SavedModel to MLflow (as a pyfunc over its signature) and register a new version."""
    deployment_files: bool = True
    """After the push, regenerate TF Serving's deployment files (``models.config``, batching and
    monitoring configs, ``docker-compose.yml``) in the parent of ``serving_dir``; see
    serving/README.md."""

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
    outputs = _answer_warmup(_write_warmup(staging, config.model_name, example_inputs), staging)
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
    if config.deployment_files:
        record["deployment_files"] = [str(p) for p in deployment.write_deployment(base.parent)]
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


def _write_warmup(saved_model_dir: Path, model_name: str, example_inputs: dict) -> Path:
    """Write ``assets.extra/tf_serving_warmup_requests``: ``PredictionLog`` records in a TFRecord.

    TF Serving runs them when it loads the version, so the first real requests do not pay for
    tracing and allocation. One request with the first example alone, one with the whole batch:
    the two batch shapes a client most often sends.
    """
    arrays = {name: np.asarray(value) for name, value in example_inputs.items()}
    batch = len(next(iter(arrays.values())))
    path = saved_model_dir / "assets.extra" / WARMUP_FILE
    path.parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for size in sorted({1, batch}):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = "serving_default"
            for name, array in arrays.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(array[:size]))
            warmup = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(warmup.SerializeToString())
    return path


def _answer_warmup(warmup: Path, saved_model_dir: Path) -> dict[str, tf.Tensor]:
    """Call ``serving_default`` on each warmup request, as TF Serving will when it loads the version
    (a version whose warmup fails is not served); returns the last outputs."""
    serve = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
    for record in tf.data.TFRecordDataset(str(warmup)):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        outputs = serve(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    return outputs
