"""The simple classifiers the recurrent model is held against."""

import json

import numpy as np
import pandas as pd
import pytest

from components.artifacts import Examples
from components.errors import ConfigError
from components.text_classification import baselines
from components.text_classification.baselines import TextBaselineConfig
from tests.conftest import synthetic_reviews


def examples(tmp_path, positives: int, negatives: int) -> Examples:
    rows = synthetic_reviews(2 * max(positives, negatives))
    chosen = [r for r in rows if r[1]][:positives] + [r for r in rows if not r[1]][:negatives]
    frame = pd.DataFrame({"text": [t for t, _ in chosen], "label": [y for _, y in chosen]})
    frame.to_parquet(tmp_path / "train.parquet")
    (tmp_path / "statistics.json").write_text(json.dumps({"label_names": ["neg", "pos"]}))
    return Examples(tmp_path)


def test_the_bag_of_words_learns_cue_words_and_majority_takes_the_commonest(tmp_path):
    train = examples(tmp_path, positives=60, negatives=40)
    texts = np.array(["a great superb film, loved it", "awful boring waste, hated it"])
    predicted = baselines.predict(TextBaselineConfig(), train, texts)
    assert predicted["majority"].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert predicted["tfidf_logreg"][0, 1] > 0.5 > predicted["tfidf_logreg"][1, 1]
    # Markup and case are standardized as the model's vectorizer does.
    again = baselines.predict(TextBaselineConfig(names=["tfidf_logreg"]), train, texts)
    upper = baselines.predict(
        TextBaselineConfig(names=["tfidf_logreg"]), train, np.char.upper(texts) + "<br />"
    )
    np.testing.assert_allclose(again["tfidf_logreg"], upper["tfidf_logreg"])
    assert baselines.predict(TextBaselineConfig(names=[]), train, texts) == {}


def test_unknown_baselines_and_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match=r"baselines.names has \['bert'\]"):
        TextBaselineConfig(names=["majority", "bert"])
    with pytest.raises(ConfigError, match="must be positive"):
        TextBaselineConfig(regularization=0)


def test_multi_class_baselines_give_a_probability_per_class(tmp_path):
    cues = {0: "awful boring", 1: "fine decent", 2: "superb wonderful"}
    rows = [(f"{cues[i % 3]} film number {i}", i % 3) for i in range(90)] + [("filler", 2)] * 5
    frame = pd.DataFrame({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    frame.to_parquet(tmp_path / "train.parquet")
    (tmp_path / "statistics.json").write_text(json.dumps({"label_names": ["bad", "ok", "good"]}))
    texts = np.array(["a superb wonderful story", "so boring and awful", "a decent fine one"])
    predicted = baselines.predict(TextBaselineConfig(), Examples(tmp_path), texts)
    assert predicted["majority"].tolist() == [[0.0, 0.0, 1.0]] * 3
    assert predicted["tfidf_logreg"].shape == (3, 3)
    assert predicted["tfidf_logreg"].argmax(axis=1).tolist() == [2, 0, 1]
