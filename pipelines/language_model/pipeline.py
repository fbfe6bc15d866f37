"""Recurrent language models: character level (Tiny Shakespeare) or word level (Penn Treebank).

ingest (contiguous splits) -> tokenize (vocabulary fitted on train, id streams) -> [tune] ->
train (truncated BPTT over a continuous stream: stateful windows, state reset each epoch; or random
stateless windows) -> evaluate (whole validation and test streams; perplexity, bits per token;
a generated sample) -> bless (perplexity bars, no worse than what serves) -> export (if blessed:
SavedModel with ``serving_default`` next-token log-probabilities and an in-graph ``generate``
signature).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import tensorflow as tf

from components import bless, export, tracking, train, tune
from components.artifacts import (
    Corpus,
    Hyperparameters,
    Metrics,
    PushedModel,
    TokenizedCorpus,
    TrainedModel,
)
from components.language_modeling import evaluate, ingest, tokenization
from components.language_modeling.generation import TextGenerator
from components.language_modeling.model import (
    LanguageModelConfig,
    build_language_model,
    copy_weights,
    state_sizes,
)
from components.language_modeling.streams import random_windows, stateful_windows, window_count
from components.language_modeling.tokenization import Tokenizer
from pipelines import tuning
from pipelines.language_model import corpora
from pipelines.runner import Stage
from pipelines.stages import bless_stage

MODEL_PRESETS = {
    "simplernn": {"model.cell": "simple_rnn"},
    "lstm": {"model.cell": "lstm"},
    "gru": {"model.cell": "gru"},
}
# Test metrics the evaluate stage logs to MLflow (per char or per token, by tokenization.level),
# compared across runs by ``make compare``.
COMPARE_METRICS = [
    "test_perplexity",
    "test_nats_per_char",
    "test_bits_per_char",
    "test_nats_per_token",
    "test_bits_per_token",
]


@dataclasses.dataclass
class WindowConfig:
    num_steps: int = 20
    """Tokens per window: how far back gradients flow (truncated BPTT)."""
    stateful: bool = True
    """Carry the state across windows of a continuous stream; false trains on random windows."""


@dataclasses.dataclass
class LanguageModelPipelineConfig:
    data: corpora.CorpusConfig = dataclasses.field(default_factory=corpora.CorpusConfig)
    ingest: ingest.CorpusIngestConfig = dataclasses.field(default_factory=ingest.CorpusIngestConfig)
    tokenize: tokenization.TokenizerConfig = dataclasses.field(
        default_factory=tokenization.TokenizerConfig
    )
    model: LanguageModelConfig = dataclasses.field(default_factory=LanguageModelConfig)
    windows: WindowConfig = dataclasses.field(default_factory=WindowConfig)
    tune: tune.TuneConfig = dataclasses.field(default_factory=tune.TuneConfig)
    train: train.TrainConfig = dataclasses.field(
        default_factory=lambda: train.TrainConfig(clipnorm=None, global_clipnorm=5.0)
    )
    evaluate: evaluate.LanguageModelEvaluateConfig = dataclasses.field(
        default_factory=evaluate.LanguageModelEvaluateConfig
    )
    blessing: bless.BlessingConfig = dataclasses.field(default_factory=bless.BlessingConfig)
    export: export.ExportConfig = dataclasses.field(
        default_factory=lambda: export.ExportConfig(model_name="language_model")
    )


Config = LanguageModelPipelineConfig  # the name the CLI looks up in every pipeline module


def run_ingest(config: Config, inputs: dict, out_dir: Path) -> Corpus:
    return ingest.run(config.ingest, corpora.source(config.data), out_dir)


def run_tokenize(config: Config, inputs: dict, out_dir: Path) -> TokenizedCorpus:
    return tokenization.run(config.tokenize, inputs["ingest"], out_dir)


def run_tune(config: Config, inputs: dict, out_dir: Path) -> Hyperparameters:
    return tuning.search(config, training_setup(config, inputs), out_dir)


def run_train(config: Config, inputs: dict, out_dir: Path) -> TrainedModel:
    config = tuning.tuned(config, inputs)
    # Not in the setup: tuning deep-copies callbacks for every trial, and samples are for reading
    # the progress of the one model trained here.
    sampler = SampleLogger(config, inputs["tokenize"].tokenizer())
    return tuning.fit(config, training_setup(config, inputs), out_dir, [sampler])


def training_setup(config: Config, inputs: dict) -> train.TrainingSetup:
    """Windows over the id streams and a model builder, shared by tune and train. The batch size
    and window length are part of a stateful model's shape, so a search keeps them fixed."""
    tokenized = inputs["tokenize"]
    tokenizer = tokenized.tokenizer()
    keras.utils.set_random_seed(config.train.seed)  # random windows depend on the config alone
    batch, steps, stateful = (
        config.train.batch_size,
        config.windows.num_steps,
        config.windows.stateful,
    )
    train_ids = tokenized.ids("train")
    train_windows = (
        stateful_windows(train_ids, batch, steps)
        if stateful
        else random_windows(train_ids, batch, steps, config.train.seed)
    )
    data = train.TrainingData(
        train=train_windows.prefetch(tf.data.AUTOTUNE),
        validation=stateful_windows(tokenized.ids("validation"), batch, steps),
        samples_per_epoch=window_count(len(train_ids), batch, steps, stateful) * batch * steps,
        sample_unit="tokens",
    )
    callbacks = [PerplexityLogger(tokenizer.level)]
    if stateful:
        callbacks.insert(0, StateResetter())
    return train.TrainingSetup(
        build_model=lambda variant: build_language_model(
            variant.model,
            tokenizer.vocabulary_size,
            batch_size=batch,
            stateful=stateful,
            sequence_length=steps,
        ),
        data=data,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[],
        callbacks=callbacks,
    )


