"""Sentiment classification of IMDB movie reviews: config, stage wiring and the serving signature.

ingest (IMDB mirror or TFDS) -> preprocess (vectorizer fitted on train) -> [tune] -> train
(recurrent classifier on token ids) -> evaluate (test split) -> bless (accuracy bars, no worse
than what serves) -> export (if blessed: SavedModel taking raw review strings).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from components import bless, export, train, tune
from components.artifacts import (
    Examples,
    Hyperparameters,
    Metrics,
    PushedModel,
    TrainedModel,
    Vocabulary,
)
from components.text_classification import evaluate, ingest, vectorize
from components.text_classification.model import TextClassifierConfig, build_text_classifier
from pipelines import cache, tuning
from pipelines.runner import Stage
from pipelines.sentiment import imdb
from pipelines.stages import bless_stage

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
# Test metrics the evaluate stage logs to MLflow, compared across runs by ``make compare``.
COMPARE_METRICS = ["test_accuracy", "test_roc_auc", "test_f1", "test_loss"]
EXAMPLE_REVIEWS = [
    "A wonderful, moving film with brilliant performances. I loved every minute.",
    "Dull, predictable and far too long. The worst movie I have seen this year.",
]


@dataclasses.dataclass
class SentimentConfig:
    data: imdb.ImdbSourceConfig = dataclasses.field(default_factory=imdb.ImdbSourceConfig)
    ingest: ingest.IngestConfig = dataclasses.field(default_factory=ingest.IngestConfig)
    preprocess: vectorize.TextVectorizationConfig = dataclasses.field(
        default_factory=vectorize.TextVectorizationConfig
    )
    model: TextClassifierConfig = dataclasses.field(default_factory=TextClassifierConfig)
    tune: tune.TuneConfig = dataclasses.field(default_factory=tune.TuneConfig)
    train: train.TrainConfig = dataclasses.field(default_factory=train.TrainConfig)
    evaluate: evaluate.EvaluateConfig = dataclasses.field(default_factory=evaluate.EvaluateConfig)
    blessing: bless.BlessingConfig = dataclasses.field(default_factory=bless.BlessingConfig)
    export: export.ExportConfig = dataclasses.field(default_factory=export.ExportConfig)


Config = SentimentConfig  # the name the CLI looks up in every pipeline module


def run_ingest(config: SentimentConfig, inputs: dict, out_dir: Path) -> Examples:
    return ingest.run(config.ingest, imdb.source(config.data), out_dir)


def mirror_files(config: SentimentConfig) -> dict:
    """The mirror files ingest reads (part of its cache key: changed data reruns it)."""
    data_dir = config.data.data_dir or os.environ.get(imdb.DATA_DIR_ENV)
    if config.data.source == "tfds" or not data_dir:
        return {"source": "tfds"}
    return cache.files_state([imdb.find_local_copy(Path(data_dir))])


def run_preprocess(config: SentimentConfig, inputs: dict, out_dir: Path) -> Vocabulary:
    return vectorize.run(config.preprocess, inputs["ingest"], out_dir)


def run_tune(config: SentimentConfig, inputs: dict, out_dir: Path) -> Hyperparameters:
    return tuning.search(config, training_setup(config, inputs), out_dir)


def run_train(config: SentimentConfig, inputs: dict, out_dir: Path) -> TrainedModel:
    config = tuning.tuned(config, inputs)
    return tuning.fit(config, training_setup(config, inputs), out_dir)


def training_setup(config: SentimentConfig, inputs: dict) -> train.TrainingSetup:
    """Vectorized, batched reviews and a classifier builder, shared by tune and train."""
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

    return train.TrainingSetup(
        build_model=lambda variant: build_text_classifier(
            variant.model, vectorizer.vocabulary_size(), config.preprocess.sequence_length
        ),
        data=train.TrainingData(
            batches("train"), batches("validation"), len(examples.load("train")), "reviews"
        ),
        loss="binary_crossentropy",
        metrics=["accuracy", "auc"],
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
    example = {"text": tf.constant(EXAMPLE_REVIEWS)}
    return export.run(config.export, archive, example, inputs["bless"], inputs["train"], out_dir)


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


TRAIN_SECTIONS = ("preprocess", "model", "train")
# Not in STAGES: `--tune` puts it before train, which then trains with the best values it found.
TUNE_STAGE = Stage(
    "tune",
    run_tune,
    Hyperparameters,
    ("ingest", "preprocess"),
    config_sections=("tune", *TRAIN_SECTIONS),
)
STAGES = [
    Stage(
        "ingest",
        run_ingest,
        Examples,
        config_sections=("data", "ingest"),
        external_state=mirror_files,
    ),
    Stage("preprocess", run_preprocess, Vocabulary, ("ingest",), config_sections=("preprocess",)),
    Stage(
        "train",
        run_train,
        TrainedModel,
        ("ingest", "preprocess"),
        optional_inputs=("tune",),
        config_sections=TRAIN_SECTIONS,
        resumable=True,
    ),
    Stage(
        "evaluate",
        run_evaluate,
        Metrics,
        ("ingest", "preprocess", "train"),
        config_sections=("evaluate",),
    ),
    bless_stage("evaluate"),
    Stage(
        "export",
        run_export,
        PushedModel,
        ("preprocess", "train", "bless"),
        config_sections=("evaluate", "export"),
    ),
]
