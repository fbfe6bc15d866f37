"""Simple classifiers the recurrent model must beat, fitted on the same train split.

``majority`` always predicts the commonest training label; ``tfidf_logreg`` is a TF-IDF bag of
word 1- and 2-grams with logistic regression; ``nbsvm`` is Wang & Manning's (2012) NBSVM as
practitioners run it: binarized 1- to 3-gram counts (``!`` and ``?`` kept as tokens) scaled by
their Naive-Bayes log-count ratio, then logistic regression (one-vs-rest for more classes), the
strongest simple method for review polarity. The evaluate component scores them on the test
split beside the model, so a model no better than a bag of words says so.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
from scipy.special import expit
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from components.artifacts import Examples
from components.errors import ConfigError
from components.text_classification.ngrams import class_weights

BASELINES = ("majority", "tfidf_logreg", "nbsvm")


@dataclasses.dataclass
class TextBaselineConfig:
    names: list[str] = dataclasses.field(default_factory=lambda: list(BASELINES))
    """Baselines to fit and score, any of ``BASELINES``; [] for none."""
    max_features: int = 100_000
    """TF-IDF vocabulary: the most frequent 1- and 2-grams of the train split."""
    ngram_max: int = 2
    regularization: float = 4.0
    """Inverse regularization strength (scikit-learn's C) of the logistic regression."""
    nbsvm_ngram_max: int = 3
    """Longest n-gram of ``nbsvm`` (its vocabulary is every n-gram of the train split)."""
    nbsvm_regularization: float = 1.0
    seed: int = 42

    def __post_init__(self):
        unknown = sorted(set(self.names) - set(BASELINES))
        if unknown:
            raise ConfigError(f"baselines.names has {unknown}; choose among {list(BASELINES)}")
        sizes = (self.max_features, self.ngram_max, self.nbsvm_ngram_max)
        if min(sizes) < 1 or self.regularization <= 0 or self.nbsvm_regularization <= 0:
            raise ConfigError(
                "baselines.max_features, ngram_max, nbsvm_ngram_max, regularization and "
                "nbsvm_regularization must be positive"
            )


def predict(
    config: TextBaselineConfig, examples: Examples, texts: np.ndarray, characters: bool = False
) -> dict:
    """Baseline name -> ``[len(texts), classes]`` probabilities, fitted on the train split (the
    validation split stays unseen, as for the model); with ``characters``, the bag holds
    character 1- and 2-grams (languages written without spaces) rather than words."""
    train = examples.load("train")
    labels = train["label"].to_numpy()
    classes = len(examples.statistics()["label_names"])
    predictions = {}
    if "majority" in config.names:
        commonest = np.bincount(labels, minlength=classes).argmax()
        predictions["majority"] = np.tile(np.eye(classes)[commonest], (len(texts), 1))
    if "tfidf_logreg" in config.names:
        model = make_pipeline(
            TfidfVectorizer(
                preprocessor=_standardized,
                analyzer="char" if characters else "word",
                ngram_range=(1, config.ngram_max),
                max_features=config.max_features,
                sublinear_tf=True,
            ),
            LogisticRegression(C=config.regularization, max_iter=1000, random_state=config.seed),
        )
        model.fit(train["text"].to_numpy(), labels)
        predictions["tfidf_logreg"] = model.predict_proba(texts)
    if "nbsvm" in config.names:
        train_texts = train["text"].to_numpy()
        predictions["nbsvm"] = _nbsvm(config, train_texts, labels, classes, texts, characters)
    return predictions


def _nbsvm(config, train_texts, labels, classes: int, texts, characters: bool) -> np.ndarray:
    """NBSVM's probabilities: per class scored, a logistic regression on the binarized counts
    times their log-count ratio; more than two classes are scored one-vs-rest, normalized."""
    counter = CountVectorizer(
        preprocessor=_standardized_keeping_marks,
        analyzer="char" if characters else "word",
        token_pattern=r"\S+",
        ngram_range=(1, config.nbsvm_ngram_max),
        binary=True,
        dtype=np.float64,
    )
    train_counts = counter.fit_transform(train_texts)
    kernel, bias = class_weights(
        train_counts, labels, classes, config.nbsvm_regularization, smoothing=1.0
    )
    positive = expit(counter.transform(texts) @ kernel + bias)
    if classes == 2:
        return np.stack([1.0 - positive[:, 0], positive[:, 0]], axis=1)
    return positive / positive.sum(axis=1, keepdims=True)


def _standardized_keeping_marks(text: str) -> str:
    """``_standardized``, with ``!`` and ``?`` split off as tokens (as ``ngrams.py`` does)."""
    text = re.sub(r"<br\s*/?>", " ", text.lower())
    text = re.sub(r"([!?])", r" \1 ", text)
    return re.sub(r"[^\w\s'!?]", " ", text)


def _standardized(text: str) -> str:
    """What the model's vectorizer does to a text (``vectorize.standardize_text``), in Python."""
    text = re.sub(r"<br\s*/?>", " ", text.lower())
    return re.sub(r"[^\w\s']", " ", text)
