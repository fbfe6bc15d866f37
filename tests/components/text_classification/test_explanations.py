import random

import numpy as np
import pytest
import tensorflow as tf

from components.artifacts import TrainedModel
from components.text_classification import signatures
from components.text_classification.explanations import attention_explainer, attention_html
from components.text_classification.model import TextClassifierConfig, build_text_classifier
from components.text_classification.vectorize import load_vectorizer
from tests.conftest import (
    NEGATIVE_WORDS,
    POSITIVE_WORDS,
    own_attention_weights,
    synthetic_review,
)


@pytest.fixture(scope="module")
def exported_attention(tiny_attention, tmp_path_factory):
    path = tmp_path_factory.mktemp("attention_export") / "1"
    archive = signatures.serving_archive(tiny_attention["train"], tiny_attention["preprocess"], 0.5)
    archive.write_out(str(path), verbose=False)
    return tf.saved_model.load(str(path))


def test_explain_serves_each_token_with_its_weight_beside_the_prediction(
    exported_attention, tiny_attention
):
    rng = random.Random(3)
    texts = [synthetic_review(1, rng, length=12), "Dull, AWFUL movie.", ""]
    explained = exported_attention.signatures["explain"](text=tf.constant(texts))
    tokens = explained["tokens"].numpy().astype(str)
    weights = explained["weights"].numpy()
    # Columns up to the longest text: the vectorizer's tokens, padding "" with weight 0.
    token_ids = load_vectorizer(tiny_attention["preprocess"])(tf.constant(texts)).numpy()
    longest = int((token_ids != 0).sum(axis=1).max())
    vocabulary = np.array(signatures.token_strings(tiny_attention["preprocess"]))
    assert tokens.tolist() == vocabulary[token_ids[:, :longest]].tolist()
    assert tokens[1, :3].tolist() == ["dull", "awful", "movie"]  # standardized as in training
    assert np.all(weights[tokens == ""] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=1), [1.0, 1.0, 0.0], rtol=1e-5)
    # The model's own weights on the same ids, not any weights that sum to 1 (uniform ones do).
    own = own_attention_weights(tiny_attention["train"], token_ids[:2])
    np.testing.assert_allclose(weights[:2], own[:, :longest], atol=1e-5)
    assert np.all(own[:, longest:] == 0.0)
    predicted = exported_attention.signatures["serving_default"](text=tf.constant(texts))
    for name in ("label", "label_name", "probability", "scores"):
        np.testing.assert_array_equal(explained[name].numpy(), predicted[name].numpy())


def test_the_heaviest_word_of_a_clear_review_is_a_sentiment_word(tiny_attention):
    explain = attention_explainer(tiny_attention["train"], tiny_attention["preprocess"])
    rng = random.Random(11)
    texts = np.array([synthetic_review(i % 2, rng) for i in range(20)])
    tokens, weights = explain(texts)
    heaviest = [words[int(np.argmax(row))] for words, row in zip(tokens, weights, strict=True)]
    cues = set(POSITIVE_WORDS + NEGATIVE_WORDS)
    assert sum(word in cues for word in heaviest) >= 18, heaviest
    assert all("" not in words for words in tokens)
    np.testing.assert_allclose([row.sum() for row in weights], 1.0, rtol=1e-5)


def test_only_an_attention_model_has_the_explain_signature(tiny_attention, tmp_path):
    config = TextClassifierConfig(units=2, embedding_dim=2, pooling="max")
    build_text_classifier(config, vocabulary_size=100, sequence_length=30).save(
        tmp_path / "model.keras"
    )
    trained = TrainedModel(tmp_path)
    archive = signatures.serving_archive(trained, tiny_attention["preprocess"], 0.5)
    archive.write_out(str(tmp_path / "export"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "export"))
    assert set(served.signatures) == {"serving_default", "classify"}
    assert attention_explainer(trained, tiny_attention["preprocess"]) is None


def test_the_html_view_shades_each_word_by_its_weight_and_escapes_text():
    rows = [{"label": "positive", "predicted": "negative", "probability": 0.97, "text": "..."}]
    page = attention_html("Mistakes", rows, ([["<b>", "dull"]], [np.array([0.25, 0.75])]))
    assert 'title="0.250" style="background: rgba(230, 80, 0, 0.33)">&lt;b&gt;</span>' in page
    assert 'title="0.750" style="background: rgba(230, 80, 0, 1.00)">dull</span>' in page
    assert "predicted: <b>negative</b>" in page and "text:" not in page
