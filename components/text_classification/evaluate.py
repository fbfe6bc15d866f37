"""Evaluate (Evaluator): score a binary text classifier on the held-out test split.

Writes metrics.json (accuracy, precision, recall, F1, ROC-AUC, log loss, confusion matrix,
accuracy sliced by text length), a confusion-matrix plot and the most confident mistakes.
Slicing by length shows where a cell forgets the start of long inputs (vanishing gradients).
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

from components import tracking
from components.artifacts import Examples, Metrics
from components.errors import ConfigError


@dataclasses.dataclass
class EvaluateConfig:
    threshold: float = 0.5
    """Probability at or above which a prediction counts as positive."""
    length_buckets: list[int] = dataclasses.field(default_factory=lambda: [100, 200, 400])
    """Word-count boundaries of the length slices (``<=100``, ``101-200``, ...)."""
    misclassified_examples: int = 10
    """How many of the most confident mistakes to keep for reading."""
    batch_size: int = 256

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"evaluate.threshold={self.threshold} must be between 0 and 1")


def run(
    config: EvaluateConfig,
    predict_probabilities: Callable[[np.ndarray], np.ndarray],
    examples: Examples,
    out_dir: Path,
    text_field: str = "text",
    baselines: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
) -> Metrics:
    """Score the model's probabilities of label 1 on the test split, and the ``baselines``'
    (texts -> name -> probabilities) beside it."""
    test = examples.load("test")
    texts = test[text_field].to_numpy()
    probabilities = np.asarray(predict_probabilities(texts)).reshape(-1)
    labels = test["label"].to_numpy()
    predicted = (probabilities >= config.threshold).astype(int)
    results = _scores(labels, predicted, probabilities)
    if baselines is not None:
        results |= _baseline_scores(config, labels, baselines(texts), results["accuracy"])
    results["by_length"] = _sliced_accuracy(
        test[text_field], labels, predicted, config.length_buckets
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    mistakes = _most_confident_mistakes(test, text_field, probabilities, predicted, config)
    (out_dir / "misclassified.json").write_text(json.dumps(mistakes, indent=2))
    names = examples.statistics().get("label_names", ["negative", "positive"])
    _plot_confusion_matrix(labels, predicted, names, out_dir / "confusion_matrix.png")
    tracking.log_metrics({f"test_{k}": v for k, v in results.items() if isinstance(v, float)})
    tracking.log_metrics(
        {
            f"test_{name}_{metric}": scores[metric]
            for name, scores in results.get("baselines", {}).items()
            for metric in ("accuracy", "roc_auc", "f1")
            if math.isfinite(scores[metric])
        }
    )
    tracking.log_metrics(
        {f"test_accuracy_len_{k}": v["accuracy"] for k, v in results["by_length"].items()}
    )
    tracking.log_dict(results, "metrics.json")
    tracking.log_dict({"misclassified": mistakes}, "misclassified.json")
    return Metrics(out_dir)


def _scores(labels: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray) -> dict:
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return {
        "examples": int(len(labels)),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, probabilities))
        if len(set(labels)) > 1
        else float("nan"),
        "loss": float(skm.log_loss(labels, clipped, labels=[0, 1])),
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
    }


def _baseline_scores(config, labels, baselines: dict[str, np.ndarray], accuracy: float) -> dict:
    """Each baseline's scores, the best by accuracy, and how far the model is above it."""
    scores = {
        name: _scores(labels, (np.asarray(p) >= config.threshold).astype(int), np.asarray(p))
        for name, p in baselines.items()
    }
    if not scores:
        return {}
    best = max(scores, key=lambda name: scores[name]["accuracy"])
    return {
        "baselines": scores,
        "best_baseline": best,
        "accuracy_over_best_baseline": accuracy - scores[best]["accuracy"],
    }


def _sliced_accuracy(texts: pd.Series, labels, predicted, boundaries: list[int]) -> dict:
    words = texts.str.split().str.len().to_numpy()
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


def _most_confident_mistakes(test, text_field, probabilities, predicted, config) -> list[dict]:
    wrong = np.flatnonzero(predicted != test["label"].to_numpy())
    confidence = np.abs(probabilities[wrong] - config.threshold)
    chosen = wrong[np.argsort(-confidence, kind="stable")][: config.misclassified_examples]
    return [
        {
            "origin": str(test["origin"].iloc[i]) if "origin" in test else str(i),
            "label": int(test["label"].iloc[i]),
            "probability": round(float(probabilities[i]), 4),
            "text": str(test[text_field].iloc[i])[:1000],
        }
        for i in chosen
    ]


def _plot_confusion_matrix(
    labels: np.ndarray, predicted: np.ndarray, names: list[str], path: Path
) -> None:
    figure = Figure(figsize=(4.5, 4))
    axis = figure.subplots()
    skm.ConfusionMatrixDisplay.from_predictions(
        labels,
        predicted,
        labels=[0, 1],
        display_labels=names,
        colorbar=False,
        ax=axis,
    )
    axis.set_title("Test confusion matrix")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    tracking.log_figure(figure, "confusion_matrix.png")
