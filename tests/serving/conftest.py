"""Exported models for the server and client tests (built once per session), and HTTP helpers.

``sentiment``: the ``tiny_sentiment`` GRU through the real export stage. ``lm_char``: a one-epoch
language-model pipeline run on a repeated pattern (``serving_default`` and ``generate``). ``shop``:
a one-epoch sales pipeline run on ``write_shop_sales`` data (raw history in, ``forecast`` out).
``toy``: a hand-written SavedModel with several typed inputs and outputs, ``classify`` and
``regress`` signatures, built in a second.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path

import mlflow
import pytest
import tensorflow as tf

from components import export
from components.artifacts import StackedModel, TrainedModel
from components.text_classification import signatures
from pipelines.__main__ import main
from tests.conftest import CONFIGS, SHOP_INGEST, built_once, write_blessing, write_shop_sales

LM_SMOKE = CONFIGS / "language_model.smoke.yaml"


class Toy(tf.Module):
    """Typed inputs (float [None, 3], int64 [None], string [None]) and every output kind."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="x"),
            tf.TensorSpec([None], tf.int64, name="k"),
            tf.TensorSpec([None], tf.string, name="word"),
        ]
    )
    def predict(self, x, k, word):
        total = tf.reduce_sum(x, axis=1) + tf.cast(k, tf.float32)
        return {
            "total": total,
            "shout": tf.strings.upper(word),
            "word_bytes": word,
            "big": total > 10.0,
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        x = tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([], tf.float32)})["x"]
        classes = tf.tile(tf.constant([["no", "yes"]]), [tf.shape(inputs)[0], 1])
        return {"classes": classes, "scores": tf.stack([1 - tf.sigmoid(x), tf.sigmoid(x)], 1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        features = {
            "x": tf.io.FixedLenFeature([], tf.float32),
            "offset": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
        }
        parsed = tf.io.parse_example(inputs, features)
        return {"outputs": 2.0 * parsed["x"] + parsed["offset"]}


def save_toy(path: Path) -> Path:
    toy = Toy()
    signatures = {"serving_default": toy.predict, "classify_x": toy.classify}
    tf.saved_model.save(toy, str(path), signatures={**signatures, "regress_x": toy.regress})
    return path


@pytest.fixture(scope="session")
def exported_models(request, tmp_path_factory) -> Path:
    """``<root>/models/{sentiment,lm_char,shop,toy}/1``, never changed by a test (copy it first).

    ``<root>/shop.csv`` is the sales history ``shop`` was trained on. Built once per test run
    (a minute and a half of training), whichever process needs it first."""
    build = partial(_build_exported_models, request)
    return built_once(tmp_path_factory, "served", build) / "models"


def _build_exported_models(request, root: Path) -> Path:
    tiny_sentiment = request.getfixturevalue("tiny_sentiment")
    models = root / "models"
    # Served as the default config builds it: the recurrent and n-gram branches stacked.
    archive = partial(
        signatures.serving_archive,
        tiny_sentiment["train"],
        tiny_sentiment["preprocess"],
        0.5,
        stacked=tiny_sentiment["stack"],
    )
    config = export.ExportConfig(model_name="sentiment", serving_dir=str(models), register=False)
    examples = {"text": tf.constant(signatures.SAMPLE_REVIEWS)}
    blessing = write_blessing(root / "bless")
    export.run(config, archive, examples, blessing, tiny_sentiment["train"], root / "push")
    _train_language_model(root, models)
    _train_sales_model(root, models)
    save_toy(models / "toy" / "1")
    return models


def _train_language_model(root: Path, models: Path) -> None:
    corpus = root / "pattern.txt"
    corpus.write_text("abcdefgh\n" * 400)
    settings = {
        "data.corpus": "text",
        "data.path": str(corpus),
        "data.max_characters": "null",
        "train.epochs": "1",
        "windows.num_steps": "16",
        "train.batch_size": "8",
        "evaluate.sample_tokens": "10",
    }
    _run_pipeline(root, models, ["language_model", "--config", str(LM_SMOKE)], settings)


def _train_sales_model(root: Path, models: Path) -> None:
    write_shop_sales(root, series=4, weeks=140)
    settings = {
        **SHOP_INGEST,
        "ingest.data_dir": str(root),
        "model.units": "4",
        "train.epochs": "1",
        "backtest.folds": "1",
        "ensemble.members": "[]",  # one model: the serving tests need a forecaster, not an ensemble
        "blessing.thresholds": "[]",  # one epoch on 4 series cannot meet the Walmart bars
        "blessing.baseline": "ignore",
        "export.model_name": "shop",
    }
    _run_pipeline(root, models, ["sales_forecast"], settings)


def _run_pipeline(root: Path, models: Path, pipeline: list[str], settings: dict) -> None:
    """``python -m pipelines run <pipeline...>`` exporting to ``models``; MLflow under ``root``."""
    patch = pytest.MonkeyPatch()
    patch.chdir(root)
    uri, previous_uri = f"sqlite:///{root / 'mlflow.db'}", mlflow.get_tracking_uri()
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    settings = {**settings, "export.register": "false", "export.serving_dir": str(models)}
    arguments = ["run", *pipeline, "--artifacts-root", str(root / "artifacts")]
    arguments += [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    try:
        assert main(arguments) == 0
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous_uri)
        patch.undo()


@pytest.fixture
def models_copy(tmp_path, exported_models) -> Path:
    """A private copy of the exported models, for tests that add or break versions."""
    return Path(shutil.copytree(exported_models, tmp_path / "models"))


@pytest.fixture
def flipped_sentiment(tmp_path, tiny_sentiment) -> Path:
    """A SavedModel of ``sentiment`` whose output layer and stacking weights are negated, so its
    probability is one minus version 1's: a version that answers differently, to tell which one
    served a request."""
    model = tiny_sentiment["train"].load()
    output = model.get_layer("probability")
    output.set_weights([-weights for weights in output.get_weights()])
    flipped = TrainedModel(tmp_path / "flipped_model")
    flipped.path.mkdir()
    model.save(flipped.model_file)
    # The recurrent logit is negated by its output layer; negating the n-gram weight and the
    # bias too negates the stacked logit.
    stacked = StackedModel(shutil.copytree(tiny_sentiment["stack"].path, tmp_path / "stack"))
    weights = stacked.weights()
    weights["ngram_weight"] = -weights["ngram_weight"]
    weights["bias"] = [-bias for bias in weights["bias"]]
    (stacked.path / stacked.WEIGHTS_FILE).write_text(json.dumps(weights))
    archive = signatures.serving_archive(
        flipped, tiny_sentiment["preprocess"], 0.5, stacked=stacked
    )
    archive.write_out(str(tmp_path / "flipped_saved_model"), verbose=False)
    return tmp_path / "flipped_saved_model"


def call(url: str, payload=None, method: str | None = None) -> tuple[int, dict]:
    """``(HTTP status, JSON answer)``; ``payload``: an object to send as JSON, or raw bytes."""
    data = (
        payload if isinstance(payload, bytes) or payload is None else json.dumps(payload).encode()
    )
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_for(condition, timeout: float = 60.0):
    """The first truthy value of ``condition()``, polled for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def served_version(api: str, model: str) -> int:
    """The version that answers requests naming neither a version nor a label."""
    return int(call(f"{api}/{model}/metadata")[1]["model_spec"]["version"])
