"""Training on several workers: real worker processes on loopback ports, tiny data and model."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest

from components.errors import PipelineError
from pipelines import registry, workers
from pipelines.__main__ import main
from tests.conftest import (
    REPOSITORY,
    SHOP_INGEST,
    synthetic_reviews,
    wait_for_epochs,
    write_shop_sales,
)

# SGD, no dropout, and global batches made of the same examples for any worker count (block k
# of every shard): one and two workers differ only in the order of float additions.
CONFIG = """
data: {format: table, train: reviews.csv, test: null, test_fraction: 0.2, text_column: text,
       label_column: label, label_names: [negative, positive], name: tiny_reviews}
ingest: {validation_fraction: 0.2}
preprocess: {vocabulary_size: 100, sequence_length: 20, train_shards: 4}
model: {cell: gru, bidirectional: false, embedding_dim: 8, units: 4, dropout: 0.0}
train: {epochs: 3, batch_size: 16, optimizer: sgd, learning_rate: 0.5, early_stopping_patience: 3}
"""


@pytest.fixture
def run_arguments(tmp_path, mlflow_store, monkeypatch):
    """``python -m pipelines run`` arguments for the tiny config, artifacts under ``name``."""
    reviews = [(text, ["negative", "positive"][label]) for text, label in synthetic_reviews(200)]
    pd.DataFrame(reviews, columns=["text", "label"]).to_csv(tmp_path / "reviews.csv", index=False)
    (tmp_path / "workers.yaml").write_text(CONFIG)
    # The workers are subprocesses started in tmp_path: they import this checkout's code.
    python_path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", python_path)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")

    def arguments(name: str, *settings: str) -> list[str]:
        result = ["sentiment", "--config", str(tmp_path / "workers.yaml"), "--until", "train"]
        result += ["--artifacts-root", str(tmp_path / name)]
        for setting in (f"data.data_dir={tmp_path}", *settings):
            result += ["--set", setting]
        return result

    return arguments


@pytest.mark.parametrize(
    "cluster, chief",
    [
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
        (
            {
                "cluster": {"chief": ["a:1"], "worker": ["b:1"]},
                "task": {"type": "worker", "index": 0},
            },
            False,
        ),
        (
            {
                "cluster": {"chief": ["a:1"], "worker": ["b:1"]},
                "task": {"type": "chief", "index": 0},
            },
            True,
        ),
    ],
)
def test_the_chief_is_the_chief_task_else_worker_0(cluster, chief):
    assert workers._is_chief(cluster) is chief


def test_local_cluster_gives_each_worker_its_index_and_its_own_port():
    configs = workers.local_cluster(3)
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(c["cluster"]["worker"] == addresses for c in configs)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]


def test_outside_a_cluster_the_run_is_unchanged(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = registry.resolve_config("sentiment", None, None, [])
    stages = registry.get("sentiment").stages
    with workers.worker_role(config, stages, tmp_path, None) as role:
        assert role == (stages, tmp_path, True)


@pytest.mark.parametrize(
    "overrides, only, message",
    [
        ([], None, "run with --set train.distribution=multi_worker"),
        (["train.distribution=multi_worker"], "train", "drop --stage and --tune"),
    ],
)
def test_a_cluster_worker_runs_the_whole_pipeline_with_multi_worker(
    monkeypatch, tmp_path, overrides, only, message
):
    monkeypatch.setenv("TF_CONFIG", json.dumps(workers.local_cluster(2)[1]))
    config = registry.resolve_config("sentiment", None, None, overrides)
    role = workers.worker_role(config, registry.get("sentiment").stages, tmp_path, only)
    with pytest.raises(PipelineError, match=message):
        role.__enter__()


def test_a_failing_worker_stops_the_launch_and_is_named(monkeypatch, caplog):
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))
    assert workers.launch(2, ["no_such_pipeline"]) == 1
    assert "(exit code 2); stopping the others" in caplog.text


def trained_model(artifacts_root: Path) -> Path:
    (run,) = (artifacts_root / "sentiment").glob("2*")  # one run: the chief's
    return run / "train" / "trained_model"


@pytest.mark.e2e
def test_two_workers_train_as_one_does_and_only_the_chief_keeps_anything(run_arguments, tmp_path):
    assert workers.main(["--workers", "2", *run_arguments("two")]) == 0
    two = trained_model(tmp_path / "two")
    runs = mlflow.search_runs(experiment_names=["sentiment"], output_format="list")
    assert len([run for run in runs if "mlflow.parentRunId" not in run.data.tags]) == 1

    # One worker in this process (no TF_CONFIG: a cluster of one) on the same global batches.
    assert main(["run", *run_arguments("one", "train.distribution=multi_worker")]) == 0
    one = trained_model(tmp_path / "one")
    # Only the order of float additions differs (measured: 5e-8 relative, weights 6e-8 apart).
    assert_trained_alike(one, two, ("loss", "val_loss", "accuracy", "val_accuracy"))


def assert_trained_alike(one: Path, two: Path, metrics: tuple[str, ...]) -> None:
    """The 2-worker model ``two`` learned what the 1-worker ``one`` did: the same per-epoch
    ``metrics`` and weights, with two replicas in sync (not a lone chief training alone)."""
    expected, got = (json.loads((m / "history.json").read_text()) for m in (one, two))
    for name in metrics:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, err_msg=name)
    assert expected["loss"][-1] < expected["loss"][0]  # it did learn: the match is not trivial
    one_weights = keras.saving.load_model(one / "model.keras").get_weights()
    two_weights = keras.saving.load_model(two / "model.keras").get_weights()
    for a, b in zip(two_weights, one_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    replicas = [
        json.loads((m / "training.json").read_text())["replicas_in_sync"] for m in (one, two)
    ]
    assert replicas == [1, 2]


# The other applications, as tiny and as deterministic (no dropout). The language model's 8
# streams are 4 per worker on two; the shop's windows do not fill the last global batch, and its
# run goes on to the backtest, whose fold the chief retrains alone once the other worker is gone.
APPLICATIONS = {
    "language_model": """
