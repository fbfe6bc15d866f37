"""The classifier's serving graph: raw strings in; label, label name and class scores out.

The fitted vectorizer is joined in front of the trained model, and where the pipeline stacked an
n-gram branch (``stack.py``), that branch and the joining layer too, so TF Serving (and evaluation,
which scores through the same graph) needs nothing but the text. Two signatures: ``serving_default``
for the predict API and ``classify`` for TF Serving's classify API (tf.Examples with a ``text``
feature in, every class's name and score out). An attention model has a third, ``explain``: the
prediction with each token the model read and its attention weight.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from components.artifacts import StackedModel, TrainedModel, Vocabulary
from components.text_classification.model import attention_weights
from components.text_classification.stack import StackedProbabilities
from components.text_classification.vectorize import load_vectorizer

SAMPLE_REVIEWS = [
    "A wonderful, moving film with brilliant performances. I loved every minute.",
    "Dull, predictable and far too long. The worst movie I have seen this year.",
]
"""Requests for warm-up, the registry's input example and load tests."""

CLASSIFY_SIGNATURE = "classify"
EXPLAIN_SIGNATURE = "explain"


def end_to_end_model(
    trained: TrainedModel, vocabulary: Vocabulary, stacked: StackedModel | None = None
) -> keras.Model:
    """Raw strings in, the model's probabilities out: the vectorizer joined to the model, and
    with ``stacked`` (its n-gram branch on), the recurrent and n-gram branches joined."""
    return _end_to_end(trained.load(), vocabulary, _ngram_join(stacked))


def branch_scores_model(
    trained: TrainedModel, vocabulary: Vocabulary, stacked: StackedModel
) -> keras.Model:
    """Raw strings in; the stacked probabilities, the recurrent branch's and the n-gram branch's
    alone (its logits through a sigmoid or softmax) out, in one pass: evaluation's ablation."""
    join = _ngram_join(stacked)
    text = keras.Input(shape=(), dtype="string", name="text")
    recurrent = trained.load()(load_vectorizer(vocabulary)(text))
    ngram_logits = join.ngrams(text)
    ngram = (
        keras.ops.sigmoid(ngram_logits)
        if ngram_logits.shape[-1] == 1
        else keras.ops.softmax(ngram_logits, axis=-1)
    )
    joined = join.layer([recurrent, ngram_logits])
    return keras.Model(text, [joined, recurrent, ngram], name="branches")


def explainer_model(
    trained: TrainedModel, vocabulary: Vocabulary, stacked: StackedModel | None = None
) -> keras.Model | None:
    """Raw strings in; probabilities, token ids and each token's attention weight out (padding:
    id 0, weight 0). None unless the model pools with attention."""
    return _explainer(trained.load(), vocabulary, _ngram_join(stacked))


class _NgramJoin:
    """The n-gram branch and the layer that joins its logits to the recurrent probabilities."""

    def __init__(self, stacked: StackedModel):
        weights = stacked.weights()
        self.ngrams = stacked.load()
        self.layer = StackedProbabilities(
            weights["ngram_weight"], weights["recurrent_weight"], weights["bias"], name="stacked"
        )

    def joined(self, text, recurrent_probabilities):
        return self.layer([recurrent_probabilities, self.ngrams(text)])


def _ngram_join(stacked: StackedModel | None) -> _NgramJoin | None:
    return _NgramJoin(stacked) if stacked is not None and stacked.enabled else None


def _end_to_end(
    model: keras.Model, vocabulary: Vocabulary, join: _NgramJoin | None = None
) -> keras.Model:
    text = keras.Input(shape=(), dtype="string", name="text")
    probabilities = model(load_vectorizer(vocabulary)(text))
    if join is not None:
        probabilities = join.joined(text, probabilities)
    return keras.Model(text, probabilities, name="text_classifier_end_to_end")


def _explainer(
    model: keras.Model, vocabulary: Vocabulary, join: _NgramJoin | None = None
) -> keras.Model | None:
    weighted = attention_weights(model)
    if weighted is None:
        return None
    text = keras.Input(shape=(), dtype="string", name="text")
    token_ids = load_vectorizer(vocabulary)(text)
    probabilities, weights = weighted(token_ids)
    if join is not None:
        probabilities = join.joined(text, probabilities)
    return keras.Model(text, [probabilities, token_ids, weights], name="text_classifier_explainer")


def token_strings(vocabulary: Vocabulary) -> list[str]:
    """The vectorizer's vocabulary by id: ``""`` (padding), ``[UNK]``, then the kept tokens."""
    return load_vectorizer(vocabulary).get_vocabulary()


def serving_archive(
    trained: TrainedModel,
    vocabulary: Vocabulary,
    threshold: float,
    label_names: tuple[str, ...] = ("negative", "positive"),
    stacked: StackedModel | None = None,
) -> keras.export.ExportArchive:
    """``serving_default``: ``text`` (batch of raw strings) -> ``label`` (id), ``label_name``,
    ``scores`` (every class's probability, in ``label_names`` order) and, for two classes,
    ``probability`` of label 1, which ``threshold`` turns into the label. ``classify``: serialized
    tf.Examples (``inputs``, a ``text`` bytes feature each) -> ``classes`` and ``scores``.
    ``explain`` (attention models only): ``serving_default``'s outputs plus ``tokens`` and their
    ``weights``, ``[batch, longest text in the batch]``, padding marked ``""`` with weight 0."""
    model, join = trained.load(), _ngram_join(stacked)
    explainer = _explainer(model, vocabulary, join)
    # An attention model is served from its explainer alone: one copy of the weights for all.
    classifier = _end_to_end(model, vocabulary, join) if explainer is None else None
    names = tf.constant(list(label_names))
    binary = len(label_names) == 2
    archive = keras.export.ExportArchive()
    archive.track(explainer or classifier)

    def probabilities_of(text):
        if explainer is None:
            return classifier(text, training=False)
        return explainer(text, training=False)[0]

    def scored(probabilities):
        if binary:
            positive = tf.reshape(probabilities, [-1])
            scores = tf.stack([1.0 - positive, positive], axis=1)
            return scores, tf.cast(positive >= threshold, tf.int64)
        return probabilities, tf.argmax(probabilities, axis=1)

    def prediction(scores, label):
        outputs = {"label": label, "label_name": tf.gather(names, label), "scores": scores}
        if binary:
            outputs["probability"] = scores[:, 1]
        return outputs

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return prediction(*scored(probabilities_of(text)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(inputs):
        features = tf.io.parse_example(inputs, {"text": tf.io.FixedLenFeature([], tf.string)})
        scores, _ = scored(probabilities_of(features["text"]))
        classes = tf.tile(names[tf.newaxis, :], [tf.shape(scores)[0], 1])
        return {"classes": classes, "scores": scores}

    archive.add_endpoint("serving_default", serve)
    archive.add_endpoint(CLASSIFY_SIGNATURE, classify)
    if explainer is not None:
        vocabulary_strings = tf.constant(token_strings(vocabulary))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def explain(text):
            probabilities, token_ids, weights = explainer(text, training=False)
            # Cut the columns that are padding in every text: one review comes back unpadded.
            longest = tf.reduce_max(tf.reduce_sum(tf.cast(token_ids != 0, tf.int32), axis=1))
            longest = tf.maximum(longest, 1)  # keep a column, so empty texts still have a shape
            tokens = tf.gather(vocabulary_strings, token_ids[:, :longest])
            outputs = prediction(*scored(probabilities))
            return {**outputs, "tokens": tokens, "weights": weights[:, :longest]}

        archive.add_endpoint(EXPLAIN_SIGNATURE, explain)
    return archive
