import json
import re

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components import shards
from components.artifacts import Examples
from components.errors import ConfigError
from components.text_classification import signatures, vectorize
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


def test_train_split_is_written_as_shards_of_token_ids(tmp_path):
    texts = [f"film number {word}" for word in "abcdefghi"]  # 9: one left out of 2 shards
    examples = examples_with(tmp_path / "ex", texts, ["a"])
    config = TextVectorizationConfig(vocabulary_size=50, sequence_length=4, train_shards=2)
    vocabulary = vectorize.run(config, examples, tmp_path / "v")
    train_shards = shards.read(vocabulary.train_shards_dir)
    assert len(train_shards.files) == 2 and train_shards.examples_per_shard == 4
    (features, labels), *_ = train_shards.worker_batches(tf.distribute.InputContext(), 8, seed=0)
    expected = load_vectorizer(vocabulary)(tf.constant(texts)).numpy().tolist()
    rows = features.numpy().tolist()
    assert len({tuple(row) for row in rows}) == 8 and all(row in expected for row in rows)
    assert not labels.numpy().any()


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


def hand_token_ids(texts, vocabulary_file, sequence_length: int) -> np.ndarray:
    """Token ids as the vectorizer is documented to make them, computed in plain Python: lower
    case, <br /> and punctuation to spaces, 1 for a word outside the vocabulary, 0-padded."""
    index = {token: i + 1 for i, token in enumerate(vocabulary_file.read_text().split("\n")[:-1])}
    rows = []
    for text in texts:
        text = re.sub(r"<br\s*/?>", " ", text.lower())
        ids = [index.get(word, 1) for word in re.sub(r"[^\w\s']", " ", text).split()]
        rows.append((ids + [0] * sequence_length)[:sequence_length])
    return np.array(rows)


def test_training_batches_and_the_exported_model_see_the_same_token_ids(tiny_sentiment, tmp_path):
    from pipelines.sentiment import pipeline as sentiment

    config, vocabulary, trained = (tiny_sentiment[k] for k in ("config", "preprocess", "train"))
    length = config.preprocess.sequence_length
    setup = sentiment.training_setup(config, tiny_sentiment)
    token_ids, _ = next(iter(setup.data.validation))  # validation batches are not shuffled
    texts = tiny_sentiment["ingest"].load("validation")["text"].to_numpy()[: len(token_ids)]
    np.testing.assert_array_equal(
        token_ids.numpy(), hand_token_ids(texts, vocabulary.vocabulary_file, length)
    )

    # The exported graph (its own copy of the vectorizer) on raw strings, with unknown words,
    # markup and a review longer than sequence_length besides: it must score what the trained
    # model scores on the hand-made ids.
    extra = ["Zebra!! A GREAT<BR>film, wonderful", " ".join(["dull"] * 20 + ["superb"] * 20)]
    raw = np.array([*texts, *extra], dtype=object)
    signatures.serving_archive(trained, vocabulary, 0.5).write_out(str(tmp_path / "export"))
    serve = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"]
    served = serve(text=tf.constant(raw))["probability"].numpy()
    ids = hand_token_ids(raw, vocabulary.vocabulary_file, length)
    # zebra is unknown (1); 5 words, then padding; 40 words cut to sequence_length.
    assert ids[-2][0] == 1 and (ids[-2][1:5] > 1).all() and not ids[-2][5:].any()
    assert ids[-1].all() and len(ids[-1]) == length
    expected = trained.load().predict(ids, verbose=0).reshape(-1)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def test_letters_of_every_script_survive_standardization():
    texts = tf.constant(["Très BIEN! Café<br />ok", "这部电影很好，我喜欢。", "It's 9/10"])
    standardized = [t.decode() for t in vectorize.standardize_text(texts).numpy()]
    assert standardized == ["très bien  café ok", "这部电影很好 我喜欢 ", "it's 9 10"]


def test_character_tokens_for_text_without_spaces(tmp_path):
    texts = ["这部电影很好", "这部电影很差", "好看", "太差了"]
    examples = examples_with(tmp_path / "ex", texts, ["好"])
    config = TextVectorizationConfig(vocabulary_size=50, sequence_length=6, split="character")
    vocabulary = vectorize.run(config, examples, tmp_path / "v")
    layer = load_vectorizer(vocabulary)
    tokens = vocabulary.vocabulary_file.read_text(encoding="utf-8").split("\n")[:-1]
    assert {"好", "差", "电", "影"} <= set(tokens)
    ids = layer(tf.constant(["电影很好"])).numpy()[0]
    assert [tokens[i - 1] for i in ids[:4]] == ["电", "影", "很", "好"] and not ids[4:].any()
    with pytest.raises(ConfigError, match="preprocess.split='bpe' is not valid"):
        TextVectorizationConfig(split="bpe")
