"""The classifier on the user's own labelled texts: tables, a folder per label, a file per label,
named labels, more than two classes."""

import json
import random

import pandas as pd
import pytest
import tensorflow as tf

from components.errors import ConfigError, DataError
from components.text_classification import ingest
from components.text_classification.ingest import IngestConfig
from pipelines.registry import resolve_config
from pipelines.runner import run_pipeline
from pipelines.sentiment import pipeline as sentiment
from pipelines.sentiment.sources import TextDataConfig, source
from tests.conftest import CONFIGS, synthetic_reviews, text_examples


def review_table(count: int = 60, seed: int = 0) -> pd.DataFrame:
    rows = synthetic_reviews(count, seed)
    return pd.DataFrame(
        {"review": [text for text, _ in rows], "verdict": ["good" if y else "bad" for _, y in rows]}
    )


def table_config(tmp_path, train: str, **more) -> TextDataConfig:
    settings = dict(format="table", data_dir=str(tmp_path), train=train, text_column="review")
    return TextDataConfig(**{**settings, "label_column": "verdict", **more})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_a_table_file_of_any_common_format_gives_the_same_records(tmp_path, suffix):
    table = review_table()
    path = tmp_path / f"reviews{suffix}"
    {
        ".csv": lambda: table.to_csv(path, index=False),
        ".tsv": lambda: table.to_csv(path, sep="\t", index=False),
        ".jsonl": lambda: table.to_json(path, orient="records", lines=True),
        ".parquet": lambda: table.to_parquet(path, index=False),
    }[suffix]()
    data = source(table_config(tmp_path, path.name, label_names=["bad", "good"]))
    assert data.name == "reviews" and data.label_names == ("bad", "good")
    records = [*data.splits["train"], *data.splits["test"]]
    assert len(records) == 60 and len(data.splits["test"]) == 12  # test_fraction 0.2, per label
    by_text = {record.text: record.label for record in records}
    assert by_text == {text: int(verdict == "good") for text, verdict in table.to_numpy()}
    first = min(records, key=lambda record: record.origin)
    assert first.origin.startswith(f"{path}: ")


def test_a_folder_per_label_and_a_separate_test_set(tmp_path):
    for split, seed in (("train", 0), ("test", 1)):
        for index, (text, label) in enumerate(synthetic_reviews(20, seed)):
            folder = tmp_path / split / ("positive" if label else "negative")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index}.txt").write_text(text)
    data = source(
        TextDataConfig(format="directories", data_dir=str(tmp_path), train="train", test="test")
    )
    assert data.label_names == ("negative", "positive")  # sorted: the second is positive
    assert [len(data.splits[split]) for split in ("train", "test")] == [20, 20]
    assert all(record.label in (0, 1) for record in data.splits["test"])


def test_unknown_and_missing_labels_name_the_line(tmp_path):
    table = review_table(40)
    table.loc[3, "verdict"] = "meh"
    table.to_csv(tmp_path / "reviews.csv", index=False)
    config = table_config(tmp_path, "reviews.csv", label_names=["bad", "good"], test_fraction=0.5)
    data = source(config)
    with pytest.raises(DataError, match=r"reviews.csv: line 5: label 'meh' is not one of \[0, 1\]"):
        ingest.run(IngestConfig(), data, tmp_path / "examples")
    skipped = ingest.run(IngestConfig(bad_records="skip"), source(config), tmp_path / "skipped")
    assert skipped.statistics()["skipped"] == {"unknown_label": 1}


def test_label_sets_and_bad_settings_are_clear_errors(tmp_path):
    table = review_table(12)
    table.loc[:3, "verdict"] = "neutral"
    table.to_csv(tmp_path / "reviews.csv", index=False)
    assert source(table_config(tmp_path, "reviews.csv")).label_names == ("bad", "good", "neutral")
    with pytest.raises(ConfigError, match=r"\['good'\]: a classifier needs two or more distinct"):
        source(table_config(tmp_path, "reviews.csv", label_names=["good"]))
    with pytest.raises(ConfigError, match="data.format=table needs data.train"):
        TextDataConfig(format="table")
    with pytest.raises(ConfigError, match="unknown table format '.xlsx'"):
        source(table_config(tmp_path, "reviews.xlsx"))
    with pytest.raises(DataError, match=r"has no column\(s\) \['text', 'label'\]; its columns"):
        source(TextDataConfig(format="table", data_dir=str(tmp_path), train="reviews.csv"))


