"""No network and no data mirror: each pipeline stops within seconds with one DataError that names
the data set, says it could not be downloaded and how to use a local copy; exit status 2, the
ingest stage's MLflow run FAILED. The network is never used: the reachability check is replaced,
and the downloaders fail at once, as they do after minutes of retries offline."""

from __future__ import annotations

import time

import mlflow
import pytest

from components import downloads
from pipelines.__main__ import main
from tests.conftest import CONFIGS


class DownloadAttempted(ConnectionError):
    """What TFDS ends with offline, minus the 3 minutes of retries before it."""


@pytest.fixture
def offline(monkeypatch, tmp_path) -> list[tuple[str, int]]:
    """No mirror, no TFDS copy, every host unreachable; returns the hosts that were checked."""
    import tensorflow_datasets as tfds

    checked: list[tuple[str, int]] = []

    def unreachable(host: str, port: int) -> bool:
        checked.append((host, port))
        return False

    def download(*args, **kwargs):
        raise DownloadAttempted("Failed to resolve 'ai.stanford.edu' (NameResolutionError)")

    monkeypatch.delenv("RNN_DATA_DIR", raising=False)
    monkeypatch.setattr(downloads, "reachable", unreachable)
    monkeypatch.setattr(tfds, "load", download)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: False)
    return checked


def _run(pipeline: str, config: str, tmp_path, *overrides: str) -> int:
    arguments = ["run", pipeline, "--config", str(CONFIGS / config)]
    for override in overrides:
        arguments += ["--set", override]
    return main([*arguments, "--artifacts-root", str(tmp_path / "artifacts")])


def _ingest_run() -> mlflow.entities.Run:
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    (ingest,) = [run for run in runs if run.info.run_name == "ingest"]
    return ingest


@pytest.mark.parametrize(
    ("pipeline", "config", "dataset", "host", "layout"),
    [
        (
            "sentiment",
            "sentiment.smoke.yaml",
            "IMDB reviews (TFDS imdb_reviews) could not be downloaded",
            "ai.stanford.edu",
            "imdb/aclImdb/{train,test}/{pos,neg}/*.txt or imdb/aclImdb_v1.tar.gz",
        ),
        (
            "language_model",
            "language_model.smoke.yaml",
            "Tiny Shakespeare (TFDS tiny_shakespeare) could not be downloaded",
            "raw.githubusercontent.com",
            "tinyshakespeare/input.txt",
        ),
    ],
)
def test_tfds_data_without_network_fails_fast_naming_the_way_out(
    pipeline, config, dataset, host, layout, offline, tmp_path, mlflow_store, capsys
):
    started = time.monotonic()
    assert _run(pipeline, config, tmp_path) == 2
    assert time.monotonic() - started < 60  # the pipeline's imports, not minutes of retries
    error = capsys.readouterr().err
    assert dataset in error and host in error
    assert "$RNN_DATA_DIR (or data.data_dir)" in error and layout in error
    assert offline == [(host, 443)]
    ingest = _ingest_run()
    assert ingest.info.status == "FAILED"
    assert ingest.data.tags["error"].startswith(f"DataError: {dataset}")


def test_ptb_without_network_names_the_mirror_layout(
    offline, monkeypatch, tmp_path, mlflow_store, capsys
):
    import keras

    def download(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", download)
    assert _run("language_model", "language_model.smoke.yaml", tmp_path, "data.corpus=ptb") == 2
    error = capsys.readouterr().err
    assert "could not download Penn Treebank" in error
    assert "ptb/ptb.train.txt, ptb.valid.txt and ptb.test.txt" in error
    assert _ingest_run().info.status == "FAILED"


def test_sales_data_without_mirror_says_it_is_never_downloaded(
    offline, tmp_path, mlflow_store, capsys
):
    assert _run("sales_forecast", "sales_forecast.smoke.yaml", tmp_path) == 2
    error = capsys.readouterr().err
    assert "sales data sales/walmart_recruiting/train.csv not found" in error
    assert "neither ingest.data_dir nor $RNN_DATA_DIR is set" in error
    assert "never downloaded" in error
    assert "sales/walmart_recruiting/features.csv" in error
    assert _ingest_run().info.status == "FAILED"
