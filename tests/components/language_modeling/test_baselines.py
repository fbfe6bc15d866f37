"""The count-based language models the recurrent one is held against."""

import math

import numpy as np
import pytest

from components.language_modeling import baselines


def test_unigram_is_add_one_smoothed_frequency():
    counts = baselines.fit(np.array([1, 1, 1, 2]), vocabulary_size=4)
    nats = baselines.nats(counts, np.array([0, 1, 3]))  # scores 1 then 3 (never seen)
    expected = -math.log((3 + 1) / (4 + 4)) - math.log((0 + 1) / (4 + 4))
    assert nats["unigram"] == pytest.approx(expected)


def test_kneser_ney_bigram_is_a_distribution_and_learns_what_follows_what():
    rng = np.random.default_rng(0)
    vocabulary = 6
    # A strict cycle 1 -> 2 -> 3 -> 1 with a little noise: the bigram sees it, the unigram cannot.
    stream = np.array([1 + (i % 3) if rng.random() > 0.05 else 4 for i in range(3000)])
    counts = baselines.fit(stream, vocabulary)
    for previous in range(vocabulary):  # every context's probabilities sum to one
        total = sum(
            math.exp(-baselines.nats(counts, np.array([previous, token]))["kn_bigram"])
            for token in range(vocabulary)
        )
        assert total == pytest.approx(1.0)
    held_out = np.array([1 + (i % 3) for i in range(300)])
    scores = baselines.nats(counts, held_out)
    assert scores["kn_bigram"] / 299 < 0.2 < math.log(3) - 0.05 < scores["unigram"] / 299
