"""Text classification, IMDB sentiment by default: config, stage wiring and the pipeline spec.

ingest (IMDB mirror or TFDS, or the user's table / folders / files per label / TFDS set) ->
preprocess (vectorizer fitted on train) -> [tune] -> train (recurrent classifier on token ids,
binary or multi-class) -> ngrams (the NBSVM branch, fitted on train) -> stack (both branches
joined, weights fitted on validation) -> evaluate (test split, each branch alone and the
baselines beside) -> bless (bars, the best baseline, no worse than what serves) -> export (if
blessed: SavedModel taking raw strings).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from components import bless, export, shards, tracking, train, tune
from components.artifacts import (
    Examples,
    Hyperparameters,
    Metrics,
    NgramModel,
    PushedModel,
    StackedModel,
    TrainedModel,
    Vocabulary,
)
from components.text_classification import (
    baselines,
    evaluate,
    explanations,
    ingest,
    ngrams,
    pretrained,
    signatures,
    stack,
    vectorize,
)
from components.text_classification.model import (
    TextClassifierConfig,
    build_text_classifier,
    loss_and_metrics,
)
from pipelines.sentiment import sources
from pipelines.spec import (
    HEADLINE_SEEDS,
    UPSTREAM,
    Benchmark,
    BenchmarkRun,
    PipelineSpec,
    Stage,
    UpstreamRun,
)
from pipelines.stages import bless_stage
from serving import deployment


@dataclasses.dataclass
class SentimentConfig:
    data: sources.TextDataConfig = dataclasses.field(default_factory=sources.TextDataConfig)
    ingest: ingest.IngestConfig = dataclasses.field(default_factory=ingest.IngestConfig)
    preprocess: vectorize.TextVectorizationConfig = dataclasses.field(
        default_factory=vectorize.TextVectorizationConfig
    )
    ngrams: ngrams.NgramConfig = dataclasses.field(default_factory=ngrams.NgramConfig)
    model: TextClassifierConfig = dataclasses.field(default_factory=TextClassifierConfig)
    tune: tune.TuneConfig = dataclasses.field(default_factory=tune.TuneConfig)
    train: train.TrainConfig = dataclasses.field(default_factory=train.TrainConfig)
    baselines: baselines.TextBaselineConfig = dataclasses.field(
        default_factory=baselines.TextBaselineConfig
    )
    evaluate: evaluate.EvaluateConfig = dataclasses.field(default_factory=evaluate.EvaluateConfig)
    blessing: bless.BlessingConfig = dataclasses.field(default_factory=bless.BlessingConfig)
    export: export.ExportConfig = dataclasses.field(default_factory=export.ExportConfig)


def run_ingest(config: SentimentConfig, inputs: dict, out_dir: Path) -> Examples:
    return ingest.run(config.ingest, sources.source(config.data), out_dir)


def run_preprocess(config: SentimentConfig, inputs: dict, out_dir: Path) -> Vocabulary:
    return vectorize.run(config.preprocess, inputs["ingest"], out_dir)


def run_ngrams(config: SentimentConfig, inputs: dict, out_dir: Path) -> NgramModel:
    return ngrams.run(config.ngrams, inputs["ingest"], out_dir)


def run_tune(config: SentimentConfig, inputs: dict, out_dir: Path) -> Hyperparameters:
    setup = training_setup(config, inputs)
    return tune.search(config.tune, config.train, config.model, setup, out_dir)


def run_train(config: SentimentConfig, inputs: dict, out_dir: Path) -> TrainedModel:
    return train.fit(config.train, config.model, training_setup(config, inputs), out_dir)


def training_setup(config: SentimentConfig, inputs: dict) -> train.TrainingSetup:
    """Vectorized, batched reviews and a classifier builder, shared by tune and train."""
    examples = inputs["ingest"]
    vectorizer = vectorize.load_vectorizer(inputs["preprocess"])
    # Seed before the input pipeline exists: its shuffle order then depends on the config alone,
    # not on what else ran earlier in this process.
    keras.utils.set_random_seed(config.train.seed)

    def batches(split: str) -> tf.data.Dataset:
        frame = examples.load(split)
        reviews = tf.data.Dataset.from_tensor_slices((frame["text"].values, frame["label"].values))
        if split == "train":
            reviews = reviews.shuffle(len(frame), seed=config.train.seed)
        return (
            reviews.batch(config.train.batch_size)
            .map(lambda text, label: (vectorizer(text), label), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )

    classes = len(examples.statistics()["label_names"])
    loss, metrics = loss_and_metrics(classes)

    def build_model(model_config: TextClassifierConfig) -> keras.Model:
        classifier = build_text_classifier(
            model_config, vectorizer.vocabulary_size(), config.preprocess.sequence_length, classes
        )
        if model_config.init_from:
            language_model = pretrained.find(model_config.init_from)
            copied = pretrained.initialize(classifier, language_model, vectorizer.get_vocabulary())
            tracking.log_metrics(copied)
            tracking.set_tags(
                {
                    "init_from": str(language_model.run_dir),
                    "init_from_mlflow_run": language_model.mlflow_run_id,
                }
            )
        return classifier

    return train.TrainingSetup(
        build_model=build_model,
        data=train.TrainingData(
            batches("train"),
            batches("validation"),
            len(examples.load("train")),
            "reviews",
            train_shards=shards.read(inputs["preprocess"].train_shards_dir),
        ),
        loss=loss,
        metrics=metrics,
    )


def run_stack(config: SentimentConfig, inputs: dict, out_dir: Path) -> StackedModel:
    recurrent = signatures.end_to_end_model(inputs["train"], inputs["preprocess"])

    def predict(texts: np.ndarray) -> np.ndarray:
        return recurrent.predict(tf.constant(texts), batch_size=256, verbose=2)

    return stack.run(inputs["ingest"], inputs["ngrams"], predict, out_dir)


def run_evaluate(config: SentimentConfig, inputs: dict, out_dir: Path) -> Metrics:
    stacked = inputs["stack"] if inputs["stack"].enabled else None
    if stacked is None:
        classifier = signatures.end_to_end_model(inputs["train"], inputs["preprocess"])
    else:
        classifier = signatures.branch_scores_model(inputs["train"], inputs["preprocess"], stacked)
    branch_scores = {}  # each branch alone, from the same pass that scores the stacked model

    def predict(texts: np.ndarray) -> np.ndarray:
        scores = classifier.predict(
            tf.constant(texts), batch_size=config.evaluate.batch_size, verbose=2
        )
        if stacked is None:
            return scores
        branch_scores.update(recurrent=scores[1], ngram=scores[2])
        return scores[0]

    def predict_baselines(texts: np.ndarray) -> dict[str, np.ndarray]:
        characters = config.preprocess.split == "character"
        return baselines.predict(config.baselines, inputs["ingest"], texts, characters)

    explain = explanations.attention_explainer(
        inputs["train"], inputs["preprocess"], config.evaluate.batch_size, stacked
    )
    return evaluate.run(
        config.evaluate,
        predict,
        inputs["ingest"],
        out_dir,
        baselines=predict_baselines,
        explain=explain,
        branches=(lambda texts: branch_scores) if stacked is not None else None,
        stacking=stacked.weights() if stacked is not None else None,
    )


def run_export(config: SentimentConfig, inputs: dict, out_dir: Path) -> PushedModel:
    names = inputs["ingest"].statistics()["label_names"]

    def build_archive() -> keras.export.ExportArchive:
        return signatures.serving_archive(
            inputs["train"],
            inputs["preprocess"],
            config.evaluate.threshold,
            tuple(names),
            inputs["stack"],
        )

    example = {"text": tf.constant(signatures.SAMPLE_REVIEWS)}
    return export.run(
        config.export,
        build_archive,
        example,
        inputs["bless"],
        inputs["train"],
        out_dir,
        write_deployment=deployment.write_deployment,
    )


def headline(metrics: dict) -> str:
    line = f"accuracy {metrics['accuracy']:.4f}, ROC-AUC {metrics['roc_auc']:.4f}"
    if metrics.get("classes", 2) > 2:
        line += f", macro-F1 {metrics['macro_f1']:.4f} over {metrics['classes']} classes"
    if "branches" in metrics:
        alone = ", ".join(f"{n} {s['accuracy']:.4f}" for n, s in metrics["branches"].items())
        line += f"; branches alone: {alone}"
    if "best_baseline" in metrics:
        best = metrics["best_baseline"]
        line += f" (best baseline {best}: {metrics['baselines'][best]['accuracy']:.4f})"
    return line


def benchmark_columns(metrics: dict) -> dict[str, str]:
    """Test scores for the benchmark table, with accuracy by text length."""
    unit = metrics.get("length_unit", "words")
    by_length = {
        f"acc. {name} {unit}": f"{s['accuracy']:.3f}" for name, s in metrics["by_length"].items()
    }

    def accuracy_of(kind: str, name: str) -> str:
        scores = metrics.get(kind, {}).get(name)
        return f"{scores['accuracy']:.4f}" if scores else "n/a"

    return {
        "test accuracy": f"**{metrics['accuracy']:.4f}**",
        "ROC-AUC": f"{metrics['roc_auc']:.4f}",
        "F1": f"{metrics.get('f1', metrics.get('macro_f1')):.4f}",  # macro over > 2 classes
        "TF-IDF LR acc.": accuracy_of("baselines", "tfidf_logreg"),
        "NBSVM acc.": accuracy_of("baselines", "nbsvm"),
        "recurrent branch acc.": accuracy_of("branches", "recurrent"),
        "n-gram branch acc.": accuracy_of("branches", "ngram"),
        "n-gram fit": f"{fit / 60:.1f} min" if (fit := _ngram_fit_seconds(metrics)) else "n/a",
        **by_length,
    }


def _ngram_fit_seconds(metrics: dict) -> float | None:
    """The n-gram branch's fit time (its vectorizer and regression), beside the recurrent
    model's training time in benchmark rows."""
    return metrics.get("stack", {}).get("ngram_branch", {}).get("fit_seconds")


