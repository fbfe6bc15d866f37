"""Evaluate a language model over whole splits, as one continuous stream each.

The model reads every split from start to end with batch size 1, carrying its state across
windows, so every token but the first is scored exactly once: no sampling of windows, no state
resets inside a split. Reports nats per token, perplexity and bits per token (bits per character
at char level), and writes generated samples for reading.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from components import bless, tracking
from components.artifacts import Metrics, TokenizedCorpus
from components.language_modeling import baselines
from components.language_modeling.generation import TextGenerator


@dataclasses.dataclass
class LanguageModelEvaluateConfig:
    window: int = 200
    """Tokens fed per call; the state is carried, so this changes speed, not the result."""
    baselines: bool = True
    """Score the count-based baselines (unigram, Kneser-Ney bigram) on the same streams."""
    sample_prompt: str = ""
    sample_tokens: int = 300
    temperature: float = 0.8
    top_k: int = 0
    seed: int = 42


def run(
    config: LanguageModelEvaluateConfig,
    generator: TextGenerator,
    tokenized: TokenizedCorpus,
    out_dir: Path,
) -> Metrics:
    unit = "char" if generator.tokenizer.level == "char" else "token"
    results = {"unit": unit}
    for split in ("validation", "test"):
        nats, tokens = stream_nats(generator, tokenized.ids(split), config.window, split)
        results[split] = summarize(nats, tokens, unit)
    if config.baselines:
        results["baselines"] = _baseline_scores(
            tokenized, generator.tokenizer.vocabulary_size, unit
        )
    results["baseline_comparison"] = bless.baseline_comparison(
        "test perplexity",
        False,
        results["test"]["perplexity"],
        {name: s["test"]["perplexity"] for name, s in results.get("baselines", {}).items()},
    )
    sample = (
        generator.generate(
            tf.constant(config.sample_prompt),
            tf.constant(config.sample_tokens),
            tf.constant(config.temperature),
            tf.constant(config.top_k),
            tf.constant(config.seed, tf.int64),
        )["text"]
        .numpy()
        .decode()
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    (out_dir / "sample.txt").write_text(sample, encoding="utf-8")
    for split in ("validation", "test"):
        tracking.log_metrics(
            {f"{split}_{k}": v for k, v in results[split].items() if k != "tokens"}
        )
        tracking.log_metrics(
            {
                f"{split}_{name}_{k}": v
                for name, scores in results.get("baselines", {}).items()
                for k, v in scores[split].items()
                if k != "tokens"
            }
        )
    tracking.log_dict(results, "metrics.json")
    tracking.log_text(sample, "sample.txt")
    return Metrics(out_dir)


def _baseline_scores(tokenized: TokenizedCorpus, vocabulary_size: int, unit: str) -> dict:
    """Each count-based baseline's scores per split, fitted on the training stream."""
    counts = baselines.fit(tokenized.ids("train"), vocabulary_size)
    scores: dict[str, dict] = {name: {} for name in baselines.BASELINES}
    for split in ("validation", "test"):
        ids = tokenized.ids(split)
        for name, nats in baselines.nats(counts, ids).items():
            scores[name][split] = summarize(nats, len(ids) - 1, unit)
    return scores


def stream_nats(
    generator: TextGenerator, ids: np.ndarray, window: int, name: str = "stream"
) -> tuple[float, int]:
    """Negative log-likelihood (nats) of ``ids[1:]``, each given all before it; and the count."""
    states = [tf.zeros([1, size]) for size in generator.state_sizes]
    total = 0.0
    ids = ids.astype(np.int32)
    for start in tqdm(range(0, len(ids) - 1, window), desc=f"scoring {name}", mininterval=5):
        inputs = ids[start : start + window][np.newaxis, :]
        targets = ids[start + 1 : start + window + 1][np.newaxis, :]
        inputs = inputs[:, : targets.shape[1]]
        nats, states = _window_nats(generator.step_model, inputs, targets, states)
        total += float(nats)
    return total, len(ids) - 1


@tf.function(reduce_retracing=True)
def _window_nats(step_model, inputs, targets, states):
    logits, *states = step_model([inputs, *states], training=False)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    return tf.reduce_sum(losses), states


_LARGEST_EXPONENT = math.log(sys.float_info.max)


def summarize(nats: float, tokens: int, unit: str) -> dict[str, float]:
    """Nats, bits and perplexity per token; a diverged model's perplexity past float range is
    ``inf`` (it fails every blessing bound) instead of an OverflowError."""
    mean = nats / tokens
    return {
        "tokens": tokens,
        f"nats_per_{unit}": round(mean, 5),
        f"bits_per_{unit}": round(mean / math.log(2), 5),
        "perplexity": round(math.exp(mean), 4) if mean < _LARGEST_EXPONENT else math.inf,
    }
