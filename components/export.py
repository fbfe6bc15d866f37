"""Export (Pusher): write a blessed model for TensorFlow Serving and register it in MLflow.

Only a model the blessing stage approved is pushed; for any other, push.json records why not and
nothing under ``serving_dir`` changes. The task supplies a function that builds a
``keras.export.ExportArchive`` whose signatures take raw inputs (preprocessing is inside the graph);
it is called only for a push, since building traces every signature. The SavedModel is written to a
hidden staging directory with TF Serving warmup requests built from the example inputs, loaded back
and made to answer them, registered in MLflow (from that same loaded copy), and only then published
as the next integer version, so TF Serving (which watches ``<serving_dir>/<model_name>/``) never
loads a half-written or unverified version. In a local ``serving_dir`` the staging directory sits
beside the versions and publishing is one atomic rename. A ``serving_dir`` URI that ``tf.io.gfile``
handles (``gs://``, ``s3://``, ``hdfs://``) has no directory rename: see ``_publish_to_uri`` for
what is atomic there. The version carries its blessing (``assets.extra/evaluation.json``, also in
the registered model, where the next candidate finds its baseline); its registered MLflow version
becomes the ``champion`` alias only if the champion is still the one the blessing compared with
(another machine may have pushed since). TF Serving's deployment files beside a local
``serving_dir`` are then regenerated (serving/deployment.py); for a URI they are not (they name
local paths).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import posixpath
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from components import registry_model, tracking
from components.artifacts import Blessing, PushedModel, TrainedModel
from components.errors import ConfigError
from components.versions import (
    EVALUATION_FILE,
    child,
    is_uri,
    list_versions,
    next_version,
    read_evaluation,
)

log = logging.getLogger(__name__)

WARMUP_FILE = "tf_serving_warmup_requests"
"""TF Serving replays this file's requests (under ``assets.extra/``) before serving a version."""


@dataclasses.dataclass
class ExportConfig:
    model_name: str = "sentiment"
    """Directory under ``serving_dir`` and name in the MLflow model registry."""
    serving_dir: str = "serving/models"
    """TF Serving model base directory, a local folder or a URI ``tf.io.gfile`` handles
    (``gs://bucket/models``); versions are written as ``<model_name>/<N>/``."""
    register: bool = True
    """Log the SavedModel to MLflow (as a pyfunc over its signature) and register a new version."""
    deployment_files: bool = True
    """After the push, regenerate TF Serving's deployment files (``models.config``, batching and
    monitoring configs, ``docker-compose.yml``) in the parent of ``serving_dir``; see
    serving/README.md. Skipped, with a note in the log, when ``serving_dir`` is a URI."""

    @property
    def model_dir(self) -> Path | str:
        """``<serving_dir>/<model_name>``, where the versions of this model live: an absolute path,
        or a URI string when ``serving_dir`` is one."""
        if is_uri(self.serving_dir):
            return child(self.serving_dir, self.model_name)
        return Path(self.serving_dir).resolve() / self.model_name

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.model_name):
            raise ConfigError(
                f"export.model_name={self.model_name!r} must be letters, digits, '.', '_' or '-'"
            )


