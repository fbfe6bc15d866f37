import json

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
        source(records(20, "train") + bad, records(10, "test")),
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
