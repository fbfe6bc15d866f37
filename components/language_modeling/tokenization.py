"""Tokenize (Transform for language models): fit a char- or word-level vocabulary on the train split
and write every split as a stream of token ids.

``Tokenizer`` uses TensorFlow ops only, so the exported serving graph encodes prompts and decodes
generated ids with exactly the code that prepared the training data.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import tensorflow as tf

from components import tracking
from components.artifacts import Corpus, TokenizedCorpus
from components.errors import ConfigError, DataError, require_one_of

LEVELS = ("char", "word")
UNKNOWN = {"char": "\ufffd", "word": "<unk>"}
MIN_VOCABULARY = (
    3  # the unknown token plus at least two real ones: else there is nothing to predict
)


@dataclasses.dataclass
class TokenizerConfig:
    level: str = "word"
    """``char``: every character is a token; ``word``: whitespace-separated words."""
    vocabulary_size: int | None = None
    """Keep the most frequent tokens (the unknown token included); null keeps every train token."""
    lowercase: bool = False
    end_of_line: str = "<eos>"
    """Word level: the token each line break becomes (Penn Treebank's convention)."""

    def __post_init__(self):
        require_one_of("tokenize.level", self.level, LEVELS)
        if self.vocabulary_size is not None and self.vocabulary_size < MIN_VOCABULARY:
            raise ConfigError(
                f"tokenize.vocabulary_size={self.vocabulary_size} is too small; "
                f"a language model needs at least {MIN_VOCABULARY} tokens"
            )


class Tokenizer(tf.Module):
    """Text <-> token ids with TF ops; id 0 is the unknown token."""

    def __init__(self, vocabulary: list[str], level: str, lowercase: bool, end_of_line: str):
        super().__init__(name="tokenizer")
        self.level, self.lowercase, self.end_of_line = level, lowercase, end_of_line
        self.vocabulary_size = len(vocabulary)
        self.tokens = tf.constant(vocabulary)
        self._ids = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self.tokens, tf.range(len(vocabulary), dtype=tf.int64)
            ),
            default_value=0,
        )

    def split(self, text: tf.Tensor) -> tf.Tensor:
        """A scalar string -> a 1-D tensor of token strings."""
        return split_tokens(text, self.level, self.lowercase, self.end_of_line)

    def encode(self, text: tf.Tensor) -> tf.Tensor:
        return self._ids.lookup(self.split(text))

    def decode(self, ids: tf.Tensor) -> tf.Tensor:
        """1-D ids -> a scalar string; word level puts spaces between words and line breaks back."""
        tokens = tf.gather(self.tokens, ids)
        if self.level == "char":
            return tf.strings.reduce_join(tokens)
        text = tf.strings.reduce_join(tokens, separator=" ")
        return tf.strings.regex_replace(text, f" ?{_escaped(self.end_of_line)} ?", "\n")


def split_tokens(text: tf.Tensor, level: str, lowercase: bool, end_of_line: str) -> tf.Tensor:
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    if level == "char":
        return tf.strings.unicode_split(text, "UTF-8")
    return tf.strings.split(tf.strings.regex_replace(text, "\n", f" {end_of_line} "))


def run(config: TokenizerConfig, corpus: Corpus, out_dir: Path) -> TokenizedCorpus:
    train_tokens = split_tokens(
        tf.constant(corpus.text("train")), config.level, config.lowercase, config.end_of_line
    )
    counts = Counter(train_tokens.numpy())
    unknown = UNKNOWN[config.level].encode()
    counts.pop(unknown, None)  # a corpus's own <unk> (PTB has one) is the unknown token itself
    ranked = sorted(counts, key=lambda token: (-counts[token], token))
    limit = None if config.vocabulary_size is None else config.vocabulary_size - 1
    vocabulary = [UNKNOWN[config.level], *(token.decode() for token in ranked[:limit])]
    if len(vocabulary) < MIN_VOCABULARY:
        raise DataError(
            f"the train split has only {len(vocabulary) - 1} distinct {config.level} token(s); "
            f"a language model needs at least {MIN_VOCABULARY - 1}"
        )
    tokenizer = Tokenizer(vocabulary, config.level, config.lowercase, config.end_of_line)
    out_dir.mkdir(parents=True, exist_ok=True)
    coverage = {}
    for name in Corpus.SPLITS:
        ids = tokenizer.encode(tf.constant(corpus.text(name))).numpy().astype(np.int32)
        np.save(out_dir / f"{name}.ids.npy", ids)
        coverage[f"{name}_tokens"] = int(ids.size)
        coverage[f"{name}_unknown_rate"] = round(float(np.mean(ids == 0)), 5)
    settings = {**dataclasses.asdict(config), "vocabulary_size": len(vocabulary), **coverage}
    (out_dir / "tokenizer.json").write_text(json.dumps(settings, indent=2))
    (out_dir / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False))
    tracking.log_artifact(out_dir / "vocabulary.json")
    tracking.log_metrics({"vocabulary_size": len(vocabulary), **coverage})
    return TokenizedCorpus(out_dir)


def load_tokenizer(tokenized: TokenizedCorpus) -> Tokenizer:
    settings = json.loads((tokenized.path / "tokenizer.json").read_text())
    vocabulary = json.loads((tokenized.path / "vocabulary.json").read_text())
    return Tokenizer(vocabulary, settings["level"], settings["lowercase"], settings["end_of_line"])


def _escaped(token: str) -> str:
    return "".join(f"\\{c}" if not c.isalnum() else c for c in token)