data: {corpus: text, path: corpus.txt}
tokenize: {level: char}
model: {cell: lstm, layers: 1, embedding_dim: 8, units: 8, dropout: 0.0}
windows: {num_steps: 8, stateful: true}
train: {epochs: 3, batch_size: 8, optimizer: sgd, learning_rate: 1.0, clipnorm: null,
        global_clipnorm: 5.0, early_stopping_patience: 3}
evaluate: {sample_tokens: 10}
""",
    "sales_forecast": """
windows: {lookback: 52, horizon: 4}
model: {cell: gru, architecture: direct, units: 4, dropout: 0.0}
ensemble: {members: [], seeds: 1}
train: {epochs: 3, batch_size: 16, learning_rate: 0.01, early_stopping_patience: 3}
backtest: {folds: 2}
baselines: {names: [seasonal_naive]}
""",
}
UNTIL = {"language_model": "train", "sales_forecast": "backtest"}


@pytest.fixture
def application_arguments(tmp_path, mlflow_store, monkeypatch):
    """``python -m pipelines run`` arguments for an application's tiny config and data."""
    words = np.random.default_rng(0).choice(["to", "be", "or", "not", "that", "is"], 900)
    (tmp_path / "corpus.txt").write_text(" ".join(words))
    write_shop_sales(tmp_path, series=4, weeks=80)
    python_path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", python_path)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")

    def arguments(pipeline: str, name: str, *settings: str, until: str | None = None) -> list[str]:
        (tmp_path / f"{pipeline}.yaml").write_text(APPLICATIONS[pipeline])
        data = (
            [f"data.path={tmp_path / 'corpus.txt'}"]
            if pipeline == "language_model"
            else [f"{key}={value}" for key, value in SHOP_INGEST.items()]
            + [f"ingest.data_dir={tmp_path}"]
        )
        result = [pipeline, "--config", str(tmp_path / f"{pipeline}.yaml")]
        result += ["--until", until or UNTIL[pipeline]]
        result += ["--artifacts-root", str(tmp_path / name)]
        for setting in (*data, *settings):
            result += ["--set", setting]
        return result

    return arguments


@pytest.mark.e2e
@pytest.mark.parametrize("pipeline", list(APPLICATIONS))
def test_every_application_trains_on_two_workers_as_on_one(
    application_arguments, tmp_path, pipeline
):
    assert workers.main(["--workers", "2", *application_arguments(pipeline, "two")]) == 0
    # One worker in this process (no TF_CONFIG: a cluster of one) on the same global batches.
    one_worker = application_arguments(pipeline, "one", "train.distribution=multi_worker")
    assert main(["run", *one_worker]) == 0
    one_run, two_run = (next((tmp_path / name / pipeline).glob("2*")) for name in ("one", "two"))
    one, two = (run / "train" / "trained_model" for run in (one_run, two_run))
    assert_trained_alike(one, two, ("loss", "val_loss"))  # the sentiment test's tolerance
    if pipeline == "sales_forecast":
        fold = two_run / "backtest" / "metrics" / "fold_1" / "train" / "training.json"
        assert json.loads(fold.read_text())["replicas_in_sync"] == 1


