"""The one module that talks to MLflow (but for the per-epoch Keras callback, which lives with
training in components/train.py so that this module needs no TensorFlow).

The runner opens one parent run per pipeline run and a nested run per component; components log
through the helpers below, which do nothing when no run is active, so a component stays a plain
function that tests can call without a tracking server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from components import registry_model
from components.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


EXPERIMENT_KIND = "mlflow.experimentKind"


def configure(experiment: str) -> str:
    """Point MLflow at ``$MLFLOW_TRACKING_URI`` or the local SQLite store; pick the experiment."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    mlflow.set_tracking_uri(uri)
    # When another process creates the experiment between MLflow's lookup and its create,
    # set_experiment returns that experiment without making it active (MLflow 3.17), and this
    # run would land in Default: activate it by id.
    mlflow.set_experiment(experiment_id=mlflow.set_experiment(experiment).experiment_id)
    # MLflow 3's UI opens an experiment without this tag on its GenAI view, not on the runs.
    _again_if_raced(mlflow.set_experiment_tag, EXPERIMENT_KIND, "custom_model_development")
    return uri


def _again_if_raced(write, *args) -> None:
    """A write that MLflow 3.17's SQL store does as look-up-then-insert without a lock (an
    experiment tag, a dataset, an alias): when another process inserts the same row between the
    two, as runs started at once do, the insert fails on the unique key. Again, it finds the row."""
    try:
        write(*args)
    except mlflow.exceptions.MlflowException:
        write(*args)


LOCAL_UI = "http://127.0.0.1:5000"
"""Where ``make mlflow-ui`` serves the UI of a local store."""
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
"""MLflow 3.17's UI opens in its GenAI view unless a link asks for this one (the experiment tag
alone does not do it in a fresh browser: checked in headless Chromium, tests/components)."""


def run_page_url(run_id: str) -> str:
    """The run's page in the MLflow UI: the tracking server's, else the one ``make mlflow-ui``
    starts for the local store."""
    uri = mlflow.get_tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI
    experiment = mlflow.get_run(run_id).info.experiment_id
    return f"{base}/#/experiments/{experiment}/runs/{run_id}?{MODEL_TRAINING_VIEW}"


@contextlib.contextmanager
def pipeline_run(run_name: str, tags: dict[str, str]) -> Iterator[str]:
    """The parent run of one pipeline execution; yields its MLflow run id."""
    with _marking_failure(mlflow.start_run(run_name=run_name, tags=tags)) as run:
        yield run.info.run_id


@contextlib.contextmanager
def component_run(component: str, system_metrics: bool = False) -> Iterator[str]:
    """A nested run for one component; on error it is ended FAILED with the error as a tag.
    ``system_metrics``: CPU, memory and disk use sampled into the run while it lasts."""
    started = mlflow.start_run(run_name=component, nested=True, log_system_metrics=system_metrics)
    with _marking_failure(started) as run:
        mlflow.set_tag("component", component)
        yield run.info.run_id


@contextlib.contextmanager
def _marking_failure(active_run: mlflow.ActiveRun) -> Iterator[mlflow.ActiveRun]:
    with active_run:
        try:
            yield active_run
        except BaseException as error:
            mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
            mlflow.end_run(status="FAILED")
            raise


def active() -> bool:
    return mlflow.active_run() is not None


def log_params(params: dict[str, Any]) -> None:
    if active():
        # MLflow caps a param value at 6000 characters; lists of labels etc. are far below that.
        mlflow.log_params({key: str(value) for key, value in params.items()})


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    if active():
        mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)


def log_figure(figure, artifact_file: str) -> None:
    if active():
        mlflow.log_figure(figure, artifact_file)


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    if active():
        mlflow.log_artifact(str(path), artifact_path)


def log_dict(data: dict, artifact_file: str) -> None:
    if active():
        mlflow.log_dict(data, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    if active():
        mlflow.log_text(text, artifact_file)


def set_tags(tags: dict[str, Any]) -> None:
    if active():
        mlflow.set_tags({key: str(value) for key, value in tags.items()})


def end_interrupted_runs(run_ids: list[str]) -> None:
    """Mark runs still RUNNING (their process was killed, e.g. by SIGKILL) as KILLED."""
    client = mlflow.MlflowClient()
    for run_id in run_ids:
        try:
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, status="KILLED")
        except mlflow.exceptions.MlflowException:
            log.warning("MLflow run %s of the interrupted attempt is gone; not marked", run_id)


