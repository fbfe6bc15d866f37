"""The classifier's serving graph: raw review strings in, probability, label and sentiment out.

The fitted vectorizer is joined in front of the trained model, so TF Serving (and evaluation,
which scores through the same graph) needs nothing but the text.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from components.artifacts import TrainedModel, Vocabulary
from components.text_classification.vectorize import load_vectorizer

SAMPLE_REVIEWS = [
    "A wonderful, moving film with brilliant performances. I loved every minute.",
    "Dull, predictable and far too long. The worst movie I have seen this year.",
]
"""Requests for warm-up, the registry's input example and load tests."""


def end_to_end_model(trained: TrainedModel, vocabulary: Vocabulary) -> keras.Model:
    """Raw review strings in, positive-class probability out: the vectorizer joined to the model."""
    text = keras.Input(shape=(), dtype="string", name="text")
    probability = trained.load()(load_vectorizer(vocabulary)(text))
    return keras.Model(text, probability, name="sentiment_end_to_end")


def serving_archive(
    trained: TrainedModel,
    vocabulary: Vocabulary,
    threshold: float,
    label_names: tuple[str, str] = ("negative", "positive"),
) -> keras.export.ExportArchive:
    """``serving_default``: ``text`` (batch of raw strings) -> probability (of label 1), label
    and ``sentiment``, the label's name."""
    classifier = end_to_end_model(trained, vocabulary)
    archive = keras.export.ExportArchive()
    archive.track(classifier)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        probability = tf.reshape(classifier(text, training=False), [-1])
        label = tf.cast(probability >= threshold, tf.int64)
        sentiment = tf.gather(tf.constant(list(label_names)), label)
        return {"probability": probability, "label": label, "sentiment": sentiment}

    archive.add_endpoint("serving_default", serve)
    return archive