def run(
    config: ExportConfig,
    build_archive: Callable[[], keras.export.ExportArchive],
    example_inputs: dict[str, tf.Tensor],
    blessing: Blessing,
    trained: TrainedModel,
    out_dir: Path,
    extra_files: dict[str, str] | None = None,
    *,
    write_deployment: Callable[[Path], list[Path]] | None = None,
) -> PushedModel:
    """Push the archive ``build_archive`` makes of ``trained`` if ``blessing`` approves it and that
    very model is not already the newest version; ``example_inputs`` (one batch per signature
    input) must make it answer.

    ``extra_files`` (name -> text) go to the SavedModel's ``assets.extra/``, which TF Serving
    ignores: the place for what a client needs to know to build a request.
    ``write_deployment`` regenerates TF Serving's files in the parent of the serving directory
    after a push (``serving.deployment.write_deployment``, handed in by the pipeline: components
    do not import ``serving``); it runs when ``config.deployment_files`` is on.
    """
    if not blessing.blessed:
        failed = [reason for reason in blessing.load()["reasons"] if reason.endswith("FAIL")]
        reason = f"not blessed: {'; '.join(failed)}"
        log.warning("%s is not pushed, %s", config.model_name, reason)
        record = {"pushed": False, "model_name": config.model_name, "reason": reason}
        return _record(out_dir, record)
    base = config.model_dir
    model_digest = trained.digest()
    if (serving := _newest_version_of(base, model_digest)) is not None:
        # A rerun of an unchanged pipeline (blessed against itself) must not add a copy.
        reason = f"this trained model already serves as version {serving}"
        log.info("%s is not pushed: %s", config.model_name, reason)
        record = {"pushed": False, "model_name": config.model_name, "reason": reason}
        return _record(out_dir, {**record, "serving_version": serving})
    evaluation = {**blessing.load(), "model_digest": model_digest}
    extra_files = {**(extra_files or {}), EVALUATION_FILE: json.dumps(evaluation, indent=2)}
    # A URI's staging is local (verified and registered here), then copied: see _publish_to_uri.
    staging_parent = out_dir if is_uri(base) else base
    staging, served = _verified_staging(
        build_archive(), staging_parent, config.model_name, example_inputs, extra_files
    )
    record = {"pushed": True, "model_name": config.model_name, "serving_dir": str(base)}
    registered = None
    if config.register and (
        logged := _register(
            staging, served, config.model_name, example_inputs, evaluation["metrics"]
        )
    ):
        record["mlflow_model_uri"], registered = logged
    with _push_lock(base):
        champion_now, moved = _champion_moved(config.model_name, evaluation.get("baseline"))
        if moved:
            return _held_back(config, staging, registered, champion_now, moved, out_dir)
        # Publishing is the last step: only a verified, registered SavedModel becomes a version.
        if is_uri(base):
            version_dir = _publish_to_uri(staging, base)
        else:
            version_dir = _rename_to_next_version(staging, base)
        record.update(
            version=int(PurePosixPath(str(version_dir)).name),
            path=str(version_dir),
            registered_version=registered,
        )
        serving = {"serving_version": record["version"], "serving_path": version_dir}
        if registered is not None:
            # The data set travels with the registered version: a model name is one data set's.
            dataset = {"dataset": evaluation["dataset"]} if evaluation.get("dataset") else {}
            tracking.tag_registered_version(config.model_name, registered, {**serving, **dataset})
        record.update(_move_champion(config.model_name, registered, evaluation.get("baseline")))
    if config.deployment_files and write_deployment is not None:
        if is_uri(base):
            log.info("TF Serving's deployment files name local paths: none written for %s", base)
        else:
            record["deployment_files"] = [str(p) for p in write_deployment(base.parent)]
    tracking.set_tags(serving)
    return _record(out_dir, record)


def _move_champion(name: str, registered: int | None, baseline: dict | None) -> dict:
    """Make ``registered`` (None: what serves is not registered) the champion, what the next
    candidate is judged against, if the champion is still the one the blessing compared with;
    returns what push.json records about it."""
    blessed_against = (baseline or {}).get("registered_version")
    current = tracking.champion(name)
    champion_now = current and current["registered_version"]
    if champion_now != blessed_against:
        reason = (
            f"the champion of {name} is {_named(champion_now)}, not {_named(blessed_against)} as "
            "when this model was blessed (a push or rollback since, maybe from another machine): "
            "alias not moved; run the pipeline again to judge this model against the champion"
        )
        log.warning("%s", reason)
        return {"champion": champion_now, "champion_not_moved": reason}
    tracking.set_champion(name, registered)
    return {"champion": registered}


def _champion_moved(name: str, baseline: dict | None) -> tuple[int | None, str | None]:
    """The champion now, and why this model may not take the default traffic when it is not
    the one the blessing compared with (None when it is)."""
    blessed_against = (baseline or {}).get("registered_version")
    current = tracking.champion(name)
    champion_now = current and current["registered_version"]
    if champion_now == blessed_against:
        return champion_now, None
    return champion_now, (
        f"the champion of {name} is {_named(champion_now)}, not {_named(blessed_against)} as "
        "when this model was blessed (a push or rollback since, maybe by a run started at the "
        "same time): not published as a version, so unversioned requests keep reaching the "
        "champion; run the pipeline again to judge this model against it"
    )


def _held_back(
    config: ExportConfig,
    staging: Path,
    registered: int | None,
    champion_now: int | None,
    reason: str,
    out_dir: Path,
) -> PushedModel:
    """A model never judged against the current champion: registered (and tagged why) but not
    a version directory, since the highest one answers every request that names no version."""
    log.warning("%s is not published: %s", config.model_name, reason)
    shutil.rmtree(staging, ignore_errors=True)
    if registered is not None:
        tracking.tag_registered_version(config.model_name, registered, {"not_served": reason})
    record = {"pushed": False, "model_name": config.model_name, "reason": reason}
    record.update(registered_version=registered, champion=champion_now)
    return _record(out_dir, {**record, "champion_not_moved": reason})


PUSH_LOCK = ".push.lock"
"""The lock file in a local serving folder (TF Serving reads numeric version folders only)."""


