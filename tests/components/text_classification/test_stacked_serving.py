"""The stacked classifier as served: both branches and the n-gram vocabulary inside the SavedModel,
answering exactly what evaluation scored."""

import shutil

import numpy as np
import tensorflow as tf

from components.artifacts import StackedModel
from components.text_classification import signatures
from tests.conftest import text_examples

TEXTS = [
    *signatures.SAMPLE_REVIEWS,
    "zebra quantum xylophone",  # no n-gram of it was seen in training
    "",
]


def test_the_served_probability_is_the_evaluated_one_with_no_artifact_left(
    tiny_sentiment, tmp_path
):
    stacked = StackedModel(shutil.copytree(tiny_sentiment["stack"].path, tmp_path / "stack"))
    evaluated = signatures.end_to_end_model(
        tiny_sentiment["train"], tiny_sentiment["preprocess"], stacked
    ).predict(tf.constant(TEXTS), verbose=0)[:, 0]
    archive = signatures.serving_archive(
        tiny_sentiment["train"], tiny_sentiment["preprocess"], 0.5, stacked=stacked
    )
    archive.write_out(str(tmp_path / "saved_model"), verbose=False)
    shutil.rmtree(stacked.path)  # the n-gram branch's vocabulary must live in the SavedModel

    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    answer = served.signatures["serving_default"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(answer["probability"].numpy(), evaluated, atol=1e-6)
    examples = text_examples(TEXTS)
    classified = served.signatures["classify"](inputs=tf.constant(examples))
    np.testing.assert_allclose(classified["scores"].numpy()[:, 1], evaluated, atol=1e-6)


def test_evaluation_scores_the_stacked_model_and_each_branch_in_one_pass(tiny_sentiment):
    train, vocabulary, stacked = (tiny_sentiment[k] for k in ("train", "preprocess", "stack"))
    texts = tf.constant(TEXTS)
    joined, recurrent, ngram = signatures.branch_scores_model(train, vocabulary, stacked).predict(
        texts, verbose=0
    )
    alone = signatures.end_to_end_model(train, vocabulary).predict(texts, verbose=0)
    np.testing.assert_allclose(recurrent, alone, atol=1e-6)
    np.testing.assert_allclose(
        joined,
        signatures.end_to_end_model(train, vocabulary, stacked).predict(texts, verbose=0),
        atol=1e-6,
    )
    logits = stacked.load().predict(texts, verbose=0)
    np.testing.assert_allclose(ngram, 1 / (1 + np.exp(-logits)), atol=1e-6)
    # The join is the fitted formula of the two branches, not either branch alone.
    weights = stacked.weights()
    clipped = np.clip(recurrent, 1e-7, 1 - 1e-7)  # as the joining layer clips
    recurrent_logit = np.log(clipped / (1 - clipped))
    expected = 1 / (
        1
        + np.exp(
            -(
                weights["ngram_weight"] * logits
                + weights["recurrent_weight"] * recurrent_logit
                + weights["bias"][0]
            )
        )
    )
    np.testing.assert_allclose(joined, expected, atol=1e-5)
    assert weights["ngram_weight"] > 0


def test_a_stacked_attention_model_explains_with_the_recurrent_weights(tiny_attention, tmp_path):
    train, vocabulary, stacked = (tiny_attention[k] for k in ("train", "preprocess", "stack"))
    texts = tf.constant(signatures.SAMPLE_REVIEWS)
    archive = signatures.serving_archive(train, vocabulary, 0.5, stacked=stacked)
    archive.write_out(str(tmp_path / "saved_model"), verbose=False)
    explained = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["explain"](text=texts)
    stacked_probability = signatures.end_to_end_model(train, vocabulary, stacked).predict(
        texts, verbose=0
    )[:, 0]
    np.testing.assert_allclose(explained["probability"].numpy(), stacked_probability, atol=1e-6)
    _, _, recurrent_weights = signatures.explainer_model(train, vocabulary).predict(
        texts, verbose=0
    )
    weights = explained["weights"].numpy()
    np.testing.assert_allclose(weights, recurrent_weights[:, : weights.shape[1]], atol=1e-6)
