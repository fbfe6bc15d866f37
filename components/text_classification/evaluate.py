"""Evaluate (Evaluator): score a text classifier on the held-out test split.

Writes metrics.json (accuracy, macro-F1, per-class precision/recall/F1, ROC-AUC, log loss, a
confusion matrix with the label names, accuracy sliced by text length; for two classes also the
positive class's precision, recall and F1), a confusion-matrix plot and the most confident
mistakes; for an attention model also those mistakes as HTML, each word shaded by its attention
weight. Slicing by length shows where a cell forgets the start of long inputs (vanishing
gradients).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn import metrics as skm

from components import bless, tracking
from components.artifacts import Examples, Metrics
from components.errors import ConfigError, require_one_of
from components.text_classification.explanations import TokenWeights, attention_html

ATTENTION_VIEW = "misclassified_attention.html"


@dataclasses.dataclass
class EvaluateConfig:
    threshold: float = 0.5
    """Two classes: the probability of label 1 at or above which a prediction is label 1. More
    classes: the likeliest class is the prediction."""
    length_buckets: list[int] = dataclasses.field(default_factory=lambda: [100, 200, 400])
    """Length boundaries of the slices (``<=100``, ``101-200``, ...), in ``length_unit``s."""
    length_unit: str = "words"
    """``words`` (split at spaces) or ``characters``, for languages written without spaces."""
    misclassified_examples: int = 10
    """How many of the most confident mistakes to keep for reading."""
    batch_size: int = 256

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"evaluate.threshold={self.threshold} must be between 0 and 1")
        require_one_of("evaluate.length_unit", self.length_unit, ("words", "characters"))


def run(
    config: EvaluateConfig,
    predict_probabilities: Callable[[np.ndarray], np.ndarray],
    examples: Examples,
    out_dir: Path,
    text_field: str = "text",
    baselines: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
    explain: Callable[[np.ndarray], TokenWeights] | None = None,
    branches: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
    stacking: dict | None = None,
) -> Metrics:
    """Score the model's probabilities on the test split, and the ``baselines``' (texts -> name ->
    probabilities) beside it. Probabilities are ``[n, classes]``, or ``[n]`` of label 1 for two.
    ``explain`` (texts -> tokens and attention weights) adds the HTML view of the mistakes;
    ``branches`` (texts -> name -> probabilities) scores a stacked model's parts alone (the
    ablation), beside the baselines but never compared with them for the blessing; ``stacking``
    (how the branches were joined) is recorded with them."""
    test = examples.load("test")
    names = examples.statistics().get("label_names", ["negative", "positive"])
    texts = test[text_field].to_numpy()
    labels = test["label"].to_numpy()
    probabilities = class_probabilities(predict_probabilities(texts), len(names))
    predicted = predicted_labels(probabilities, config.threshold)
    results = _scores(labels, predicted, probabilities, names)
    if baselines is not None:
        results["baselines"] = _baseline_scores(config, labels, baselines(texts), names)
    if branches is not None:
        results["branches"] = _baseline_scores(config, labels, branches(texts), names)
    if stacking is not None:
        results["stack"] = stacking
    scored = {name: scores["accuracy"] for name, scores in results.get("baselines", {}).items()}
    comparison = bless.baseline_comparison("accuracy", True, results["accuracy"], scored)
    results["baseline_comparison"] = comparison
    if comparison["best_baseline"] is not None:
        results["best_baseline"] = comparison["best_baseline"]
        results["accuracy_over_best_baseline"] = results["accuracy"] - comparison["baseline"]
    else:
        results.pop("baselines", None)  # none configured: no empty block
    results["length_unit"] = config.length_unit
    results["by_length"] = _sliced_accuracy(
        test[text_field], labels, predicted, config.length_buckets, config.length_unit
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    chosen = _most_confident_mistakes(labels, probabilities, predicted, config)
    mistakes = _described(test, text_field, probabilities, predicted, names, chosen)
    (out_dir / "misclassified.json").write_text(json.dumps(mistakes, indent=2))
    if explain is not None:
        title = "Most confident mistakes: where the model looked"
        page = attention_html(title, mistakes, explain(texts[chosen]))
        (out_dir / ATTENTION_VIEW).write_text(page, encoding="utf-8")
        tracking.log_artifact(out_dir / ATTENTION_VIEW)
    _plot_confusion_matrix(labels, predicted, names, out_dir / "confusion_matrix.png")
    tracking.log_metrics({f"test_{k}": v for k, v in results.items() if isinstance(v, float)})
    tracking.log_metrics(
        {
            f"test_{name}_{metric}": scores[metric]
            for kind in ("baselines", "branches")
            for name, scores in results.get(kind, {}).items()
            for metric in ("accuracy", "roc_auc", "macro_f1")
            if math.isfinite(scores[metric])
        }
    )
    tracking.log_metrics(
        {
            f"test_{metric}_{name}": scores[metric]
            for name, scores in results["per_class"].items()
            for metric in ("precision", "recall")
        }
    )
    tracking.log_metrics(
        {f"test_accuracy_len_{k}": v["accuracy"] for k, v in results["by_length"].items()}
    )
    tracking.log_dict(results, "metrics.json")
    tracking.log_dict({"misclassified": mistakes}, "misclassified.json")
    return Metrics(out_dir)


def class_probabilities(probabilities, classes: int) -> np.ndarray:
    """``[n, classes]`` probabilities; a binary model's ``[n]`` (or ``[n, 1]``) of label 1 becomes
    ``[1 - p, p]``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if classes == 2 and (probabilities.ndim == 1 or probabilities.shape[-1] == 1):
        positive = probabilities.reshape(-1)
        return np.stack([1.0 - positive, positive], axis=1)
    return probabilities.reshape(len(probabilities), classes)


