"""In-graph text generation for recurrent language models.

``TextGenerator`` wraps a step model (``build_language_model(..., explicit_states=True)``) and a
``Tokenizer`` in a ``tf.Module`` whose methods are pure TensorFlow: the exported SavedModel can
tokenize a prompt, run the network over it, sample token by token (temperature, top-k, seeded)
and detokenize, so TF Serving serves generation with no Python around it. Every request's work is
bounded inside the graph (``GenerationLimits``), so no request can make real TF Serving (or the
local server) allocate or loop without end.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from components.errors import ConfigError
from components.language_modeling.model import (
    LanguageModelConfig,
    build_language_model,
    copy_weights,
    state_sizes,
)
from components.language_modeling.tokenization import Tokenizer

GENERATE_SIGNATURE = [
    tf.TensorSpec([], tf.string, name="prompt"),
    tf.TensorSpec([], tf.int32, name="num_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.int64, name="seed"),
]


@dataclasses.dataclass
class GenerationLimits:
    """What one request may ask of the exported model; more is an INVALID_ARGUMENT error."""

    max_tokens: int = 2000
    """Most tokens ``generate`` writes per request (its ``num_tokens``)."""
    max_prompt_tokens: int = 10000
    """Longest prompt (or ``serving_default`` text), in tokens."""

    def __post_init__(self):
        if self.max_tokens < 1 or self.max_prompt_tokens < 1:
            raise ConfigError("generation.max_tokens and max_prompt_tokens must be positive")


def text_generator(
    model_config: LanguageModelConfig,
    trained: keras.Model,
    tokenizer: Tokenizer,
    limits: GenerationLimits | None = None,
) -> TextGenerator:
    """A batch-1 step model carrying explicit state, with the trained weights, and the tokenizer."""
    step_model = build_language_model(
        model_config, tokenizer.vocabulary_size, batch_size=1, explicit_states=True
    )
    copy_weights(trained, step_model)
    return TextGenerator(step_model, tokenizer, state_sizes(model_config), limits)


class TextGenerator(tf.Module):
    def __init__(
        self,
        step_model: keras.Model,
        tokenizer: Tokenizer,
        state_sizes: list[int],
        limits: GenerationLimits | None = None,
    ):
        super().__init__(name="text_generator")
        self.step_model, self.tokenizer, self.state_sizes = step_model, tokenizer, state_sizes
        self.limits = limits or GenerationLimits()

    def run_over(self, ids: tf.Tensor, states: list[tf.Tensor]):
        """Feed (1, time) ids from ``states``: last-position log-probabilities, new states."""
        logits, *states = self.step_model([ids, *states], training=False)
        return tf.nn.log_softmax(logits[:, -1, :]), states

    def prompt_state(self, prompt: tf.Tensor):
        """Log-probabilities of the token after ``prompt`` and the state reached, from zero state.

        An empty prompt starts from the unknown token (id 0), the model's most neutral context.
        """
        ids = self.tokenizer.encode(prompt)
        limit = self.limits.max_prompt_tokens
        check = tf.debugging.assert_less_equal(
            tf.size(ids),
            limit,
            message=f"the prompt is longer than generation.max_prompt_tokens={limit} tokens",
        )
        with tf.control_dependencies([check]):
            ids = tf.cond(tf.size(ids) > 0, lambda: ids, lambda: tf.zeros([1], tf.int64))
        zeros = [tf.zeros([1, size]) for size in self.state_sizes]
        return self.run_over(tf.cast(ids[tf.newaxis, :], tf.int32), zeros)

    @tf.function(input_signature=GENERATE_SIGNATURE)
    def generate(self, prompt, num_tokens, temperature, top_k, seed):
        limit = self.limits.max_tokens
        checks = [
            tf.debugging.assert_non_negative(num_tokens, message="num_tokens must be >= 0"),
            tf.debugging.assert_less_equal(
                num_tokens, limit, message=f"num_tokens must be at most {limit}"
            ),
        ]
        with tf.control_dependencies(checks):
            num_tokens = tf.identity(num_tokens)
        log_probabilities, states = self.prompt_state(prompt)
        generated = tf.TensorArray(tf.int64, size=num_tokens)
        for step in tf.range(num_tokens):
            next_id = sample(
                log_probabilities, temperature, top_k, tf.stack([seed, tf.cast(step, tf.int64)])
            )
            generated = generated.write(step, next_id)
            next_input = tf.reshape(tf.cast(next_id, tf.int32), [1, 1])
            log_probabilities, states = self.run_over(next_input, states)
        continuation = self.tokenizer.decode(generated.stack())
        separator = "" if self.tokenizer.level == "char" else " "
        return {
            "text": tf.strings.join([prompt, continuation], separator),
            "continuation": continuation,
        }

    def generate_text(
        self, prompt: str, num_tokens: int, temperature: float, top_k: int, seed: int
    ) -> str:
        """``generate`` for Python callers: plain values in, the whole text out."""
        outputs = self.generate(
            tf.constant(prompt),
            tf.constant(num_tokens),
            tf.constant(temperature, tf.float32),
            tf.constant(top_k),
            tf.constant(seed, tf.int64),
        )
        return outputs["text"].numpy().decode()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def next_token(self, text):
        """For each text: log-probabilities of every next token, and the most likely one."""
        log_probabilities = tf.map_fn(
            lambda one: self.prompt_state(one)[0][0],
            text,
            fn_output_signature=tf.TensorSpec([self.tokenizer.vocabulary_size], tf.float32),
        )
        best = tf.argmax(log_probabilities, axis=-1)
        return {
            "log_probabilities": log_probabilities,
            "next_token": tf.gather(self.tokenizer.tokens, best),
            "next_token_id": best,
        }


def sample(log_probabilities, temperature, top_k, seed) -> tf.Tensor:
    """One token id from (1, vocabulary) log-probabilities: greedy when temperature <= 0."""

    def draw():
        logits = log_probabilities / temperature
        k = tf.minimum(top_k, tf.shape(logits)[-1])
        kth_best = tf.math.top_k(logits, k=tf.maximum(k, 1)).values[:, -1:]
        logits = tf.where((k > 0) & (logits < kth_best), -1e9, logits)
        return tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int64)[0, 0]

    return tf.cond(temperature > 0, draw, lambda: tf.argmax(log_probabilities[0]))
