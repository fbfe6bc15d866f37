"""The language-model pipeline end to end on tiny corpora written in the test."""

import json
import math
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import tensorflow as tf

from pipelines.__main__ import main
from tests.conftest import CONFIGS

pytestmark = pytest.mark.e2e
SMOKE_CONFIG = CONFIGS / "language_model.smoke.yaml"


def run_on_text(tmp_path, corpus: Path, *overrides: str) -> int:
    """The CLI with the smoke config, reading ``corpus`` as a user's own text file."""
    settings = [
        "data.corpus=text",
        f"data.path={corpus}",
        "data.max_characters=null",
        f"export.serving_dir={tmp_path / 'models'}",
        *overrides,
    ]
    arguments = ["run", "language_model", "--config", str(SMOKE_CONFIG)]
    arguments += ["--artifacts-root", str(tmp_path / "artifacts")]
    return main([*arguments, *[item for setting in settings for item in ("--set", setting)]])


def test_a_repeated_pattern_is_learned_to_near_zero_loss(tmp_path, mlflow_store):
    corpus = tmp_path / "pattern.txt"
    corpus.write_text("abcdefgh\n" * 400)
    overrides = ("train.epochs=6", "windows.num_steps=16", "train.batch_size=8")
    assert run_on_text(tmp_path, corpus, *overrides) == 0

    (run_dir,) = (tmp_path / "artifacts" / "language_model").glob("2*")
    metrics = json.loads((run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["test"]["nats_per_char"] < 0.05, "a deterministic pattern must be learned"
    assert metrics["test"]["tokens"] == 179  # the whole 180-character test split, as one stream
    # The baselines score the same stream: one character of context settles this pattern too,
    # none (the unigram) leaves nine equally likely characters.
    baselines = metrics["baselines"]
    assert baselines["unigram"]["test"]["nats_per_char"] == pytest.approx(math.log(9), abs=0.01)
    assert baselines["kn_bigram"]["test"]["tokens"] == 179
    assert metrics["baseline_comparison"]["best_baseline"] == "kn_bigram"

    exported = tf.saved_model.load(str(tmp_path / "models" / "lm_char" / "1"))
    generated = (
        exported.signatures["generate"](
            prompt=tf.constant("abc"),
            num_tokens=tf.constant(14),
            temperature=tf.constant(0.0),
            top_k=tf.constant(0),
            seed=tf.constant(0, tf.int64),
        )["text"]
        .numpy()
        .decode()
    )
    assert generated == "abcdefgh\nabcdefgh"
    next_token = exported.signatures["serving_default"](text=tf.constant(["abcd", "efgh"]))
    assert [t.decode() for t in next_token["next_token"].numpy()] == ["e", "\n"]

    runs = mlflow.search_runs(experiment_names=["language_model"], output_format="list")
    runs = {run.info.run_name: run for run in runs}
    assert "val_bits_per_char" in runs["train"].data.metrics
    assert "test_perplexity" in runs["evaluate"].data.metrics
    assert "test_kn_bigram_perplexity" in runs["evaluate"].data.metrics
    logged = {d.dataset.name for d in runs["ingest"].inputs.dataset_inputs}
    assert logged == {"pattern-train", "pattern-validation", "pattern-test"}
    samples = mlflow.artifacts.list_artifacts(
        run_id=runs["train"].info.run_id, artifact_path="samples"
    )
    assert len(samples) == 6  # one generated sample per epoch

    cli = Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run(
        [str(cli), "run", "--dir", str(tmp_path / "models" / "lm_char" / "1"), "--tag_set", "serve",
         "--signature_def", "generate",
         "--input_exprs", "prompt='ab';num_tokens=6;temperature=0.0;top_k=0;seed=0"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "b'abcdefgh'" in result.stdout


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"\x00\x01\x02binary" * 100, "looks like a binary file"),
        (b"a" * 1000, "only 1 distinct char token"),
    ],
)
def test_bad_corpora_are_clear_errors(tmp_path, mlflow_store, capsys, content, message):
    corpus = tmp_path / "bad.txt"
    corpus.write_bytes(content)
    assert run_on_text(tmp_path, corpus) == 2
    assert message in capsys.readouterr().err


def test_the_multi_worker_loop_trains_the_stateful_model_as_fit_does(tmp_path, mlflow_store):
    """One worker of the loop (no TF_CONFIG: a cluster of one) against Keras fit on the same
    streams: the state carried from window to window, reset before validation, and the loss
    the mean over every token."""
    corpus = tmp_path / "words.txt"
    words = np.random.default_rng(0).choice(["to", "be", "or", "not", "that", "is"], 900)
    corpus.write_text(" ".join(words))
    histories = []
    for distribution in ("none", "multi_worker"):
        root = tmp_path / distribution
        arguments = ["run", "language_model", "--config", str(SMOKE_CONFIG), "--until", "train"]
        arguments += ["--artifacts-root", str(root)]
        settings = ["data.corpus=text", f"data.path={corpus}", "data.max_characters=null"]
        settings += ["train.epochs=3", "windows.num_steps=8", "train.batch_size=8"]
        for setting in (*settings, f"train.distribution={distribution}"):
            arguments += ["--set", setting]
        assert main(arguments) == 0
        (run,) = (root / "language_model").glob("2*")
        histories.append(json.loads((run / "train" / "trained_model" / "history.json").read_text()))
    fit, loop = histories
    for name in ("loss", "val_loss"):
        np.testing.assert_allclose(loop[name], fit[name], rtol=1e-5, err_msg=name)
    assert fit["loss"][-1] < fit["loss"][0]
