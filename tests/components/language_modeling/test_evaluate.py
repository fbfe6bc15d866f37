import math

import numpy as np
import pytest

from components.language_modeling.evaluate import stream_nats, summarize
from components.language_modeling.generation import TextGenerator
from components.language_modeling.model import (
    LanguageModelConfig,
    build_language_model,
    state_sizes,
)
from components.language_modeling.tokenization import Tokenizer


def uniform_generator(vocabulary_size: int) -> TextGenerator:
    """A language model whose output layer is zero: every token gets probability 1/V."""
    config = LanguageModelConfig(cell="gru", layers=1, units=4, embedding_dim=4)
    model = build_language_model(config, vocabulary_size, batch_size=1, explicit_states=True)
    logits = model.get_layer("logits")
    logits.set_weights([np.zeros_like(w) for w in logits.get_weights()])
    tokenizer = Tokenizer([chr(97 + i) for i in range(vocabulary_size)], "char", False, "<eos>")
    return TextGenerator(model, tokenizer, state_sizes(config))


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    ids = np.random.default_rng(0).integers(0, 7, size=1001)
    nats, tokens = stream_nats(uniform_generator(7), ids, window=64)
    assert tokens == 1000
    assert summarize(nats, tokens, "token")["perplexity"] == pytest.approx(7.0, rel=1e-4)


def test_window_size_does_not_change_the_score():
    config = LanguageModelConfig(cell="lstm", layers=2, units=8, embedding_dim=4)
    model = build_language_model(config, 9, batch_size=1, explicit_states=True)
    generator = TextGenerator(
        model, Tokenizer(list("abcdefghi"), "char", False, "<eos>"), state_sizes(config)
    )
    ids = np.random.default_rng(1).integers(0, 9, size=300)
    whole, _ = stream_nats(generator, ids, window=300)
    pieces, _ = stream_nats(generator, ids, window=7)
    assert pieces == pytest.approx(whole, rel=1e-4)


def test_summary_converts_nats_to_bits_and_perplexity():
    numbers = summarize(nats=2 * math.log(2) * 10, tokens=10, unit="char")
    assert numbers["bits_per_char"] == pytest.approx(2.0) and numbers[
        "perplexity"
    ] == pytest.approx(4.0)


def test_a_diverged_models_perplexity_is_infinite_not_an_overflow():
    numbers = summarize(nats=1286.6 * 10, tokens=10, unit="char")
    assert numbers["perplexity"] == math.inf and numbers["nats_per_char"] == pytest.approx(1286.6)
