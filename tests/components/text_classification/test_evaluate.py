import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from components.artifacts import Examples
from components.text_classification import evaluate
from components.text_classification.evaluate import EvaluateConfig


@pytest.fixture
def test_split(tmp_path) -> Examples:
    texts = ["good " * 50, "bad " * 50, "good " * 150, "bad " * 150, "good " * 500, "bad " * 500]
    frame = pd.DataFrame(
        {"origin": [f"r{i}" for i in range(6)], "text": texts, "label": [1, 0, 1, 0, 1, 0]}
    )
    frame.to_parquet(tmp_path / "test.parquet")
    statistics = {"label_names": ["bad", "good"]}  # what ingest records beside the splits
    (tmp_path / "statistics.json").write_text(json.dumps(statistics))
    return Examples(tmp_path)


def test_scores_slices_and_mistakes_of_a_known_predictor(test_split, tmp_path):
    # Right on short and medium reviews, confidently wrong on the two longest ones.
    probabilities = np.array([0.9, 0.2, 0.8, 0.1, 0.05, 0.9])
    metrics = evaluate.run(
        EvaluateConfig(), lambda texts: probabilities, test_split, tmp_path / "m"
    ).load()
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"] == [[2, 1], [1, 2]]
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(
        2 / 3
    )
    assert metrics["roc_auc"] == pytest.approx(4.5 / 9)  # 4 of 9 pairs ranked right, 1 tie
    assert metrics["by_length"] == {
        "1-100": {"examples": 2, "accuracy": 1.0},
        "101-200": {"examples": 2, "accuracy": 1.0},
        "over_400": {"examples": 2, "accuracy": 0.0},
    }
    mistakes = json.loads((tmp_path / "m" / "misclassified.json").read_text())
    assert [m["origin"] for m in mistakes] == ["r4", "r5"]  # most confident first
    assert (tmp_path / "m" / "confusion_matrix.png").stat().st_size > 0


def test_threshold_decides_the_label(test_split, tmp_path):
    probabilities = np.array([0.6, 0.4, 0.6, 0.4, 0.6, 0.4])
    strict = evaluate.run(
        EvaluateConfig(threshold=0.7), lambda texts: probabilities, test_split, tmp_path / "m"
    ).load()
    assert strict["confusion_matrix"] == [[3, 0], [3, 0]]


def test_baselines_are_scored_beside_the_model(test_split, tmp_path, mlflow_store):
    model = np.array([0.9, 0.2, 0.8, 0.1, 0.05, 0.9])  # 4 of 6 right
    perfect_bag = np.array([0.8, 0.3, 0.7, 0.2, 0.9, 0.1])  # 6 of 6 right
    with mlflow.start_run() as run:
        metrics = evaluate.run(
            EvaluateConfig(),
            lambda texts: model,
            test_split,
            tmp_path / "m",
            baselines=lambda texts: {"majority": np.ones(len(texts)), "bag": perfect_bag},
        ).load()
    assert metrics["baselines"]["majority"]["accuracy"] == pytest.approx(3 / 6)
    assert metrics["baselines"]["bag"]["accuracy"] == 1.0
    assert metrics["best_baseline"] == "bag"
    assert metrics["accuracy_over_best_baseline"] == pytest.approx(4 / 6 - 1)
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert logged["test_bag_accuracy"] == 1.0
    assert logged["test_accuracy_over_best_baseline"] == pytest.approx(4 / 6 - 1)


def test_three_classes_are_scored_per_class_with_their_names(tmp_path):
    frame = pd.DataFrame(
        {"origin": [f"r{i}" for i in range(6)], "text": ["x"] * 6, "label": [0, 0, 1, 1, 2, 2]}
    )
    frame.to_parquet(tmp_path / "test.parquet")
    (tmp_path / "statistics.json").write_text(json.dumps({"label_names": ["low", "mid", "high"]}))
    probabilities = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.1, 0.7, 0.2],
            [0.7, 0.2, 0.1],  # a "mid" called "low", 0.7 sure
            [0.1, 0.1, 0.8],
            [0.2, 0.5, 0.3],  # a "high" called "mid", 0.5 sure
        ]
    )
    metrics = evaluate.run(
        EvaluateConfig(), lambda texts: probabilities, Examples(tmp_path), tmp_path / "m"
    ).load()
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert metrics["per_class"]["low"] == {
        "precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2
    }  # fmt: skip
    assert metrics["per_class"]["high"]["precision"] == 1.0
    assert metrics["per_class"]["high"]["recall"] == 0.5
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # One-vs-rest AUCs: low 7/8 (0.6 below mid's 0.7), mid 6/8 (0.2 below 0.3 and 0.5), high 1.
    assert metrics["roc_auc"] == pytest.approx((7 / 8 + 6 / 8 + 1) / 3) and "f1" not in metrics
    mistakes = json.loads((tmp_path / "m" / "misclassified.json").read_text())
    assert [(m["label"], m["predicted"], m["probability"]) for m in mistakes] == [
        ("mid", "low", 0.7),
        ("high", "mid", 0.5),
    ]


def test_lengths_in_characters_for_texts_without_spaces(tmp_path):
    frame = pd.DataFrame(
        {"text": ["好" * 5, "差" * 5, "好" * 50, "差" * 50], "label": [1, 0, 1, 0]}
    )
    frame.to_parquet(tmp_path / "test.parquet")
    (tmp_path / "statistics.json").write_text(json.dumps({"label_names": ["差", "好"]}))
    config = EvaluateConfig(length_unit="characters", length_buckets=[10])
    metrics = evaluate.run(
        config, lambda texts: np.array([0.9, 0.1, 0.1, 0.9]), Examples(tmp_path), tmp_path / "m"
    ).load()
    assert metrics["length_unit"] == "characters"
    assert metrics["by_length"] == {
        "1-10": {"examples": 2, "accuracy": 1.0},
        "over_10": {"examples": 2, "accuracy": 0.0},
    }


def test_an_attention_model_s_mistakes_are_drawn_with_their_weights(
    test_split, tmp_path, mlflow_store
):
    probabilities = np.array([0.9, 0.2, 0.8, 0.1, 0.05, 0.9])  # r4 and r5 wrong, r4 surest

    def explain(texts):
        tokens = [text.split()[:3] for text in texts]
        return tokens, [np.array([0.6, 0.3, 0.1])] * len(texts)

    with mlflow.start_run() as run:
        evaluate.run(
            EvaluateConfig(),
            lambda texts: probabilities,
            test_split,
            tmp_path / "m",
            explain=explain,
        )
    page = (tmp_path / "m" / evaluate.ATTENTION_VIEW).read_text()
    first, second = page.split("<section>")[1:]
    assert "origin: <b>r4</b>" in first and "origin: <b>r5</b>" in second
    assert 'title="0.600" style="background: rgba(230, 80, 0, 1.00)">good</span>' in first
    assert 'title="0.100" style="background: rgba(230, 80, 0, 0.17)">bad</span>' in second
    logged = mlflow.MlflowClient().list_artifacts(run.info.run_id)
    assert evaluate.ATTENTION_VIEW in [artifact.path for artifact in logged]
    evaluate.run(EvaluateConfig(), lambda texts: probabilities, test_split, tmp_path / "plain")
    assert not (tmp_path / "plain" / evaluate.ATTENTION_VIEW).exists()
