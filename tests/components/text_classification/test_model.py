import keras
import numpy as np
import pytest
import tensorflow as tf

from components.errors import ConfigError
from components.recurrent import CELLS
from components.text_classification.model import (
    AttentionPooling,
    MaskedGlobalMaxPooling1D,
    TextClassifierConfig,
    attention_weights,
    build_text_classifier,
)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize(
    "bidirectional, layers, pooling",
    [
        (False, 1, "last"),
        (True, 2, "max"),
        (False, 2, "mean"),
        (True, 1, "relu_max"),
        (True, 2, "attention"),
    ],
)
def test_every_cell_and_shape_builds_and_predicts_probabilities(
    cell, bidirectional, layers, pooling
):
    config = TextClassifierConfig(
        cell=cell,
        bidirectional=bidirectional,
        layers=layers,
        units=4,
        embedding_dim=4,
        pooling=pooling,
    )
    model = build_text_classifier(config, vocabulary_size=30, sequence_length=7)
    token_ids = np.array([[3, 4, 5, 0, 0, 0, 0], [6, 0, 0, 0, 0, 0, 0]])
    probabilities = model.predict(token_ids, verbose=0)
    assert probabilities.shape == (2, 1)
    # A probability is the sigmoid of the head's logit (a linear or one-unit softmax head would
    # still give numbers in [0, 1]), and different reviews get different ones.
    head = model.get_layer("probability")
    features = tf.keras.Model(model.input, head.input).predict(token_ids, verbose=0)
    kernel, bias = head.get_weights()
    logits = features @ kernel + bias
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-logits)), rtol=1e-5)
    assert probabilities[0, 0] != probabilities[1, 0]
    recurrent = [layer.name for layer in model.layers if cell in layer.name]
    assert len(recurrent) == layers
    assert all(name.startswith("bi") for name in recurrent) == bidirectional


def test_embedding_dropout_is_a_spatial_dropout_layer():
    config = TextClassifierConfig(units=4, embedding_dim=4, embedding_dropout=0.2)
    model = build_text_classifier(config, vocabulary_size=30, sequence_length=5)
    assert model.get_layer("embedding_dropout").rate == 0.2


def test_unknown_model_type_lists_the_valid_ones():
    with pytest.raises(
        ConfigError,
        match="model.cell='transformer' is not a known model type; "
        "choose one of: simple_rnn, lstm, gru",
    ):
        TextClassifierConfig(cell="transformer")


def test_masked_max_pooling_ignores_padding():
    values = np.array([[[-3.0], [-1.0], [0.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    assert MaskedGlobalMaxPooling1D()(values, mask=mask).numpy().tolist() == [[-1.0]]


@pytest.mark.parametrize("score", ["additive", "dot"])
def test_attention_weights_sum_to_one_over_the_tokens_and_are_zero_on_padding(score):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[True, True, True, False, False], [True] + [False] * 4, [False] * 5])
    pooled, weights = AttentionPooling(score, units=3)(values, mask=mask, return_weights=True)
    weights = weights.numpy()
    assert np.all(weights[~mask] == 0.0)  # exactly: padding adds nothing to the mean
    np.testing.assert_allclose(weights.sum(axis=1), [1.0, 1.0, 0.0], rtol=1e-6)
    assert len(set(weights[0, :3].round(6))) > 1  # scored, not a plain mean
    expected = (values * weights[..., None]).sum(axis=1)
    np.testing.assert_allclose(pooled.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.all(pooled.numpy()[2] == 0.0)  # no token: nothing to pool


def test_attention_pooling_learns_and_reloads_with_its_weights(tmp_path):
    config = TextClassifierConfig(
        units=4, embedding_dim=4, dropout=0.0, pooling="attention", attention="dot"
    )
    keras.utils.set_random_seed(0)
    model = build_text_classifier(config, vocabulary_size=10, sequence_length=6)
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy")
    # Label 1 whenever token 2 is in the text (padding, id 0, scattered anywhere).
    rng = np.random.default_rng(0)
    token_ids = rng.integers(3, 10, size=(256, 6))
    token_ids[rng.random((256, 6)) < 0.3] = 0
    labels = rng.random(256) < 0.5
    token_ids[labels, rng.integers(0, 6, size=labels.sum())] = 2
    history = model.fit(token_ids, labels, epochs=5, batch_size=32, verbose=0).history["loss"]
    assert history[-1] < 0.2 * history[0]
    _, weights = attention_weights(model).predict(token_ids, verbose=0)
    cue, other_tokens = token_ids == 2, labels[:, None] & (token_ids > 2)
    assert weights[cue].mean() > 2 * weights[other_tokens].mean()  # it looks at the cue
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert reloaded.get_layer("attention").get_config()["score"] == "dot"
    probabilities, weights = attention_weights(reloaded).predict(token_ids[:8], verbose=0)
    np.testing.assert_allclose(probabilities, model.predict(token_ids[:8], verbose=0), rtol=1e-5)
    assert np.all(weights[token_ids[:8] == 0] == 0.0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    assert attention_weights(build_text_classifier(TextClassifierConfig(units=2), 10, 6)) is None


def test_attention_needs_the_padding_mask():
    with pytest.raises(ConfigError, match="model.pooling=attention needs model.mask_padding=true"):
        TextClassifierConfig(pooling="attention", mask_padding=False)
    with pytest.raises(ConfigError, match="model.attention='cosine'"):
        TextClassifierConfig(pooling="attention", attention="cosine")


@pytest.mark.parametrize("pooling", ["max", "attention"])
def test_padding_does_not_change_the_prediction_when_masked(pooling):
    config = TextClassifierConfig(
        cell="lstm", bidirectional=True, units=4, embedding_dim=4, pooling=pooling
    )
    short = build_text_classifier(config, vocabulary_size=30, sequence_length=3)
    long = build_text_classifier(config, vocabulary_size=30, sequence_length=9)
    long.set_weights(short.get_weights())
    np.testing.assert_allclose(
        short.predict(np.array([[5, 6, 7]]), verbose=0),
        long.predict(np.array([[5, 6, 7, 0, 0, 0, 0, 0, 0]]), verbose=0),
        rtol=1e-5,
    )
