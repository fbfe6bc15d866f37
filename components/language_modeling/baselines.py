"""Count-based language models the recurrent one must beat, fitted on the training stream.

``unigram`` is add-one smoothed token frequencies (no context at all); ``kn_bigram`` is an
interpolated Kneser-Ney bigram (discount 0.75, continuation counts add-one smoothed over the
vocabulary), the classic strong baseline that sees one token of context. Both score every token
of a split given the one before it, as the recurrent model is scored, so the numbers compare.
"""

from __future__ import annotations

import numpy as np

BASELINES = ("unigram", "kn_bigram")
DISCOUNT = 0.75


def fit(train_ids: np.ndarray, vocabulary_size: int) -> dict:
    """The counts both baselines need, from the training stream."""
    ids = train_ids.astype(np.int64)
    pairs, pair_counts = np.unique(ids[:-1] * vocabulary_size + ids[1:], return_counts=True)
    previous, following = pairs // vocabulary_size, pairs % vocabulary_size
    return {
        "vocabulary_size": vocabulary_size,
        "unigram": np.bincount(ids, minlength=vocabulary_size),
        "pairs": pairs,
        "pair_counts": pair_counts,
        # How often each token starts a pair, and how many distinct tokens follow it.
        "context_counts": np.bincount(previous, weights=pair_counts, minlength=vocabulary_size),
        "followers": np.bincount(previous, minlength=vocabulary_size),
        # In how many distinct contexts each token appears (Kneser-Ney's continuation count).
        "continuations": np.bincount(following, minlength=vocabulary_size),
    }


def nats(counts: dict, ids: np.ndarray) -> dict[str, float]:
    """Baseline name -> total negative log-likelihood (nats) of ``ids[1:]``, each given the token
    before it (``len(ids) - 1`` tokens, as the recurrent model's stream score)."""
    size = counts["vocabulary_size"]
    ids = ids.astype(np.int64)
    previous, current = ids[:-1], ids[1:]
    unigram = (counts["unigram"] + 1.0) / (counts["unigram"].sum() + size)
    continuation = (counts["continuations"] + 1.0) / (counts["continuations"].sum() + size)
    pair_count = _lookup(counts["pairs"], counts["pair_counts"], previous * size + current)
    context = counts["context_counts"][previous]
    seen = context > 0
    safe = np.where(seen, context, 1.0)
    backoff = DISCOUNT * counts["followers"][previous] / safe
    bigram = np.maximum(pair_count - DISCOUNT, 0.0) / safe + backoff * continuation[current]
    bigram = np.where(seen, bigram, continuation[current])
    return {
        "unigram": float(-np.log(unigram[current]).sum()),
        "kn_bigram": float(-np.log(bigram).sum()),
    }


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values`` at each query's position in the sorted ``keys``; 0 where a query is absent."""
    position = np.clip(np.searchsorted(keys, queries), 0, max(len(keys) - 1, 0))
    found = keys[position] == queries if len(keys) else np.zeros(len(queries), bool)
    return np.where(found, values[position], 0).astype(np.float64)