TRAIN_SECTIONS = ("preprocess", "model", "train")
RECURRENT_ONLY = ("ngrams.enabled=false",)
"""The rows measured before the n-gram branch existed: the recurrent model alone."""
SPEC = PipelineSpec(
    name="sentiment",
    config_class=SentimentConfig,
    default_config="sentiment.yaml",
    stages=[
        Stage(
            "ingest",
            run_ingest,
            Examples,
            config_sections=("data", "ingest"),
            external_state=lambda config: sources.files_state(config.data),
        ),
        Stage(
            "preprocess", run_preprocess, Vocabulary, ("ingest",), config_sections=("preprocess",)
        ),
        Stage(
            "train",
            run_train,
            TrainedModel,
            ("ingest", "preprocess"),
            config_sections=TRAIN_SECTIONS,
            external_state=lambda config: pretrained.external_state(config.model.init_from),
            resumable=True,
        ),
        # After train, so the workers of a multi-worker run (which stop at train) skip it; its
        # cache key is the data and its own section, so seeds and recurrent variants share it.
        Stage("ngrams", run_ngrams, NgramModel, ("ingest",), config_sections=("ngrams",)),
        Stage(
            "stack",
            run_stack,
            StackedModel,
            ("ingest", "preprocess", "ngrams", "train"),
        ),
        Stage(
            "evaluate",
            run_evaluate,
            Metrics,
            ("ingest", "preprocess", "train", "stack"),
            config_sections=("preprocess", "evaluate", "baselines"),
        ),
        bless_stage("evaluate"),
        Stage(
            "export",
            run_export,
            PushedModel,
            ("ingest", "preprocess", "train", "stack", "bless"),
            config_sections=("evaluate", "export"),
        ),
    ],
    tune_stage=Stage(
        "tune",
        run_tune,
        Hyperparameters,
        ("ingest", "preprocess"),
        config_sections=("tune", *TRAIN_SECTIONS),
    ),
    # ``make sentiment MODEL=bigru`` shorthands for the cell/direction pair.
    model_presets={
        "simplernn": {"model.cell": "simple_rnn", "model.bidirectional": False},
        "lstm": {"model.cell": "lstm", "model.bidirectional": False},
        "gru": {"model.cell": "gru", "model.bidirectional": False},
        "bisimplernn": {"model.cell": "simple_rnn", "model.bidirectional": True},
        "bilstm": {"model.cell": "lstm", "model.bidirectional": True},
        "bigru": {"model.cell": "gru", "model.bidirectional": True},
        # Attention pooling: a weighted mean over the BiGRU's outputs, the weights served by the
        # ``explain`` signature and drawn over the evaluation's mistakes.
        "bigru-attention": {
            "model.cell": "gru",
            "model.bidirectional": True,
            "model.pooling": "attention",
        },
    },
    compare_metrics=["test_accuracy", "test_roc_auc", "test_f1", "test_loss"],
    headline=headline,
    benchmark=Benchmark(
        make_target="bench-sentiment",
        # The default config pools over time (max), which gives every step a short gradient
        # path; the "-last" runs classify from the final state only, the classic setup in which
        # SimpleRNN's vanishing gradients show on long reviews.
        runs={
            # The default: the BiGRU stacked with the n-gram branch; its row also scores each
            # branch alone (the ablation) and NBSVM, the baseline it must beat.
            "bigru-ngram": BenchmarkRun("sentiment.yaml", "bigru", seeds=HEADLINE_SEEDS),
            "simplernn": BenchmarkRun("sentiment.yaml", "simplernn", RECURRENT_ONLY),
            "lstm": BenchmarkRun("sentiment.yaml", "lstm", RECURRENT_ONLY),
            "gru": BenchmarkRun("sentiment.yaml", "gru", RECURRENT_ONLY),
            "bilstm": BenchmarkRun("sentiment.yaml", "bilstm", RECURRENT_ONLY),
            "bigru": BenchmarkRun("sentiment.yaml", "bigru", RECURRENT_ONLY, seeds=HEADLINE_SEEDS),
            "simplernn-last": BenchmarkRun(
                "sentiment.yaml", "simplernn", ("model.pooling=last", *RECURRENT_ONLY)
            ),
            "lstm-last": BenchmarkRun(
                "sentiment.yaml", "lstm", ("model.pooling=last", *RECURRENT_ONLY)
            ),
            "bigru-relu_max": BenchmarkRun(
                "sentiment.yaml", "bigru", ("model.pooling=relu_max", *RECURRENT_ONLY)
            ),
            # Whole reviews: about 13% of IMDB's test reviews run past the default's 400 tokens.
            "bigru-800": BenchmarkRun(
                "sentiment.yaml",
                "bigru",
                ("preprocess.sequence_length=800", *RECURRENT_ONLY),
                seeds=HEADLINE_SEEDS,
            ),
            "bigru-attention": BenchmarkRun("sentiment.yaml", "bigru-attention", RECURRENT_ONLY),
            # Against the epoch-1 peak: embedding channels dropped, decoupled weight decay, the
            # learning rate halved after each epoch without a better validation loss.
            "bigru-regularized": BenchmarkRun(
                "sentiment.yaml",
                "bigru",
                (
                    "model.embedding_dropout=0.3",
                    "train.optimizer=adamw",
                    "train.weight_decay=0.1",
                    "train.reduce_lr_factor=0.5",
                    *RECURRENT_ONLY,
                ),
            ),
            # Pre-trained (Dai & Le 2015): a word LM of the training reviews, then fine-tuned.
            "bigru-lm-init": BenchmarkRun(
                "sentiment.yaml",
                "bigru",
                (f"model.init_from={UPSTREAM}", *RECURRENT_ONLY),
                upstream=(
                    UpstreamRun("sentiment", "sentiment.yaml", stages=("ingest",)),
                    UpstreamRun(
                        "language_model", "imdb_reviews_lm.yaml", (f"data.path={UPSTREAM}",)
                    ),
                ),
            ),
            # A second public data set: Chinese reviews, read character by character.
            "chinese-reviews-bigru-ngram": BenchmarkRun(
                "chinese_reviews.yaml", "bigru", dataset="chinese-reviews"
            ),
            "chinese-reviews-bigru": BenchmarkRun(
                "chinese_reviews.yaml", "bigru", RECURRENT_ONLY, dataset="chinese-reviews"
            ),
        },
        columns=benchmark_columns,
    ),
)
