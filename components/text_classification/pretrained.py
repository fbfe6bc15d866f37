"""Start a classifier from a word-level language model (``model.init_from``; Dai & Le 2015).

The language model is a run of the ``language_model`` pipeline, trained on the classifier's own
training texts (``data.corpus: classifier_texts``, standardized as the classifier's vectorizer
does). Its embedding rows are copied by token, since the two vocabularies are ranked separately
(the classifier's out-of-vocabulary entry gets the model's ``<unk>`` row), and its recurrent
layers' weights into the classifier's layers of the same name, the forward direction of a
bidirectional one (the backward direction reads the other way, so it starts fresh). Fine-tuning
then trains everything.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import keras
import numpy as np

from components.errors import ConfigError

log = logging.getLogger(__name__)
MIN_SHARED_TOKENS = 0.5
"""Below this share of the classifier's tokens in the language model's vocabulary, the two were
tokenized differently (another standardization, another language): refused."""
UNKNOWN_TOKEN = "<unk>"
CLASSIFIER_SPECIAL = ("", "[UNK]")
"""Padding and out-of-vocabulary: the first two entries of a TextVectorization vocabulary."""


@dataclasses.dataclass(frozen=True)
class PretrainedLanguageModel:
    run_dir: Path
    model_file: Path
    vocabulary: list[str]
    mlflow_run_id: str | None
    """The language model's training run in MLflow, for lineage."""

    def load(self) -> keras.Model:
        return keras.saving.load_model(self.model_file, compile=False)


def find(path: str | Path) -> PretrainedLanguageModel:
    """The language model of a ``language_model`` pipeline run folder (``artifacts/
    language_model/<run id>``) or of its ``train`` stage folder."""
    run_dir = Path(path).expanduser().resolve()
    if run_dir.name == "train" and (run_dir / "manifest.json").is_file():
        run_dir = run_dir.parent
    manifests = {stage: run_dir / stage / "manifest.json" for stage in ("tokenize", "train")}
    missing = [str(file) for file in manifests.values() if not file.is_file()]
    if missing:
        raise ConfigError(
            f"model.init_from={path}: expected a language_model pipeline run folder "
            f"(artifacts/language_model/<run id>) with tokenize and train stages; missing "
            f"{', '.join(missing)}"
        )
    tokenize, train = (json.loads(file.read_text()) for file in manifests.values())
    if train.get("pipeline") != "language_model":
        raise ConfigError(
            f"model.init_from={path}: is a run of the {train.get('pipeline')!r} pipeline; expected "
            "a language_model run"
        )
    tokenized = Path(tokenize["output"]["path"])
    settings = json.loads((tokenized / "tokenizer.json").read_text())
    if settings["level"] != "word":
        raise ConfigError(
            f"model.init_from={path}: is a {settings['level']}-level language model; a classifier "
            "over words needs a word-level one (tokenize.level: word)"
        )
    return PretrainedLanguageModel(
        run_dir=run_dir,
        model_file=Path(train["output"]["path"]) / "model.keras",
        vocabulary=json.loads((tokenized / "vocabulary.json").read_text()),
        mlflow_run_id=train.get("mlflow_run_id"),
    )


def external_state(path: str | None) -> dict:
    """What the train stage reads from outside its inputs: part of its cache key and lineage."""
    if not path:
        return {}
    pretrained = find(path)
    stat = pretrained.model_file.stat()
    return {
        "init_from": str(pretrained.run_dir),
        "init_from_model": [stat.st_size, stat.st_mtime],
        "init_from_mlflow_run": pretrained.mlflow_run_id,
    }


def initialize(
    classifier: keras.Model, pretrained: PretrainedLanguageModel, vocabulary: list[str]
) -> dict[str, float]:
    """Copy the language model's embeddings (by token) and recurrent weights (by layer name) into
    ``classifier``, whose vectorizer has ``vocabulary``; returns what was copied.

    Raises:
        ConfigError: the embedding sizes, cells or units differ, or the vocabularies share fewer
            than ``MIN_SHARED_TOKENS`` of the classifier's tokens.
    """
    language_model = pretrained.load()
    source = language_model.get_layer("embedding").get_weights()[0]
    embedding = classifier.get_layer("embedding")
    target = embedding.get_weights()[0]
    if source.shape[1] != target.shape[1]:
        raise ConfigError(
            f"model.init_from={pretrained.run_dir}: its embeddings have {source.shape[1]} "
            f"dimensions, model.embedding_dim is {target.shape[1]}; set them equal"
        )
    rows = {token: row for row, token in enumerate(pretrained.vocabulary)}
    words = vocabulary[len(CLASSIFIER_SPECIAL) :]
    found = [(index, rows[word]) for index, word in enumerate(words, 2) if word in rows]
    shared = len(found) / max(1, len(words))
    if shared < MIN_SHARED_TOKENS:
        raise ConfigError(
            f"model.init_from={pretrained.run_dir}: only {shared:.0%} of the classifier's "
            f"{len(words):,} tokens are in the language model's vocabulary of "
            f"{len(pretrained.vocabulary):,} (at least {MIN_SHARED_TOKENS:.0%} needed): the two "
            "were tokenized differently. Train the language model on the classifier's texts "
            "(data.corpus: classifier_texts) with tokenize.level: word"
        )
    if found:
        indices, source_rows = (np.array(column) for column in zip(*found, strict=True))
        target[indices] = source[source_rows]
    if UNKNOWN_TOKEN in rows:
        target[1] = source[rows[UNKNOWN_TOKEN]]
    embedding.set_weights([target])
    layers = _copy_recurrent_layers(language_model, classifier, pretrained.run_dir)
    log.info(
        "initialized from %s: %d of %d token embeddings, recurrent layers %s",
        pretrained.run_dir, len(found), len(words), ", ".join(layers),
    )  # fmt: skip
    return {"init_shared_tokens": round(shared, 4), "init_recurrent_layers": len(layers)}


def _copy_recurrent_layers(source: keras.Model, target: keras.Model, origin: Path) -> list[str]:
    """Each recurrent layer of ``source`` into the layer of ``target`` that has its name (or
    into the forward direction of ``bi<name>``), as far as both stacks go."""
    copied = []
    names = {layer.name: layer for layer in target.layers}
    for layer in source.layers:
        if not isinstance(layer, keras.layers.RNN):
            continue
        receiver = names.get(layer.name)
        bidirectional = receiver is None and f"bi{layer.name}" in names
        if bidirectional:
            receiver = names[f"bi{layer.name}"].forward_layer
        if receiver is None:
            continue  # the classifier's stack is shallower, or another cell
        shapes = [weight.shape for weight in layer.get_weights()]
        wanted = [weight.shape for weight in receiver.get_weights()]
        if shapes != wanted and bidirectional and shapes[1:] == wanted[1:]:
            # Only the input kernel differs: a bidirectional layer below feeds both directions.
            log.warning("%s not initialized: the layer below feeds it both directions", layer.name)
            continue
        if shapes != wanted:
            raise ConfigError(
                f"model.init_from={origin}: layer {layer.name} has weights {shapes}, the "
                f"classifier's {wanted}; set model.units and model.embedding_dim as the "
                "language model's"
            )
        receiver.set_weights(layer.get_weights())
        copied.append(layer.name)
    if not copied:
        recurrent = [layer.name for layer in source.layers if isinstance(layer, keras.layers.RNN)]
        raise ConfigError(
            f"model.init_from={origin}: no recurrent layer of the language model "
            f"({', '.join(recurrent)}) matches the classifier's; set model.cell as the language "
            "model's"
        )
    return copied
