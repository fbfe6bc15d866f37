"""What an attention classifier looked at: each token it read and its attention weight.

``attention_explainer`` turns raw texts into tokens and weights through the same graph as the
``explain`` serving signature (``signatures.py``); evaluation renders the most confident mistakes
with ``attention_html``, every word shaded by its weight, so a reader sees which words misled it.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from components.artifacts import StackedModel, TrainedModel, Vocabulary
from components.text_classification.signatures import explainer_model, token_strings

TokenWeights = tuple[list[list[str]], list[np.ndarray]]
"""Per text: the tokens the model read (padding dropped) and their weights, in order."""


def attention_explainer(
    trained: TrainedModel,
    vocabulary: Vocabulary,
    batch_size: int = 256,
    stacked: StackedModel | None = None,
) -> Callable[[np.ndarray], TokenWeights] | None:
    """Texts -> their tokens and attention weights; None unless the model pools with attention."""
    explainer = explainer_model(trained, vocabulary, stacked)
    if explainer is None:
        return None
    strings = np.array(token_strings(vocabulary), dtype=str)

    def explain(texts: np.ndarray) -> TokenWeights:
        if len(texts) == 0:
            return [], []
        _, token_ids, weights = explainer.predict(
            tf.constant(texts), batch_size=batch_size, verbose=0
        )
        read = token_ids != 0
        tokens = [strings[ids[kept]].tolist() for ids, kept in zip(token_ids, read, strict=True)]
        return tokens, [row[kept] for row, kept in zip(weights, read, strict=True)]

    return explain


def attention_html(title: str, rows: list[dict], token_weights: TokenWeights) -> str:
    """A standalone page: per row, its fields (label, predicted, probability, ...) above its
    tokens, each shaded by its weight relative to the text's largest (the weight on hover)."""
    sections = []
    for row, tokens, weights in zip(rows, *token_weights, strict=True):
        heaviest = float(np.max(weights)) if len(weights) else 1.0
        words = " ".join(
            f'<span title="{weight:.3f}" style="background: rgba(230, 80, 0, '
            f'{weight / heaviest if heaviest > 0 else 0.0:.2f})">{html.escape(token)}</span>'
            for token, weight in zip(tokens, weights.tolist(), strict=True)
        )
        fields = ", ".join(
            f"{html.escape(key)}: <b>{html.escape(str(value))}</b>"
            for key, value in row.items()
            if key != "text"
        )
        sections.append(f"<section><p>{fields}</p><p>{words}</p></section>")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "section{border-bottom:1px solid #ccc;padding:.5em 0;line-height:1.8}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
        "<p>Each word the model read, shaded by its attention weight (darkest: the text's "
        "largest); hover for the weight. Words past the model's sequence length are not shown."
        f"</p>\n{chr(10).join(sections)}\n</body></html>\n"
    )
