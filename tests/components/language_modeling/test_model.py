"""The language model's variants (stateful, explicit state), tied embeddings and dropout."""

import numpy as np
import pytest
import tensorflow as tf

from components.language_modeling.model import (
    LanguageModelConfig,
    build_language_model,
    copy_weights,
    state_sizes,
)
from components.recurrent import CELLS


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("tie_embeddings", [False, True])
def test_stateful_and_explicit_state_language_models_agree(cell, tie_embeddings):
    config = LanguageModelConfig(
        cell=cell, layers=2, units=6, embedding_dim=4, tie_embeddings=tie_embeddings
    )
    stateful = build_language_model(config, 11, batch_size=1, stateful=True)
    stepper = build_language_model(config, 11, batch_size=1, explicit_states=True)
    copy_weights(stateful, stepper)
    ids = tf.constant(np.random.default_rng(0).integers(0, 11, size=(1, 8)), tf.int32)
    # Two windows through the stateful model == one pass with explicit state carried between them.
    stateful_logits = np.concatenate([stateful(ids[:, :4]), stateful(ids[:, 4:])], axis=1)
    states = [tf.zeros((1, size)) for size in state_sizes(config)]
    first, *states = stepper([ids[:, :4], *states])
    second, *_ = stepper([ids[:, 4:], *states])
    np.testing.assert_allclose(
        stateful_logits, np.concatenate([first, second], axis=1), rtol=1e-4, atol=1e-5
    )
    assert stateful_logits.shape == (1, 8, 11)
    if tie_embeddings:
        assert "logits" not in [layer.name for layer in stateful.layers]


@pytest.mark.parametrize("variational", [False, True])
def test_variational_dropout_keeps_one_mask_over_the_time_steps(variational):
    config = LanguageModelConfig(
        units=32, embedding_dim=32, dropout=0.5, variational_dropout=variational
    )
    model = build_language_model(config, 11, sequence_length=50)
    for name in ("embedding_dropout", "dropout_0", "dropout_1"):
        kept = model.get_layer(name)(tf.ones((4, 50, 32)), training=True).numpy() > 0
        same_at_every_step = np.all(kept == kept[:, :1, :])
        assert same_at_every_step == variational
        assert 0.3 < kept.mean() < 0.7 and not np.all(kept == kept[:1])  # masks differ by row


def test_a_variational_model_trains_and_predicts_without_dropout():
    config = LanguageModelConfig(
        units=8, embedding_dim=8, dropout=0.5, variational_dropout=True, recurrent_dropout=0.3
    )
    model = build_language_model(config, 11, sequence_length=6)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ids = np.random.default_rng(0).integers(0, 11, size=(2, 6))
    history = model.fit(ids, ids, batch_size=2, epochs=2, shuffle=False, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    first = model.predict(ids, verbose=0)
    np.testing.assert_allclose(first, model.predict(ids, verbose=0), rtol=1e-5)