@pytest.mark.e2e
def test_a_killed_worker_fails_the_run_and_a_rerun_resumes(run_arguments, tmp_path):
    epochs = 5
    arguments = run_arguments(
        "runs", f"train.epochs={epochs}", f"train.early_stopping_patience={epochs}"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-m", "pipelines.workers", "--workers", "2", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    pipeline_dir = tmp_path / "runs" / "sentiment"
    try:
        wait_for_epochs(launcher, pipeline_dir, epochs=2)
        (second,) = [w for w in psutil.Process(launcher.pid).children() if is_worker(w, 1)]
        second.send_signal(signal.SIGKILL)
        _, errors = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode == 1
    assert "worker 1" in errors and "SIGKILL" in errors and "stopping the others" in errors
    (killed_run,) = pipeline_dir.glob("2*")
    assert not (killed_run / "train").exists()  # no half-written artifact

    assert workers.main(["--workers", "2", *arguments]) == 0
    rerun = max(pipeline_dir.glob("2*"))
    summary = json.loads((rerun / "train" / "trained_model" / "training.json").read_text())
    assert summary["resumed_after_epoch"] >= 2 and summary["epochs_run"] == epochs


@pytest.mark.e2e
def test_a_killed_ensemble_resumes_with_every_worker_on_the_same_member(
    application_arguments, tmp_path
):
    """Only the chief has the finished member's files: on a rerun every worker retrains it, then
    they resume the member the kill interrupted from the chief's backup, Adam's slots and all."""
    epochs = 20  # long enough for the kill to land in the second member
    settings = (
        "ensemble.seeds=2",
        f"train.epochs={epochs}",
        f"train.early_stopping_patience={epochs}",
    )
    arguments = application_arguments("sales_forecast", "runs", *settings, until="train")
    command = [sys.executable, "-m", "pipelines.workers", "--workers", "2", *arguments]
    pipeline_dir = tmp_path / "runs" / "sales_forecast"
    with launched(command) as launcher:
        deadline = time.monotonic() + 300
        while not any(
            len(log.read_text().splitlines()) > 2  # a header, then two epochs
            for log in pipeline_dir.glob(".partial/train-*/trained_model/member_1/epochs.csv")
        ):
            assert launcher.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        (second,) = [w for w in psutil.Process(launcher.pid).children() if is_worker(w, 1)]
        second.send_signal(signal.SIGKILL)
        assert launcher.wait(120) == 1

    with launched(command) as rerun:
        assert rerun.wait(300) == 0
    members = max(pipeline_dir.glob("2*")) / "train" / "trained_model"
    first, second = (
        json.loads((members / f"member_{i}" / "training.json").read_text()) for i in (0, 1)
    )
    assert first["resumed_after_epoch"] == 0 and first["epochs_run"] == epochs  # retrained
    assert second["resumed_after_epoch"] >= 2 and second["epochs_run"] == epochs


@contextlib.contextmanager
def launched(command: list[str]) -> Iterator[subprocess.Popen]:
    """The launcher running ``command``; stopped with its workers (SIGTERM) if still running."""
    launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield launcher
    finally:
        launcher.terminate()
        launcher.wait()


def is_worker(process: psutil.Process, index: int) -> bool:
    return (
        json.loads(process.environ().get("TF_CONFIG", "{}")).get("task", {}).get("index") == index
    )


@pytest.mark.parametrize(
    "launcher",
    [
        ["-m", "pipelines.workers", "--workers", "2", "sentiment"],
        ["-m", "pipelines", "run", "sentiment", "--tune", "--tune-workers", "2"],
    ],
    ids=["training", "tuning"],
)
def test_a_launcher_stopped_with_sigterm_stops_its_workers(launcher, tmp_path):
    command = [sys.executable, *launcher, "--artifacts-root", str(tmp_path / "runs")]
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.DEVNULL)
    launcher_process = psutil.Process(process.pid)
    deadline = time.monotonic() + 60
    while len(children := launcher_process.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(children) >= 2, "the launcher started no workers"
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) != 0
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"workers left running: {alive}"


def test_pinned_commands_cycle_over_the_usable_cores():
    cores = sorted(os.sched_getaffinity(0))
    assert workers.on_core(["python"], 0, pin=False) == ["python"]
    pinned = [workers.on_core(["python"], index, pin=True) for index in range(len(cores) + 1)]
    assert [command[2] for command in pinned] == [str(core) for core in [*cores, cores[0]]]
    assert all(command[:2] == ["taskset", "-c"] and command[3:] == ["python"] for command in pinned)
