import numpy as np
import pytest
import tensorflow as tf

from components.language_modeling.generation import TextGenerator, sample
from components.language_modeling.model import (
    LanguageModelConfig,
    build_language_model,
    state_sizes,
)
from components.language_modeling.tokenization import Tokenizer


@pytest.fixture(scope="module")
def generator() -> TextGenerator:
    config = LanguageModelConfig(cell="lstm", layers=2, units=8, embedding_dim=4)
    model = build_language_model(config, 6, batch_size=1, explicit_states=True)
    return TextGenerator(
        model,
        Tokenizer(["<unk>", "a", "b", "c", "<eos>", "d"], "word", False, "<eos>"),
        state_sizes(config),
    )


def generate(generator, prompt="a b", tokens=12, temperature=1.0, top_k=0, seed=7):
    outputs = generator.generate(
        tf.constant(prompt),
        tf.constant(tokens),
        tf.constant(temperature),
        tf.constant(top_k),
        tf.constant(seed, tf.int64),
    )
    return outputs["text"].numpy().decode(), outputs["continuation"].numpy().decode()


def test_same_seed_same_text_other_seed_other_text(generator):
    assert generate(generator, seed=1) == generate(generator, seed=1)
    assert {generate(generator, seed=s)[1] for s in range(5)} != {generate(generator, seed=1)[1]}


def test_text_starts_with_the_prompt_and_has_the_requested_length(generator):
    text, continuation = generate(generator, prompt="a b", tokens=12)
    assert text.startswith("a b ")
    assert len(continuation.replace("\n", " ").split()) + continuation.count("\n") >= 1
    words = continuation.replace("\n", " <eos> ").split()
    assert len(words) == 12


def test_zero_temperature_and_top_1_are_greedy(generator):
    greedy = generate(generator, temperature=0.0, seed=1)
    assert generate(generator, temperature=0.0, seed=2) == greedy
    assert generate(generator, temperature=1.0, top_k=1, seed=3) == greedy


def test_top_k_only_draws_among_the_k_likeliest():
    log_probabilities = tf.math.log(tf.constant([[0.5, 0.3, 0.1, 0.1]]))
    drawn = {
        int(
            sample(
                log_probabilities, tf.constant(5.0), tf.constant(2), tf.constant([s, 0], tf.int64)
            )
        )
        for s in range(50)
    }
    assert drawn == {0, 1}


def test_next_token_scores_each_text(generator):
    outputs = generator.next_token(tf.constant(["a b", "c"]))
    assert outputs["log_probabilities"].shape == (2, 6)
    np.testing.assert_allclose(
        np.exp(outputs["log_probabilities"].numpy()).sum(axis=1), 1.0, rtol=1e-5
    )