def log_dataset(frame, name: str, source: str, context: str, targets: str | None = None) -> None:
    """Record a split as an MLflow dataset input (MLflow computes its digest and schema)."""
    if active():
        with warnings.catch_warnings():
            # MLflow hints about integer label columns and file:// sources; both are intended here.
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(frame, source=source, name=name, targets=targets)
            _again_if_raced(mlflow.log_input, dataset, context)


def link_datasets(from_run: str, to_run: str) -> None:
    """Record ``from_run``'s dataset inputs (ingest's splits) as inputs of ``to_run`` too, so the
    runs that train and score on them (and the pipeline's run) show the data they used."""
    if not active():
        return
    client = mlflow.MlflowClient()
    inputs = client.get_run(from_run).inputs
    if inputs and inputs.dataset_inputs:
        client.log_inputs(to_run, datasets=inputs.dataset_inputs)


# Tuning trials, and reports that read earlier pipeline runs back.


@contextlib.contextmanager
def trial_run(name: str, params: dict[str, Any]) -> Iterator[None]:
    """A run nested in the active one for one tuning trial, its values logged as params; ended
    FAILED on error like a component run. Does nothing when no run is active."""
    if not active():
        yield
        return
    with _marking_failure(mlflow.start_run(run_name=name, nested=True)):
        mlflow.set_tag("trial", name)
        log_params(params)
        yield


def finished_pipeline_runs(experiment: str) -> list[dict[str, Any]]:
    """The pipeline runs of ``experiment`` (in the configured store) that finished, newest first.

    Each is a dict: ``run_id`` (the pipeline's), ``mlflow_run_id``, ``params`` (the resolved
    config; a value a component logged again in its own run, such as a tuned hyperparameter the
    train stage applied, replaces the parent's) and ``metrics`` (what its component runs logged).
    """
    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    children: dict[str, list] = {}
    for run in sorted(runs, key=lambda run: run.info.start_time):
        parent = run.data.tags.get("mlflow.parentRunId")
        children.setdefault(parent, []).append(run)
    summaries = []
    for run in runs:
        if "pipeline" not in run.data.tags:
            continue  # a component, trial or report run
        params, metrics = dict(run.data.params), {}
        for child in children.get(run.info.run_id, []):
            params.update({k: v for k, v in child.data.params.items() if k in params})
            metrics.update(child.data.metrics)
        summaries.append(
            {
                "run_id": run.data.tags.get("run_id", run.info.run_name),
                "mlflow_run_id": run.info.run_id,
                "params": params,
                "metrics": metrics,
            }
        )
    return summaries


@contextlib.contextmanager
def report_run(name: str) -> Iterator[str]:
    """A top-level run for a report over earlier runs, tagged ``report=<name>``."""
    with pipeline_run(name, {"report": name}) as run_id:
        yield run_id


SAVED_MODEL_ARTIFACT = "saved_model"
"""Where a registered model keeps the pushed SavedModel: ``artifacts/saved_model/`` of its files."""


def log_serving_model(
    saved_model_dir: Path,
    served: registry_model.ServingSignatureModel,
    registered_name: str,
    input_example: pd.DataFrame,
    scores: dict[str, float],
) -> tuple[str, int] | None:
    """Log the SavedModel as a pyfunc (with signature and input example); register a version.
    ``served`` is the pyfunc already loaded from ``saved_model_dir``: its answer to the example is
    the signature's output. ``scores`` (the evaluation's numbers) go on the logged model against
    the data set they were measured on, which is how MLflow 3 links a logged model to its
    datasets.

    Returns the model URI and the registered version number (None when no run is active).
    """
    if not active():
        return None
    import tensorflow as tf

    signature = mlflow.models.infer_signature(input_example, served.predict(None, input_example))
    # Logged as ``saved_model``, not under the exporter's ``.staging-<pid>`` folder name: hard
    # links beside it (a hidden folder, so never taken for a version), no copy of the data.
    with tempfile.TemporaryDirectory(dir=Path(saved_model_dir).parent, prefix=".register-") as tmp:
        named = Path(tmp) / SAVED_MODEL_ARTIFACT
        shutil.copytree(saved_model_dir, named, copy_function=os.link)
        info = mlflow.pyfunc.log_model(
            name=registered_name,
            python_model=registry_model.__file__,  # models from code: loads without this project
            artifacts={SAVED_MODEL_ARTIFACT: str(named)},
            signature=signature,
            input_example=input_example,
            registered_model_name=registered_name,
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"tensorflow=={tf.__version__}",
                f"pandas=={pd.__version__}",
                f"numpy=={np.__version__}",
            ],
        )
    _log_model_scores(info.model_id, scores)
    return info.model_uri, int(info.registered_model_version)


