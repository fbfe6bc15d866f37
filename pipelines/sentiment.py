"""Sentiment classification of IMDB movie reviews: config, stage wiring and the serving signature.

ingest (IMDB mirror or TFDS) -> preprocess (vectorizer fitted on train) -> train (recurrent
classifier on token ids) -> evaluate (test split) -> export (SavedModel taking raw review strings).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from components import evaluate, export, ingest, preprocess, train
from components.artifacts import Examples, Metrics, PushedModel, TrainedModel, Vocabulary
from components.models import RecurrentModelConfig, build_text_classifier
from pipelines import imdb
from pipelines.runner import Stage

NAME = "sentiment"
# ``make sentiment MODEL=bigru`` shorthands for the cell/direction pair.
MODEL_PRESETS = {
    "simplernn": {"model.cell": "simple_rnn", "model.bidirectional": False},
    "lstm": {"model.cell": "lstm", "model.bidirectional": False},
    "gru": {"model.cell": "gru", "model.bidirectional": False},
    "bisimplernn": {"model.cell": "simple_rnn", "model.bidirectional": True},
    "bilstm": {"model.cell": "lstm", "model.bidirectional": True},
    "bigru": {"model.cell": "gru", "model.bidirectional": True},
}
EXAMPLE_REVIEWS = [
    "A wonderful, moving film with brilliant performances. I loved every minute.",
    "Dull, predictable and far too long. The worst movie I have seen this year.",
]


@dataclasses.dataclass
class SentimentConfig:
    data: imdb.ImdbSourceConfig = dataclasses.field(default_factory=imdb.ImdbSourceConfig)
    ingest: ingest.IngestConfig = dataclasses.field(default_factory=ingest.IngestConfig)
    preprocess: preprocess.TextVectorizationConfig = dataclasses.field(
        default_factory=preprocess.TextVectorizationConfig
    )
    model: RecurrentModelConfig = dataclasses.field(default_factory=RecurrentModelConfig)
    train: train.TrainConfig = dataclasses.field(default_factory=train.TrainConfig)
    evaluate: evaluate.EvaluateConfig = dataclasses.field(default_factory=evaluate.EvaluateConfig)
    export: export.ExportConfig = dataclasses.field(default_factory=export.ExportConfig)


Config = SentimentConfig  # the name the CLI looks up in every pipeline module


def run_ingest(config: SentimentConfig, inputs: dict, out_dir: Path) -> Examples:
    return ingest.run(config.ingest, imdb.source(config.data), out_dir)


def run_preprocess(config: SentimentConfig, inputs: dict, out_dir: Path) -> Vocabulary:
    return preprocess.run(config.preprocess, inputs["ingest"], out_dir)


def run_train(config: SentimentConfig, inputs: dict, out_dir: Path) -> TrainedModel:
    examples, vocabulary = inputs["ingest"], inputs["preprocess"]
    vectorizer = vocabulary.load_layer()
    # Seed before the input pipeline exists: its shuffle order then depends on the config alone,
    # not on what else ran earlier in this process.
    keras.utils.set_random_seed(config.train.seed)

    def batches(split: str) -> tf.data.Dataset:
        frame = examples.load(split)
        reviews = tf.data.Dataset.from_tensor_slices((frame["text"].values, frame["label"].values))
        if split == "train":
            reviews = reviews.shuffle(len(frame), seed=config.train.seed)
        return (
            reviews.batch(config.train.batch_size)
            .map(lambda text, label: (vectorizer(text), label), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

    data = train.TrainingData(
        batches("train"), batches("validation"), len(examples.load("train")), "reviews"
    )
    return train.run(
        config.train,
        build_model=lambda: build_text_classifier(
            config.model, vectorizer.vocabulary_size(), config.preprocess.sequence_length
        ),
        data=data,
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
        out_dir=out_dir,
    )


def run_evaluate(config: SentimentConfig, inputs: dict, out_dir: Path) -> Metrics:
    classifier = end_to_end_model(inputs["train"], inputs["preprocess"])

    def predict(texts: np.ndarray) -> np.ndarray:
        return classifier.predict(
            tf.constant(texts), batch_size=config.evaluate.batch_size, verbose=2
        )

    return evaluate.run(config.evaluate, predict, inputs["ingest"], out_dir)


def run_export(config: SentimentConfig, inputs: dict, out_dir: Path) -> PushedModel:
    archive = serving_archive(inputs["train"], inputs["preprocess"], config.evaluate.threshold)
    return export.run(config.export, archive, {"text": tf.constant(EXAMPLE_REVIEWS)}, out_dir)


def headline(metrics: dict) -> str:
    return f"accuracy {metrics['accuracy']:.4f}, ROC-AUC {metrics['roc_auc']:.4f}"


def benchmark_columns(metrics: dict) -> dict[str, str]:
    """Test scores for the benchmark table, with accuracy by review length (in words)."""
    by_length = {
        f"acc. {name} words": f"{s['accuracy']:.3f}" for name, s in metrics["by_length"].items()
    }
    return {
        "test accuracy": f"**{metrics['accuracy']:.4f}**",
        "ROC-AUC": f"{metrics['roc_auc']:.4f}",
        "F1": f"{metrics['f1']:.4f}",
        **by_length,
    }


def end_to_end_model(trained: TrainedModel, vocabulary: Vocabulary) -> keras.Model:
    """Raw review strings in, positive-class probability out: the vectorizer joined to the model."""
    text = keras.Input(shape=(), dtype="string", name="text")
    probability = trained.load()(vocabulary.load_layer()(text))
    return keras.Model(text, probability, name="sentiment_end_to_end")


def serving_archive(
    trained: TrainedModel, vocabulary: Vocabulary, threshold: float
) -> keras.export.ExportArchive:
    """``serving_default``: ``text`` (batch of raw strings) -> probability, label, sentiment."""
    classifier = end_to_end_model(trained, vocabulary)
    archive = keras.export.ExportArchive()
    archive.track(classifier)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        probability = tf.reshape(classifier(text, training=False), [-1])
        label = tf.cast(probability >= threshold, tf.int64)
        sentiment = tf.gather(tf.constant(["negative", "positive"]), label)
        return {"probability": probability, "label": label, "sentiment": sentiment}

    archive.add_endpoint("serving_default", serve)
    return archive


STAGES = [
    Stage("ingest", run_ingest, Examples, config_sections=("data", "ingest")),
    Stage("preprocess", run_preprocess, Vocabulary, ("ingest",), ("preprocess",)),
    Stage("train", run_train, TrainedModel, ("ingest", "preprocess"), ("preprocess", "model", "train")),
    Stage("evaluate", run_evaluate, Metrics, ("ingest", "preprocess", "train"), ("evaluate",)),
    Stage("export", run_export, PushedModel, ("preprocess", "train"), ("evaluate", "export")),
]