def predicted_labels(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Label 1 at or above ``threshold`` for two classes, else the likeliest class."""
    if probabilities.shape[1] == 2:
        return (probabilities[:, 1] >= threshold).astype(int)
    return probabilities.argmax(axis=1)


def _scores(labels, predicted, probabilities: np.ndarray, names: list[str]) -> dict:
    classes = list(range(len(names)))
    clipped = np.clip(probabilities, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    scores = {
        "examples": int(len(labels)),
        "classes": len(names),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "macro_f1": float(np.mean(f1)),
        "roc_auc": _roc_auc(labels, probabilities, classes),
        "loss": float(skm.log_loss(labels, clipped, labels=classes)),
        "label_names": list(names),
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=classes).tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(names)
        },
    }
    if len(names) == 2:  # the positive class's scores, as binary classification reports them
        scores |= {"precision": float(precision[1]), "recall": float(recall[1]), "f1": float(f1[1])}
    return scores


def _roc_auc(labels, probabilities: np.ndarray, classes: list[int]) -> float:
    """Binary ROC-AUC, or the macro mean of one-vs-rest AUCs; NaN when a class is absent."""
    if set(classes) - set(labels):
        return float("nan")
    if len(classes) == 2:
        return float(skm.roc_auc_score(labels, probabilities[:, 1]))
    rows = probabilities / probabilities.sum(axis=1, keepdims=True)
    return float(skm.roc_auc_score(labels, rows, multi_class="ovr", labels=classes))


def _baseline_scores(config, labels, baselines: dict[str, np.ndarray], names: list[str]) -> dict:
    """Each baseline's scores, as the model's."""
    scores = {}
    for name, given in baselines.items():
        probabilities = class_probabilities(given, len(names))
        predicted = predicted_labels(probabilities, config.threshold)
        scores[name] = _scores(labels, predicted, probabilities, names)
    return scores


def _sliced_accuracy(texts: pd.Series, labels, predicted, boundaries: list[int], unit: str) -> dict:
    words = (texts.str.split().str.len() if unit == "words" else texts.str.len()).to_numpy()
    edges = [0, *sorted(boundaries), np.inf]
    slices = {}
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (words > low) & (words <= high)
        if inside.any():
            name = f"{low + 1}-{int(high)}" if np.isfinite(high) else f"over_{low}"
            slices[name] = {
                "examples": int(inside.sum()),
                "accuracy": float(np.mean(labels[inside] == predicted[inside])),
            }
    return slices


def _most_confident_mistakes(labels, probabilities, predicted, config) -> np.ndarray:
    """Rows of the wrong predictions the model was surest of (its probability of the class it
    chose), surest first."""
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][: config.misclassified_examples]


def _described(test, text_field, probabilities, predicted, names, chosen) -> list[dict]:
    return [
        {
            "origin": str(test["origin"].iloc[i]) if "origin" in test else str(i),
            "label": names[int(test["label"].iloc[i])],
            "predicted": names[int(predicted[i])],
            "probability": round(float(probabilities[i, predicted[i]]), 4),
            "text": str(test[text_field].iloc[i])[:1000],
        }
        for i in chosen
    ]


def _plot_confusion_matrix(
    labels: np.ndarray, predicted: np.ndarray, names: list[str], path: Path
) -> None:
    side = max(4.0, 0.6 * len(names) + 2)
    figure = Figure(figsize=(side + 0.5, side))
    axis = figure.subplots()
    skm.ConfusionMatrixDisplay.from_predictions(
        labels,
        predicted,
        labels=list(range(len(names))),
        display_labels=names,
        colorbar=False,
        xticks_rotation="vertical" if len(names) > 4 else "horizontal",
        ax=axis,
    )
    axis.set_title("Test confusion matrix")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    tracking.log_figure(figure, "confusion_matrix.png")