def _log_model_scores(model_id: str, scores: dict[str, float]) -> None:
    """Each score on the model, against the active run's evaluation data set: the ``test``
    split's, else its only data set (the sales panel, scored by backtest folds)."""
    client = mlflow.MlflowClient()
    run_id = mlflow.active_run().info.run_id
    inputs = client.get_run(run_id).inputs
    datasets = list(inputs.dataset_inputs) if inputs else []
    tests = [entry for entry in datasets if _context(entry) == "test"]
    evaluated = (tests or datasets)[0].dataset if len(tests or datasets) == 1 else None
    for key, value in scores.items():
        client.log_metric(
            run_id,
            key,
            value,
            model_id=model_id,
            dataset_name=evaluated.name if evaluated else None,
            dataset_digest=evaluated.digest if evaluated else None,
        )


def _context(dataset_input) -> str | None:
    return next((tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"), None)


# Model registry. The ``champion`` alias names the registered version being served: the baseline
# a candidate is judged against, moved by each push and by a rollback. Like the helpers above, these
# do nothing (or return None) when no run is active, so components stay callable without MLflow.

CHAMPION = "champion"


def champion(name: str) -> dict[str, Any] | None:
    """The registered version the ``champion`` alias of ``name`` names (``registered_version``)
    and where export pushed it (``serving_version``, ``serving_path``); None when no run is
    active, ``name`` was never registered or it has no champion."""
    if not active():
        return None
    client = mlflow.MlflowClient()
    try:
        aliases = client.get_registered_model(name).aliases
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if CHAMPION not in aliases:
        return None
    version = client.get_model_version(name, str(aliases[CHAMPION]))
    serving_version = version.tags.get("serving_version")
    return {
        "registered_version": int(version.version),
        "serving_version": int(serving_version) if serving_version else None,
        "serving_path": version.tags.get("serving_path"),
    }


def registered_file(name: str, version: int, relative_path: str) -> dict[str, Any]:
    """A JSON file of the SavedModel that ``log_serving_model`` registered as ``version``, read
    through MLflow (a tracking server's proxied artifacts too), wherever the version was pushed.

    Raises:
        DataError: the file cannot be downloaded or is not JSON.
    """
    client = mlflow.MlflowClient()
    try:
        model_uri = client.get_model_version_download_uri(name, str(version)).rstrip("/")
        uri = f"{model_uri}/artifacts/{SAVED_MODEL_ARTIFACT}/{relative_path}"
        with tempfile.TemporaryDirectory() as folder:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
            return json.loads(Path(local).read_text())
    except (mlflow.exceptions.MlflowException, OSError, ValueError) as error:
        raise DataError(
            f"cannot read {relative_path} of registered version {version} of {name}: {error}"
        ) from error


def registered_version_at(name: str, serving_path: Path) -> int | None:
    """The registered version of ``name`` that was pushed to ``serving_path`` (None: none was)."""
    if not active():
        return None
    found = [
        int(version.version)
        for version in mlflow.MlflowClient().search_model_versions(f"name = '{name}'")
        if version.tags.get("serving_path") == str(serving_path)
    ]
    return max(found, default=None)


def tag_registered_version(name: str, version: int, tags: dict[str, Any]) -> None:
    if active():
        client = mlflow.MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, str(value))


def set_champion(name: str, version: int | None) -> None:
    """Point ``champion`` at ``version``; None removes it (what serves now is not registered)."""
    if not active():
        return
    client = mlflow.MlflowClient()
    if version is not None:
        _again_if_raced(client.set_registered_model_alias, name, CHAMPION, str(version))
        return
    try:
        client.delete_registered_model_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
