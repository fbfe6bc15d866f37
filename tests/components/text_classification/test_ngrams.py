import numpy as np
import pytest
import scipy.sparse
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

from components.errors import ConfigError
from components.text_classification import ingest, ngrams
from components.text_classification.ingest import IngestConfig, RawRecord, Source


def _examples(tmp_path, rows: list[tuple[str, int]], names=("negative", "positive")):
    records = [RawRecord(f"train/{i}", text, label) for i, (text, label) in enumerate(rows)]
    test = [RawRecord(f"test/{i}", text, label) for i, (text, label) in enumerate(rows)]
    source = Source("tiny", "memory://tiny", {"train": records, "test": test}, list(names))
    return ingest.run(
        IngestConfig(validation_fraction=0.2, duplicates="keep"), source, tmp_path / "examples"
    )


REVIEWS = [
    ("a great film , truly great !", 1),
    ("great acting and a moving story", 1),
    ("not good , a dull and boring film", 0),
    ("boring . not great at all", 0),
    ("moving and great !", 1),
    ("dull dull dull", 0),
] * 5


def test_log_count_ratio_is_the_smoothed_naive_bayes_ratio_computed_by_hand():
    counts = scipy.sparse.csr_matrix(np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0]], dtype=float))
    target = np.array([1, 1, 0])
    # positive counts + 1: [3, 2, 2] (sum 7); other counts + 1: [1, 2, 1] (sum 4)
    expected = np.log(np.array([3, 2, 2]) / 7) - np.log(np.array([1, 2, 1]) / 4)
    np.testing.assert_allclose(ngrams.log_count_ratio(counts, target, 1.0), expected)


def test_the_branch_is_the_logistic_regression_on_ratio_scaled_ngram_counts(tmp_path):
    examples = _examples(tmp_path, REVIEWS)
    config = ngrams.NgramConfig(ngram_max=2, regularization=2.0)
    branch = ngrams.run(config, examples, tmp_path / "ngrams").load()
    texts = np.array(["a great film", "dull and boring", "never seen words here"])

    # The same fit done outside the graph: counts, ratio, liblinear.
    vectorizer = branch.get_layer("ngram_vectorizer")
    train = examples.load("train")
    counts = ngrams.design_matrix(vectorizer, train["text"].to_numpy())
    ratio = ngrams.log_count_ratio(counts, train["label"].to_numpy(), 1.0)
    regression = LogisticRegression(C=2.0, solver="liblinear")
    regression.fit(counts.multiply(ratio).tocsr(), train["label"].to_numpy())
    expected = regression.decision_function(
        ngrams.design_matrix(vectorizer, texts).multiply(ratio).tocsr()
    )
    logits = branch.predict(tf.constant(texts), verbose=0)
    assert logits.shape == (3, 1)
    np.testing.assert_allclose(logits[:, 0], expected, rtol=1e-4, atol=1e-5)
    assert logits[0, 0] > 0 > logits[1, 0]
    # "!" is a token of its own, and bigrams are in the vocabulary.
    vocabulary = vectorizer.get_vocabulary()
    assert "!" in vocabulary and "great film" in vocabulary


def test_unseen_ngrams_all_land_in_the_out_of_vocabulary_column(tmp_path):
    branch = ngrams.run(ngrams.NgramConfig(), _examples(tmp_path, REVIEWS), tmp_path / "n").load()
    kernel, bias = branch.get_layer("ngram_logits").get_weights()
    unseen = branch.predict(tf.constant(["zebra quantum", "xylophone"]), verbose=0)
    np.testing.assert_allclose(unseen[:, 0], kernel[0, 0] + bias[0], rtol=1e-5)


def test_more_classes_get_one_logit_column_each(tmp_path):
    rows = [("good good", 2), ("bad bad", 0), ("meh okay", 1)] * 6
    examples = _examples(tmp_path, rows, names=("bad", "middling", "good"))
    branch = ngrams.run(ngrams.NgramConfig(), examples, tmp_path / "ngrams").load()
    logits = branch.predict(tf.constant(["good good", "bad bad", "meh okay"]), verbose=0)
    assert logits.shape == (3, 3)
    assert list(logits.argmax(axis=1)) == [2, 0, 1]


def test_a_disabled_branch_writes_no_model(tmp_path):
    artifact = ngrams.run(ngrams.NgramConfig(enabled=False), _examples(tmp_path, REVIEWS), tmp_path)
    assert not artifact.enabled
    assert not (tmp_path / artifact.MODEL_FILE).exists()


def test_character_ngrams_read_text_without_spaces(tmp_path):
    rows = [("很好看", 1), ("非常好", 1), ("很难看", 0), ("太差了", 0)] * 5
    config = ngrams.NgramConfig(split="character", ngram_max=2)
    branch = ngrams.run(config, _examples(tmp_path, rows), tmp_path / "ngrams").load()
    # Character n-grams are joined by a space in the vocabulary.
    assert "好 看" in branch.get_layer("ngram_vectorizer").get_vocabulary()
    logits = branch.predict(tf.constant(["好看", "难看"]), verbose=0)
    assert logits[0, 0] > 0 > logits[1, 0]


@pytest.mark.parametrize(
    "settings",
    [{"ngram_max": 0}, {"max_features": 1}, {"regularization": 0.0}, {"split": "syllable"}],
)
def test_bad_settings_are_refused_naming_the_field(settings):
    with pytest.raises(ConfigError, match="ngrams."):
        ngrams.NgramConfig(**settings)
