import json

import pandas as pd
import pytest

from components.errors import ConfigError, DataError
from components.text_classification import ingest
from components.text_classification.ingest import IngestConfig, RawRecord, Source
from tests.conftest import synthetic_reviews


def records(count: int, prefix: str, seed: int = 0) -> list[RawRecord]:
    return [
        RawRecord(f"{prefix}/{i}.txt", text.encode(), label)
        for i, (text, label) in enumerate(synthetic_reviews(count, seed))
    ]


def source(train, test) -> Source:
    return Source("tiny", "file:///tiny", {"train": train, "test": test})


def test_writes_stratified_seeded_splits_and_statistics(tmp_path):
    examples = ingest.run(
        IngestConfig(validation_fraction=0.25),
        source(records(40, "train"), records(20, "test", 1)),
        tmp_path / "a",
    )
    train, validation, test = (examples.load(s) for s in ("train", "validation", "test"))
    assert (len(train), len(validation), len(test)) == (30, 10, 20)
    assert set(train["origin"]).isdisjoint(validation["origin"])
    assert validation["label"].value_counts().to_dict() == {0: 5, 1: 5}
    stats = json.loads((tmp_path / "a" / "statistics.json").read_text())
    assert stats["splits"]["test"]["labels"] == {"0": 10, "1": 10}
    assert stats["splits"]["train"]["words"]["p50"] > 0

    reversed_source = source(list(reversed(records(40, "train"))), records(20, "test", 1))
    again = ingest.run(IngestConfig(validation_fraction=0.25), reversed_source, tmp_path / "b")
    assert again.load("validation")["origin"].tolist() == validation["origin"].tolist()


def test_empty_review_names_the_file(tmp_path):
    train = records(10, "train") + [RawRecord("train/pos/99_9.txt", b"   \n", 1)]
    with pytest.raises(DataError, match=r"train/pos/99_9.txt: text is empty"):
        ingest.run(IngestConfig(), source(train, records(10, "test")), tmp_path)


def test_non_utf8_bytes_name_the_file(tmp_path):
    train = records(10, "train") + [RawRecord("train/neg/7_1.txt", b"caf\xe9 was bad", 0)]
    with pytest.raises(DataError, match=r"train/neg/7_1.txt: bytes 3-4 are not valid UTF-8"):
        ingest.run(IngestConfig(), source(train, records(10, "test")), tmp_path)


def test_skip_mode_skips_and_counts_bad_records(tmp_path):
    bad = [
        RawRecord("a.txt", b"\xff\xfe", 0),
        RawRecord("b.txt", b"", 1),
        RawRecord("c.txt", b"fine", None),
    ]
    examples = ingest.run(
        IngestConfig(bad_records="skip"),
        source(records(20, "train") + bad, records(10, "test", 1)),
        tmp_path,
    )
    assert examples.statistics()["skipped"] == {"non_utf8": 1, "empty_text": 1, "missing_label": 1}
    assert len(examples.load("train")) + len(examples.load("validation")) == 20


@pytest.mark.parametrize("label, message", [(None, "has no label"), (3, "label 3 is not one of")])
def test_labels_outside_the_label_set_are_rejected(tmp_path, label, message):
    train = records(10, "train") + [RawRecord("odd.txt", b"text", label)]
    with pytest.raises(DataError, match=message):
        ingest.run(IngestConfig(), source(train, records(10, "test")), tmp_path)


def test_split_missing_a_label_is_rejected(tmp_path):
    only_negative = [r for r in records(20, "test") if r.label == 0]
    with pytest.raises(DataError, match=r"test split has no examples of label\(s\) \[1\]"):
        ingest.run(IngestConfig(), source(records(20, "train"), only_negative), tmp_path)


def test_config_rejects_unknown_bad_record_policy():
    with pytest.raises(ConfigError, match="choose one of: error, skip"):
        IngestConfig(bad_records="ignore")


def test_duplicate_texts_are_counted_and_dropped_so_test_never_repeats_train(tmp_path):
    train = records(20, "train") + [
        RawRecord("train/copy.txt", records(20, "train")[0].text, records(20, "train")[0].label),
        RawRecord("train/x1.txt", b"same words, two labels", 0),
        RawRecord("train/x2.txt", b"same words, two labels", 1),
    ]
    test = records(10, "test", 1) + [RawRecord("test/leak.txt", train[3].text, train[3].label)]
    dropped = ingest.run(IngestConfig(), source(train, test), tmp_path / "drop")
    expected = {
        "repeated_in_train": 2,
        "repeated_in_test": 0,
        "conflicting_labels_in_train": 1,
        "test_in_train": 1,
    }
    assert dropped.statistics()["duplicates"] == {"policy": "drop", **expected}
    # Row counts, not a set of texts: a set would hide a kept copy, or one copy in each split.
    train_texts = dropped.load("train")["text"].tolist()
    validation_texts = dropped.load("validation")["text"].tolist()
    assert (len(train_texts), len(validation_texts), len(dropped.load("test"))) == (18, 2, 10)
    assert set(train_texts).isdisjoint(validation_texts)
    fitted = train_texts + validation_texts
    assert sorted(fitted) == sorted(record.text.decode() for record in records(20, "train"))
    assert sorted(dropped.load("test")["text"]) == sorted(r.text.decode() for r in test[:10])

    kept = ingest.run(IngestConfig(duplicates="keep"), source(train, test), tmp_path / "keep")
    assert kept.statistics()["duplicates"] == {"policy": "keep", **expected}
    kept_fitted = pd.concat([kept.load("train"), kept.load("validation")])
    assert sorted(zip(kept_fitted["text"], kept_fitted["label"], strict=True)) == sorted(
        (record.text.decode(), record.label) for record in train
    )
    assert sorted(kept.load("test")["text"]) == sorted(record.text.decode() for record in test)
    with pytest.raises(DataError, match="every test text of file:///tiny is also a training"):
        ingest.run(IngestConfig(), source(train, train[:12]), tmp_path / "none")
