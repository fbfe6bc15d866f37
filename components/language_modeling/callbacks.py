"""Keras callbacks for training a language model over a token stream.

The state resetter belongs to the training setup (tuning trials need it too); the perplexity
and sample loggers only report progress.
"""

from __future__ import annotations

import math

import keras

from components import tracking
from components.language_modeling.evaluate import LanguageModelEvaluateConfig
from components.language_modeling.generation import text_generator
from components.language_modeling.model import LanguageModelConfig
from components.language_modeling.tokenization import Tokenizer


class StateResetter(keras.callbacks.Callback):
    """Zero the carried state where a stream starts: each epoch, and before validation."""

    def _reset(self):
        for layer in self.model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_test_begin(self, logs=None):
        self._reset()


class PerplexityLogger(keras.callbacks.Callback):
    """Adds perplexity (word level) or bits per character (char level) to each epoch's logs."""

    def __init__(self, level: str):
        super().__init__()
        self.level = level

    def on_epoch_end(self, epoch, logs=None):
        for prefix in ("", "val_"):
            nats = logs[f"{prefix}loss"]
            if self.level == "char":
                logs[f"{prefix}bits_per_char"] = nats / math.log(2)
            else:
                logs[f"{prefix}perplexity"] = math.exp(min(nats, 50.0))


class SampleLogger(keras.callbacks.Callback):
    """Generates a short sample after every epoch and logs it to MLflow, to read progress."""

    def __init__(
        self,
        model_config: LanguageModelConfig,
        settings: LanguageModelEvaluateConfig,
        tokenizer: Tokenizer,
    ):
        super().__init__()
        self.model_config, self.settings, self.tokenizer = model_config, settings, tokenizer

    def on_epoch_end(self, epoch, logs=None):
        generator = text_generator(self.model_config, self.model, self.tokenizer)
        sample = generator.generate_text(
            self.settings.sample_prompt,
            min(self.settings.sample_tokens, 200),
            self.settings.temperature,
            self.settings.top_k,
            self.settings.seed,
        )
        tracking.log_text(sample, f"samples/epoch_{epoch + 1:03d}.txt")
