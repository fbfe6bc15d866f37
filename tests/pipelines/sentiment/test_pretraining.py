"""LM pre-training -> classifier fine-tuning end to end (Dai & Le 2015): a word-level language
model trained on the classifier's own training reviews, then the classifier started from it."""

import json

import mlflow
import numpy as np
import pytest

from components.text_classification import pretrained as pretrained_lm
from components.text_classification.vectorize import load_vectorizer
from pipelines import lineage, registry, runner
from pipelines.__main__ import main
from pipelines.sentiment import pipeline as sentiment
from tests.conftest import CONFIGS

pytestmark = pytest.mark.e2e


def run(pipeline: str, config: str, root, *settings: str, until: str = "train") -> int:
    """A run up to ``until``: what is checked here is what training starts from."""
    arguments = ["run", pipeline, "--config", str(CONFIGS / config), "--until", until]
    arguments += ["--artifacts-root", str(root / "artifacts")]
    return main([*arguments, *[item for setting in settings for item in ("--set", setting)]])


def test_a_classifier_starts_from_a_language_model_of_its_own_reviews(
    imdb_mirror, mlflow_store, tmp_path
):
    quick = ("train.epochs=1", "data.max_reviews_per_split=200")
    # The language model reads only the classifier run's ingest output.
    assert run("sentiment", "sentiment.smoke.yaml", tmp_path, *quick, until="ingest") == 0
    (classifier_run,) = (tmp_path / "artifacts" / "sentiment").glob("2*")

    # Same tokens (the classifier's standardization), same embedding size, cell and units.
    assert (
        run(
            "language_model",
            "language_model.smoke.yaml",
            tmp_path,
            "data.corpus=classifier_texts",
            f"data.path={classifier_run}",
            "data.max_characters=null",
            "tokenize.level=word",
            "tokenize.vocabulary_size=3000",
            "model.cell=gru",
            "model.embedding_dim=32",
            "model.units=16",
            "train.epochs=1",
            "evaluate.sample_prompt=the movie",
        )  # fmt: skip
        == 0
    )
    (lm_run,) = (tmp_path / "artifacts" / "language_model").glob("2*")
    lm_corpus = (lm_run / "ingest" / "corpus" / "train.txt").read_text()
    assert "<br" not in lm_corpus and "," not in lm_corpus and lm_corpus == lm_corpus.lower()

    pretrained = f"model.init_from={lm_run}"
    assert run("sentiment", "sentiment.smoke.yaml", tmp_path, *quick, pretrained) == 0
    runs = sorted((tmp_path / "artifacts" / "sentiment").glob("2*"))
    tuned_run = next(path for path in runs if path != classifier_run)
    manifest = json.loads((tuned_run / "train" / "manifest.json").read_text())
    lm_train = json.loads((lm_run / "train" / "manifest.json").read_text())
    assert manifest["external_state"]["init_from"] == str(lm_run.resolve())
    assert manifest["external_state"]["init_from_mlflow_run"] == lm_train["mlflow_run_id"]

    train_run = mlflow.get_run(manifest["mlflow_run_id"])
    assert train_run.data.tags["init_from_mlflow_run"] == lm_train["mlflow_run_id"]
    # Both vocabularies come from the same reviews, standardized alike; the language model's is
    # fitted on 90% of them (its own validation and test cut off), so rare words differ: 0.87.
    assert train_run.data.metrics["init_shared_tokens"] > 0.8
    assert train_run.data.metrics["init_recurrent_layers"] == 1

    # The tags above are the initialiser's own; what counts is the model training starts from:
    # built as the train stage builds it, its rows of the shared tokens are the LM's rows.
    config = registry.resolve_config(
        "sentiment", CONFIGS / "sentiment.smoke.yaml", None, [*quick, pretrained]
    )
    outputs = runner.load_outputs(tuned_run)
    setup = sentiment.training_setup(config, outputs)
    classifier = setup.build_model(config.model).get_layer("embedding").get_weights()[0]
    language_model = pretrained_lm.find(lm_run)
    lm_rows = language_model.load().get_layer("embedding").get_weights()[0]
    lm_index = {token: row for row, token in enumerate(language_model.vocabulary)}
    vocabulary = load_vectorizer(outputs["preprocess"]).get_vocabulary()
    shared = [
        (index, lm_index[token])
        for index, token in enumerate(vocabulary)
        if index >= 2 and token in lm_index  # after padding and [UNK]
    ]
    assert len(shared) > 0.8 * (classifier.shape[0] - 2)
    np.testing.assert_array_equal(
        classifier[[i for i, _ in shared]], lm_rows[[row for _, row in shared]]
    )

    chain = lineage.format_chain(
        lineage.run(tuned_run / "train" / "trained_model", tmp_path / "artifacts")
    )
    assert f"init_from_mlflow_run: {lm_train['mlflow_run_id']}" in chain