@contextlib.contextmanager
def _push_lock(base: Path | str) -> Iterator[None]:
    """Pushes to one local serving folder one at a time, so that checking the champion,
    publishing and moving the alias cannot interleave with another run's (a URI has no lock:
    there the check before publishing narrows the race, ``_move_champion`` still guards the
    alias)."""
    if is_uri(base):
        yield
        return
    Path(base).mkdir(parents=True, exist_ok=True)
    with open(Path(base) / PUSH_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _named(registered: int | None) -> str:
    return "none" if registered is None else f"registered version {registered}"


def _verified_staging(
    archive: keras.export.ExportArchive,
    parent: Path,
    model_name: str,
    example_inputs: dict[str, tf.Tensor],
    extra_files: dict[str, str],
) -> tuple[Path, registry_model.ServingSignatureModel]:
    """The SavedModel written to a hidden directory under ``parent`` with its extra files and
    warm-up requests, and loaded back, answering them: not yet a version TF Serving would load."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    archive.write_out(str(staging), verbose=False)
    for name, text in extra_files.items():
        (staging / "assets.extra").mkdir(exist_ok=True)
        (staging / "assets.extra" / name).write_text(text)
    warmup = _write_warmup(staging, model_name, example_inputs)
    served = registry_model.ServingSignatureModel().load(str(staging))
    outputs = _answer_warmup(warmup, served.serving_default)
    log.info(
        "exported model answers with outputs %s", {k: v.shape.as_list() for k, v in outputs.items()}
    )
    return staging, served


def _newest_version_of(base: Path | str, model_digest: str) -> int | None:
    """The newest served version if its evaluation.json names the trained model ``model_digest``."""
    versions = list_versions(base)
    if not versions:
        return None
    recorded = read_evaluation(child(base, str(versions[-1])))
    return versions[-1] if recorded.get("model_digest") == model_digest else None


def _register(
    staging: Path,
    served: registry_model.ServingSignatureModel,
    model_name: str,
    example_inputs: dict,
    metrics: dict,
) -> tuple[str, int] | None:
    # Plain strings, not bytes: the registry shows a readable example and a `string` schema.
    input_example = pd.DataFrame(
        {k: [_plain(v) for v in t.numpy().tolist()] for k, t in example_inputs.items()}
    )
    scores = {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return tracking.log_serving_model(staging, served, model_name, input_example, scores)


def _plain(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _record(out_dir: Path, record: dict) -> PushedModel:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "push.json").write_text(json.dumps(record, indent=2))
    tracking.log_dict(record, "push.json")
    return PushedModel(out_dir)


def _rename_to_next_version(staging: Path, base: Path) -> Path:
    """Move ``staging`` to the next version number (safe against a concurrent push)."""
    while True:
        target = base / str(next_version(base))
        try:
            staging.rename(target)
            return target
        except OSError:
            if not target.exists():
                raise


def _publish_to_uri(staging: Path, base: str) -> str:
    """Copy the verified local ``staging`` to the next version under the URI ``base``.

    Object stores have no directory rename, so what is atomic is each file: the files are copied
    into a hidden ``.staging-<id>`` folder (never listed as a version), then renamed one by one
    into ``<N>/`` with ``saved_model.pb`` last. ``<N>/`` appears with its first file; a server
    that polls in between finds no saved_model.pb and fails that load (TF Serving retries it),
    but never loads part of a model. Two machines publishing at once may both pick ``N``: the
    number is not reserved as a local rename reserves it.
    """
    files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    files.sort(key=lambda name: name == "saved_model.pb")
    hidden = child(base, f".staging-{uuid.uuid4().hex}")
    for name in files:
        tf.io.gfile.makedirs(posixpath.dirname(f"{hidden}/{name}"))
        tf.io.gfile.copy(str(staging / name), f"{hidden}/{name}", overwrite=True)
    version_dir = child(base, str(next_version(base)))
    for name in files:
        tf.io.gfile.makedirs(posixpath.dirname(f"{version_dir}/{name}"))
        tf.io.gfile.rename(f"{hidden}/{name}", f"{version_dir}/{name}")
    if tf.io.gfile.exists(hidden):  # an object store may keep no empty folder
        tf.io.gfile.rmtree(hidden)
    shutil.rmtree(staging)
    return version_dir


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


def _answer_warmup(warmup: Path, serve: Callable) -> dict[str, tf.Tensor]:
    """Call ``serve`` (the loaded ``serving_default``) on each warmup request, as TF Serving will
    when it loads the version (a version whose warmup fails is not served); the last outputs."""
    for record in tf.data.TFRecordDataset(str(warmup)):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        outputs = serve(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
    return outputs