@pytest.mark.e2e
def test_the_pipeline_learns_and_serves_the_users_labels(tmp_path, mlflow_store):
    review_table(160).to_csv(tmp_path / "shop_reviews.csv", index=False)
    config = resolve_config(
        "sentiment",
        CONFIGS / "sentiment.smoke.yaml",
        None,
        [
            "data.format=table",
            f"data.data_dir={tmp_path}",
            "data.train=shop_reviews.csv",
            "data.text_column=review",
            "data.label_column=verdict",
            "preprocess.sequence_length=30",
            "train.epochs=4",
            "blessing.thresholds=[]",
            "export.register=false",
            f"export.serving_dir={tmp_path / 'models'}",
        ],
    )
    result = run_pipeline("sentiment", config, sentiment.SPEC.stages, tmp_path / "artifacts")
    statistics = result.outputs["ingest"].statistics()
    assert (statistics["dataset"], statistics["label_names"]) == ("shop_reviews", ["bad", "good"])
    metrics = json.loads((result.run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9  # the cue words make these easy
    serve = tf.saved_model.load(str(tmp_path / "models" / "sentiment" / "1"))
    answer = serve.signatures["serving_default"](
        text=tf.constant(["great brilliant superb movie", "awful boring terrible waste"])
    )
    assert [name.decode() for name in answer["label_name"].numpy()] == ["good", "bad"]


@pytest.mark.e2e
def test_chinese_reviews_are_classified_character_by_character(tmp_path, mlflow_store):
    """Written without spaces: whitespace tokens would make every review one unknown word."""
    rng = random.Random(0)
    cues = {"好评": ["好", "棒", "爱", "赞"], "差评": ["差", "烂", "坏", "糟"]}
    filler = list("这部电影的故事演员画面音乐我们觉得非常")
    rows = []
    for index in range(160):
        verdict = "好评" if index % 2 else "差评"
        chars = [rng.choice(filler) for _ in range(12)]
        for position in rng.sample(range(12), 3):
            chars[position] = rng.choice(cues[verdict])
        rows.append(("".join(chars), verdict))
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(tmp_path / "影评.csv", index=False)
    config = resolve_config(
        "sentiment",
        CONFIGS / "sentiment.smoke.yaml",
        None,
        [
            "data.format=table",
            f"data.data_dir={tmp_path}",
            "data.train=影评.csv",
            "data.label_names=[差评, 好评]",
            "preprocess.split=character",
            "preprocess.sequence_length=16",
            "train.epochs=4",
            "blessing.thresholds=[]",
            "export.register=false",
            f"export.serving_dir={tmp_path / 'models'}",
        ],
    )
    result = run_pipeline("sentiment", config, sentiment.SPEC.stages, tmp_path / "artifacts")
    metrics = json.loads((result.run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9
    assert metrics["baselines"]["tfidf_logreg"]["accuracy"] >= 0.9  # character n-grams too
    serve = tf.saved_model.load(str(tmp_path / "models" / "sentiment" / "1"))
    answer = serve.signatures["serving_default"](
        text=tf.constant(["这部电影非常好棒", "故事很烂很糟"])
    )
    assert [name.decode() for name in answer["label_name"].numpy()] == ["好评", "差评"]


TOPICS = {
    "sport": ["goal", "match", "team", "score"],
    "music": ["song", "album", "guitar", "band"],
    "food": ["recipe", "dinner", "spicy", "bread"],
}


def write_topic_lines(folder, per_topic: int, seed: int) -> dict[str, str]:
    """One file per topic, one short text per line, a blank line that is not a record."""
    rng, filler = (
        random.Random(seed),
        ["the", "a", "of", "we", "it", "this", "that", "was", "really", "quite"],
    )
    files = {}
    for topic, cues in TOPICS.items():
        lines = []
        for _ in range(per_topic):
            words = [rng.choice(filler) for _ in range(8)]
            for position in rng.sample(range(8), 2):
                words[position] = rng.choice(cues)
            lines.append(" ".join(words))
        (folder / f"{topic}.txt").write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n")
        files[topic] = f"{topic}.txt"
    return files


def test_a_file_per_label_with_a_text_per_line(tmp_path):
    files = write_topic_lines(tmp_path, per_topic=10, seed=0)
    data = source(TextDataConfig(format="lines", data_dir=str(tmp_path), train_files=files))
    assert data.label_names == ("food", "music", "sport")  # sorted: no label_names given
    records = [*data.splits["train"], *data.splits["test"]]
    assert len(records) == 30 and len(data.splits["test"]) == 6
    first = min(records, key=lambda record: record.origin)
    assert first.origin == f"{tmp_path / 'food.txt'}: line 1"
    assert {r.label for r in records if "food.txt" in r.origin} == {0}
    with pytest.raises(ConfigError, match="data.format=lines needs data.train_files"):
        TextDataConfig(format="lines")
    with pytest.raises(DataError, match=r"nope.txt: file not found \(the texts of label 'x'\)"):
        source(
            TextDataConfig(format="lines", data_dir=str(tmp_path), train_files={"x": "nope.txt"})
        )


@pytest.mark.e2e
def test_three_topics_train_a_softmax_classifier_served_with_class_names(tmp_path, mlflow_store):
    train_files = write_topic_lines(tmp_path, per_topic=60, seed=0)
    (tmp_path / "test").mkdir()
    test_files = {
        topic: f"test/{name}" for topic, name in write_topic_lines(tmp_path / "test", 20, 1).items()
    }
    config = resolve_config(
        "sentiment",
        CONFIGS / "sentiment.smoke.yaml",
        None,
        [
            "data.format=lines",
            f"data.data_dir={tmp_path}",
            f"data.train_files={json.dumps(train_files)}",
            f"data.test_files={json.dumps(test_files)}",
            "data.label_names=[sport, music, food]",
            "preprocess.sequence_length=12",
            "train.epochs=5",
            "blessing.thresholds=[]",
            "export.register=false",
            f"export.serving_dir={tmp_path / 'models'}",
        ],
    )
    result = run_pipeline("sentiment", config, sentiment.SPEC.stages, tmp_path / "artifacts")
    metrics = json.loads((result.run_dir / "evaluate" / "metrics" / "metrics.json").read_text())
    assert metrics["classes"] == 3 and metrics["label_names"] == ["sport", "music", "food"]
    assert metrics["accuracy"] >= 0.9 and metrics["macro_f1"] >= 0.9
    assert set(metrics["per_class"]) == {"sport", "music", "food"}
    assert all(scores["support"] == 20 for scores in metrics["per_class"].values())
    assert len(metrics["confusion_matrix"]) == 3 and "f1" not in metrics  # f1 is binary's
    assert metrics["baselines"]["tfidf_logreg"]["accuracy"] >= 0.9
    serve = tf.saved_model.load(str(tmp_path / "models" / "sentiment" / "1"))
    texts = ["we scored a goal in the match", "a spicy bread recipe for dinner"]
    answer = serve.signatures["serving_default"](text=tf.constant(texts))
    assert [name.decode() for name in answer["label_name"].numpy()] == ["sport", "food"]
    assert answer["scores"].shape == (2, 3) and "probability" not in answer
    assert answer["scores"].numpy().sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    examples = text_examples(texts)
    classified = serve.signatures["classify"](inputs=tf.constant(examples))
    assert classified["classes"].numpy().tolist() == [[b"sport", b"music", b"food"]] * 2
    assert classified["scores"].numpy() == pytest.approx(answer["scores"].numpy(), abs=1e-6)


def test_any_tfds_text_classification_set_by_name(tmp_path):
    """TFDS's mock data (made from the data set's code, no download) stands in for Yelp."""
    import tensorflow_datasets as tfds

    config = TextDataConfig(
        format="tfds", tfds_name="yelp_polarity_reviews", tfds_splits=["train", "test"]
    )
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
        data = source(config)
    assert data.name == "yelp_polarity_reviews" and data.uri == "tfds://yelp_polarity_reviews"
    assert data.label_names == ("1", "2")  # the class names Yelp polarity gives its labels
    assert [len(data.splits[split]) for split in ("train", "test")] == [8, 8]
    record = data.splits["train"][0]
    assert record.origin == "tfds:yelp_polarity_reviews/train[0]" and record.label in (0, 1)
