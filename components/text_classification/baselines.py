"""Simple classifiers the recurrent model must beat, fitted on the same train split.

``majority`` always predicts the commonest training label; ``tfidf_logreg`` is a TF-IDF bag of
word 1- and 2-grams with logistic regression, the strong linear baseline for review polarity. The
evaluate component scores them on the test split beside the model, so a model no better than a
bag of words says so.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from components.artifacts import Examples
from components.errors import ConfigError

BASELINES = ("majority", "tfidf_logreg")


@dataclasses.dataclass
class TextBaselineConfig:
    names: list[str] = dataclasses.field(default_factory=lambda: list(BASELINES))
    """Baselines to fit and score, any of ``BASELINES``; [] for none."""
    max_features: int = 100_000
    """TF-IDF vocabulary: the most frequent 1- and 2-grams of the train split."""
    ngram_max: int = 2
    regularization: float = 4.0
    """Inverse regularization strength (scikit-learn's C) of the logistic regression."""
    seed: int = 42

    def __post_init__(self):
        unknown = sorted(set(self.names) - set(BASELINES))
        if unknown:
            raise ConfigError(f"baselines.names has {unknown}; choose among {list(BASELINES)}")
        if self.max_features < 1 or self.ngram_max < 1 or self.regularization <= 0:
            raise ConfigError(
                "baselines.max_features, ngram_max and regularization must be positive"
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
    return predictions


def _standardized(text: str) -> str:
    """What the model's vectorizer does to a text (``vectorize.standardize_text``), in Python."""
    text = re.sub(r"<br\s*/?>", " ", text.lower())
    return re.sub(r"[^\w\s']", " ", text)
