import numpy as np
import pytest
from scipy.special import expit, softmax

from components.text_classification import stack


def _synthetic(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2, rows), rng.normal(0, 2, rows), rng


def test_the_fit_recovers_the_weights_that_made_the_labels():
    ngram, recurrent, rng = _synthetic(40_000)
    labels = (rng.random(len(ngram)) < expit(1.5 * ngram + 0.5 * recurrent - 0.3)).astype(int)
    weights = stack.fit(expit(recurrent), ngram, labels)
    assert weights["ngram_weight"] == pytest.approx(1.5, abs=0.1)
    assert weights["recurrent_weight"] == pytest.approx(0.5, abs=0.1)
    assert weights["bias"] == [pytest.approx(-0.3, abs=0.1)]


def test_a_branch_that_points_the_wrong_way_gets_weight_zero_never_a_negative_one():
    ngram, recurrent, rng = _synthetic(5_000)
    labels = (rng.random(len(ngram)) < expit(2.0 * ngram - 1.0 * recurrent)).astype(int)
    weights = stack.fit(expit(recurrent), ngram, labels)
    assert weights["recurrent_weight"] == pytest.approx(0.0, abs=1e-6)
    assert weights["ngram_weight"] > 0.5


@pytest.mark.parametrize("classes", [2, 3])
def test_the_served_layer_computes_the_fitted_formula(classes):
    rng = np.random.default_rng(1)
    if classes == 2:
        probabilities = rng.uniform(0.01, 0.99, (6, 1))
        ngram_logits = rng.normal(0, 2, (6, 1))
        recurrent = np.log(probabilities / (1 - probabilities))
        expected = expit(0.7 * ngram_logits + 1.3 * recurrent + 0.2)
        bias = [0.2]
    else:
        probabilities = softmax(rng.normal(0, 1, (6, 3)), axis=1)
        ngram_logits = rng.normal(0, 2, (6, 3))
        bias = [0.0, 0.4, -0.1]
        expected = softmax(0.7 * ngram_logits + 1.3 * np.log(probabilities) + bias, axis=1)
    layer = stack.StackedProbabilities(0.7, 1.3, bias)
    served = np.asarray(layer([probabilities.astype("float32"), ngram_logits.astype("float32")]))
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-6)


def test_three_classes_are_fitted_with_a_bias_per_class():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 3_000)
    ngram_logits = np.eye(3)[labels] * 2.0 + rng.normal(0, 1, (3_000, 3))
    probabilities = softmax(rng.normal(0, 1, (3_000, 3)), axis=1)  # an uninformative branch
    weights = stack.fit(probabilities, ngram_logits, labels)
    assert len(weights["bias"]) == 3 and weights["bias"][0] == 0.0
    assert weights["ngram_weight"] > 0.5
    assert weights["recurrent_weight"] < 0.1
