import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components.artifacts import Examples
from components.errors import ConfigError
from components.text_classification import vectorize
from components.text_classification.vectorize import TextVectorizationConfig, load_vectorizer


def examples_with(tmp_path, train_texts, test_texts) -> Examples:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for split, texts in (("train", train_texts), ("validation", train_texts), ("test", test_texts)):
        frame = pd.DataFrame(
            {"origin": [f"{split}{i}" for i in range(len(texts))], "text": texts, "label": 0}
        )
        frame.to_parquet(tmp_path / f"{split}.parquet")
    return Examples(tmp_path)


def test_vocabulary_is_fitted_on_train_only_and_reloads_identically(tmp_path):
    examples = examples_with(tmp_path / "ex", ["good film good", "bad film"], ["zebra film"])
    vocabulary = vectorize.run(
        TextVectorizationConfig(vocabulary_size=50, sequence_length=6), examples, tmp_path / "v"
    )
    tokens = vocabulary.vocabulary_file.read_text().split()
    assert "zebra" not in tokens and {"good", "film", "bad"} <= set(tokens)

    layer = load_vectorizer(vocabulary)
    ids = layer(tf.constant(["good film", "zebra"])).numpy()
    assert ids.shape == (2, 6)
    assert ids[1, 0] == 1  # out of vocabulary
    assert ids[0, 2:].tolist() == [0, 0, 0, 0]  # padded to sequence_length


def test_standardization_strips_html_breaks_and_punctuation():
    cleaned = vectorize.standardize_text(tf.constant(["Great!<br /><br />Loved it.<BR>It's fine"]))
    assert cleaned.numpy()[0].decode().split() == ["great", "loved", "it", "it's", "fine"]


def test_statistics_report_out_of_vocabulary_and_truncation(tmp_path):
    examples = examples_with(tmp_path / "ex", ["a b c d e f g h"] * 3 + ["a b"], ["a"])
    vocabulary = vectorize.run(
        TextVectorizationConfig(vocabulary_size=5, sequence_length=4), examples, tmp_path / "v"
    )
    coverage = json.loads((vocabulary.path / "vectorizer.json").read_text())["train_coverage"]
    assert coverage["truncated_share"] == pytest.approx(0.75)
    # vocabulary of 3 words: a, b and one of c..h; 15 of the 26 words are out of vocabulary
    assert coverage["oov_rate"] == pytest.approx(15 / 26, abs=1e-3)


def test_config_rejects_tiny_vocabulary():
    with pytest.raises(ConfigError, match="vocabulary_size=2 must be at least 3"):
        TextVectorizationConfig(vocabulary_size=2)


def test_vectorizer_matches_between_training_and_serving_paths(tmp_path):
    examples = examples_with(tmp_path / "ex", ["the best movie", "the worst movie"], ["best"])
    vocabulary = vectorize.run(
        TextVectorizationConfig(vocabulary_size=20, sequence_length=3), examples, tmp_path / "v"
    )
    first, second = load_vectorizer(vocabulary), load_vectorizer(vocabulary)
    texts = tf.constant(["The BEST movie!", "worst<br />movie"])
    np.testing.assert_array_equal(first(texts).numpy(), second(texts).numpy())
