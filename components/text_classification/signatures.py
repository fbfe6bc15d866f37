"""The classifier's serving graph: raw strings in; label, label name and class scores out.

The fitted vectorizer is joined in front of the trained model, so TF Serving (and evaluation,
which scores through the same graph) needs nothing but the text. Two signatures: ``serving_default``
for the predict API and ``classify`` for TF Serving's classify API (tf.Examples with a ``text``
feature in, every class's name and score out).
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

CLASSIFY_SIGNATURE = "classify"


def end_to_end_model(trained: TrainedModel, vocabulary: Vocabulary) -> keras.Model:
    """Raw strings in, the model's probabilities out: the vectorizer joined to the model."""
    text = keras.Input(shape=(), dtype="string", name="text")
    probabilities = trained.load()(load_vectorizer(vocabulary)(text))
    return keras.Model(text, probabilities, name="text_classifier_end_to_end")


def serving_archive(
    trained: TrainedModel,
    vocabulary: Vocabulary,
    threshold: float,
    label_names: tuple[str, ...] = ("negative", "positive"),
) -> keras.export.ExportArchive:
    """``serving_default``: ``text`` (batch of raw strings) -> ``label`` (id), ``label_name``,
    ``scores`` (every class's probability, in ``label_names`` order) and, for two classes,
    ``probability`` of label 1, which ``threshold`` turns into the label. ``classify``: serialized
    tf.Examples (``inputs``, a ``text`` bytes feature each) -> ``classes`` and ``scores``."""
    classifier = end_to_end_model(trained, vocabulary)
    names = tf.constant(list(label_names))
    binary = len(label_names) == 2
    archive = keras.export.ExportArchive()
    archive.track(classifier)

    def scored(text):
        probabilities = classifier(text, training=False)
        if binary:
            positive = tf.reshape(probabilities, [-1])
            scores = tf.stack([1.0 - positive, positive], axis=1)
            return scores, tf.cast(positive >= threshold, tf.int64)
        return probabilities, tf.argmax(probabilities, axis=1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        scores, label = scored(text)
        outputs = {"label": label, "label_name": tf.gather(names, label), "scores": scores}
        if binary:
            outputs["probability"] = scores[:, 1]
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(inputs):
        features = tf.io.parse_example(inputs, {"text": tf.io.FixedLenFeature([], tf.string)})
        scores, _ = scored(features["text"])
        classes = tf.tile(names[tf.newaxis, :], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    archive.add_endpoint("serving_default", serve)
    archive.add_endpoint(CLASSIFY_SIGNATURE, classify)
    return archive