def run_evaluate(config: Config, inputs: dict, out_dir: Path) -> Metrics:
    config = tuning.tuned(config, inputs)  # the step model is rebuilt from config.model
    tokenizer = inputs["tokenize"].tokenizer()
    generator = text_generator(config.model, inputs["train"].load(), tokenizer)
    return evaluate.run(config.evaluate, generator, inputs["tokenize"], out_dir)


def run_export(config: Config, inputs: dict, out_dir: Path) -> PushedModel:
    config = tuning.tuned(config, inputs)  # the step model is rebuilt from config.model
    tokenizer = inputs["tokenize"].tokenizer()
    generator = text_generator(config.model, inputs["train"].load(), tokenizer)
    archive = keras.export.ExportArchive()
    archive.track(generator.step_model)
    archive.track(generator.tokenizer)
    archive.add_endpoint("serving_default", generator.next_token)
    archive.add_endpoint("generate", generator.generate)
    example = {"text": tf.constant([config.evaluate.sample_prompt or "the", "a"])}
    return export.run(config.export, archive, example, inputs["bless"], inputs["train"], out_dir)


def headline(metrics: dict) -> str:
    test, unit = metrics["test"], metrics["unit"]
    return (
        f"perplexity {test['perplexity']:.2f}, {test[f'nats_per_{unit}']:.4f} nats/{unit}, "
        f"{test[f'bits_per_{unit}']:.4f} bits/{unit} over {test['tokens']:,} {unit}s"
    )


def benchmark_columns(metrics: dict) -> dict[str, str]:
    unit = metrics["unit"]
    validation, test = metrics["validation"], metrics["test"]
    return {
        "valid perplexity": f"{validation['perplexity']:.2f}",
        "test perplexity": f"**{test['perplexity']:.2f}**",
        f"valid nats/{unit}": f"{validation[f'nats_per_{unit}']:.4f}",
        f"test bits/{unit}": f"{test[f'bits_per_{unit}']:.4f}",
    }


def text_generator(
    model_config: LanguageModelConfig, trained: keras.Model, tokenizer: Tokenizer
) -> TextGenerator:
    """A batch-1 step model carrying explicit state, with the trained weights, and the tokenizer."""
    step_model = build_language_model(
        model_config, tokenizer.vocabulary_size, batch_size=1, explicit_states=True
    )
    copy_weights(trained, step_model)
    return TextGenerator(step_model, tokenizer, state_sizes(model_config))


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

    def __init__(self, config: Config, tokenizer: Tokenizer):
        super().__init__()
        self.config, self.tokenizer = config, tokenizer

    def on_epoch_end(self, epoch, logs=None):
        generator = text_generator(self.config.model, self.model, self.tokenizer)
        settings = self.config.evaluate
        sample = generator.generate_text(
            settings.sample_prompt,
            min(settings.sample_tokens, 200),
            settings.temperature,
            settings.top_k,
            settings.seed,
        )
        tracking.log_text(sample, f"samples/epoch_{epoch + 1:03d}.txt")


# Not in STAGES: `--tune` puts it before train, which then trains with the best values it found.
TUNE_STAGE = Stage(
    "tune",
    run_tune,
    Hyperparameters,
    ("tokenize",),
    config_sections=("tune", "model", "windows", "train"),
)
STAGES = [
    Stage(
        "ingest",
        run_ingest,
        Corpus,
        config_sections=("data", "ingest"),
        external_state=lambda config: corpora.local_files(config.data),
    ),
    Stage("tokenize", run_tokenize, TokenizedCorpus, ("ingest",), config_sections=("tokenize",)),
    Stage(
        "train",
        run_train,
        TrainedModel,
        ("tokenize",),
        optional_inputs=("tune",),
        config_sections=("model", "windows", "train", "evaluate"),
        resumable=True,
    ),
    # Both rebuild the model from config.model, so they too apply what a tune stage found.
    Stage(
        "evaluate",
        run_evaluate,
        Metrics,
        ("tokenize", "train"),
        optional_inputs=("tune",),
        config_sections=("model", "evaluate"),
    ),
    bless_stage("evaluate"),
    Stage(
        "export",
        run_export,
        PushedModel,
        ("tokenize", "train", "bless"),
        optional_inputs=("tune",),
        config_sections=("model", "evaluate", "export"),
    ),
]
