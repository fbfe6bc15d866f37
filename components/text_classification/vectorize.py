"""Preprocess (Transform): fit a text vectorization on the train split only and save it.

The artifact holds the vocabulary and the layer settings; ``load_vectorizer`` rebuilds the very
same ``TextVectorization`` layer for training input pipelines and for the exported serving graph,
so serving applies exactly the training preprocessing. It also holds the train split vectorized
into TFRecord shards, which training on several workers reads (each worker its own files).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from components import shards, tracking
from components.artifacts import Examples, Vocabulary
from components.errors import ConfigError, require_one_of

SPLITS = ("whitespace", "character")


@dataclasses.dataclass
class TextVectorizationConfig:
    vocabulary_size: int = 20000
    """Tokens kept, counting the padding (0) and out-of-vocabulary (1) entries."""
    sequence_length: int = 400
    """Tokens per example after truncation/padding; IMDB reviews have a median of ~175 words."""
    text_field: str = "text"
    split: str = "whitespace"
    """``whitespace``: words; ``character``: every character a token, for languages written
    without spaces (Chinese, Japanese)."""
    train_shards: int = 8
    """TFRecord files the vectorized train split is cut into, for ``train.distribution:
    multi_worker``: a multiple of the worker count and a divisor of ``train.batch_size``."""
    shard_seed: int = 42
    """Orders the train examples before they are cut into shards."""

    def __post_init__(self):
        require_one_of("preprocess.split", self.split, SPLITS)
        if self.vocabulary_size < 3:
            raise ConfigError(
                f"preprocess.vocabulary_size={self.vocabulary_size} must be at least 3"
            )
        if self.sequence_length < 1:
            raise ConfigError(f"preprocess.sequence_length={self.sequence_length} must be positive")
        if self.train_shards < 1:
            raise ConfigError(f"preprocess.train_shards={self.train_shards} must be positive")


@keras.saving.register_keras_serializable(package="components")
def standardize_text(text: tf.Tensor) -> tf.Tensor:
    """Lowercase, turn HTML line breaks into spaces and strip punctuation (keeping apostrophes).
    Letters and digits of every script stay (RE2's ``\\w`` is ASCII only: it would erase
    "é" and every Chinese character)."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    return tf.strings.regex_replace(text, r"[^\p{L}\p{N}_\s']", " ")


def run(config: TextVectorizationConfig, examples: Examples, out_dir: Path) -> Vocabulary:
    train_texts = examples.load("train")[config.text_field].to_numpy()
    vectorizer = _new_vectorizer(config.vocabulary_size, config.sequence_length, config.split)
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(train_texts).batch(1024))
    vocabulary = vectorizer.get_vocabulary()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Index 0 is the padding token "": a text file cannot hold it as a line, so load re-adds it.
    (out_dir / "vocabulary.txt").write_text("\n".join(vocabulary[1:]) + "\n", encoding="utf-8")
    settings = {
        "vocabulary_size": len(vocabulary),
        "sequence_length": config.sequence_length,
        "text_field": config.text_field,
        "split": config.split,
        "train_coverage": _coverage(vectorizer, train_texts),
    }
    (out_dir / "vectorizer.json").write_text(json.dumps(settings, indent=2))
    train = examples.load("train")
    texts = tf.data.Dataset.from_tensor_slices(train[config.text_field].to_numpy()).batch(1024)
    token_ids = np.concatenate([ids.numpy() for ids in texts.map(vectorizer)])
    shards.write(
        token_ids,
        train["label"].to_numpy(),
        config.train_shards,
        config.shard_seed,
        Vocabulary(out_dir).train_shards_dir,
    )
    tracking.log_artifact(out_dir / "vocabulary.txt")
    tracking.log_metrics({"vocabulary_size": len(vocabulary), **settings["train_coverage"]})
    return Vocabulary(out_dir)


def load_vectorizer(vocabulary: Vocabulary) -> keras.layers.TextVectorization:
    settings = json.loads((vocabulary.path / "vectorizer.json").read_text())
    tokens = vocabulary.vocabulary_file.read_text(encoding="utf-8").split("\n")[:-1]
    layer = _new_vectorizer(
        settings["vocabulary_size"],
        settings["sequence_length"],
        settings.get("split", "whitespace"),
    )
    layer.set_vocabulary(["", *tokens])
    return layer


def _new_vectorizer(
    vocabulary_size: int, sequence_length: int, split: str
) -> keras.layers.TextVectorization:
    return keras.layers.TextVectorization(
        max_tokens=vocabulary_size,
        standardize=standardize_text,
        split=split,
        output_sequence_length=sequence_length,
        name="vectorizer",
    )


def _coverage(vectorizer: keras.layers.TextVectorization, texts: np.ndarray) -> dict[str, float]:
    """How much train text survives: out-of-vocabulary rate and share of reviews truncated."""
    sample = texts[:2000]
    unpadded = keras.layers.TextVectorization(
        max_tokens=vectorizer.vocabulary_size(),
        standardize=standardize_text,
        split=vectorizer.get_config()["split"],
        vocabulary=vectorizer.get_vocabulary()[2:] or None,
    )
    ids = unpadded(tf.constant(sample))
    lengths = tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=1).numpy()
    oov = float(tf.reduce_sum(tf.cast(ids == 1, tf.int32)) / max(1, int(lengths.sum())))
    truncated = float(np.mean(lengths > vectorizer.get_config()["output_sequence_length"]))
    return {"oov_rate": round(oov, 4), "truncated_share": round(truncated, 4)}
