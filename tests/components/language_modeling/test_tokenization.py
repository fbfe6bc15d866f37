import json

import numpy as np
import pytest
import tensorflow as tf

from components.errors import ConfigError, DataError
from components.language_modeling import ingest, tokenization
from components.language_modeling.ingest import CorpusIngestConfig, CorpusSource, RawText
from components.language_modeling.tokenization import TokenizerConfig, load_tokenizer


def corpus(tmp_path, train, validation="", test=""):
    texts = {"train": train, "validation": validation or train, "test": test or train}
    source = CorpusSource("t", "memory://t", {k: RawText(k, v) for k, v in texts.items()})
    return ingest.run(CorpusIngestConfig(), source, tmp_path / "corpus")


def test_word_level_follows_ptb_conventions(tmp_path):
    train = " the cat sat <unk> \n the dog sat \n"
    tokenized = tokenization.run(
        TokenizerConfig(level="word"),
        corpus(tmp_path, train, test=" the zebra sat \n"),
        tmp_path / "t",
    )
    tokenizer = load_tokenizer(tokenized)
    assert tokenizer.vocabulary_size == 6  # <unk> the sat <eos> cat dog
    ids = tokenized.ids("test")
    assert ids.tolist() == tokenizer.encode(tf.constant(" the zebra sat \n")).numpy().tolist()
    assert ids[1] == 0  # "zebra" is unknown
    assert (
        tokenizer.decode(tokenizer.encode(tf.constant("the cat sat\nthe dog sat\n")))
        .numpy()
        .decode()
        == "the cat sat\nthe dog sat\n"
    )


def test_char_level_round_trips_text(tmp_path):
    text = "First Citizen:\nBefore we proceed\n"
    tokenized = tokenization.run(
        TokenizerConfig(level="char"), corpus(tmp_path, text), tmp_path / "t"
    )
    tokenizer = load_tokenizer(tokenized)
    assert tokenizer.vocabulary_size == len(set(text)) + 1
    assert tokenizer.decode(tokenized.ids("train")).numpy().decode() == text


def test_vocabulary_size_keeps_the_most_frequent_tokens(tmp_path):
    tokenized = tokenization.run(
        TokenizerConfig(level="word", vocabulary_size=3),
        corpus(tmp_path, "a a a b b c\n"),
        tmp_path / "t",
    )
    # tokens a a a b b c <eos>: the 3-token vocabulary is <unk>, a, b
    decoded = load_tokenizer(tokenized).decode(tokenized.ids("train")).numpy().decode()
    assert decoded == "a a a b b <unk> <unk>"
    settings = json.loads((tokenized.path / "tokenizer.json").read_text())
    assert np.isclose(settings["train_unknown_rate"], 2 / 7, atol=1e-4)


def test_corpus_with_too_few_tokens_is_rejected(tmp_path):
    with pytest.raises(DataError, match="only 1 distinct word token"):
        tokenization.run(
            TokenizerConfig(level="word", end_of_line="a"),
            corpus(tmp_path, "a a a"),
            tmp_path / "t",
        )


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"level": "byte"}, "choose one of: char, word"),
        ({"vocabulary_size": 2}, "vocabulary_size=2 is too small"),
    ],
)
def test_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        TokenizerConfig(**fields)
