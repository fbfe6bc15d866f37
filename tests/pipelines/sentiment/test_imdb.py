import shutil
import tarfile

import pytest

from components.errors import DataError
from pipelines.sentiment import imdb
from pipelines.sentiment.imdb import ImdbSourceConfig


def test_reads_a_directory_mirror(acl_imdb):
    source = imdb.source(ImdbSourceConfig(source="local", data_dir=str(acl_imdb.parent)))
    assert {split: len(records) for split, records in source.splits.items()} == {
        "train": 40,
        "test": 40,
    }
    record = source.splits["train"][0]
    assert (
        record.origin.endswith(".txt") and record.label in (0, 1) and isinstance(record.text, bytes)
    )


def test_reads_the_tarball_like_the_directory(acl_imdb, tmp_path):
    mirror = tmp_path / "tarball" / "imdb"
    mirror.mkdir(parents=True)
    with tarfile.open(mirror / "aclImdb_v1_labeled.tar.gz", "w:gz") as archive:
        archive.add(acl_imdb, arcname="aclImdb")
    from_tar = imdb.source(ImdbSourceConfig(source="local", data_dir=str(mirror.parent)))
    from_dir = imdb.source(ImdbSourceConfig(source="local", data_dir=str(acl_imdb.parent)))
    assert sorted((r.text, r.label) for r in from_tar.splits["test"]) == sorted(
        (r.text, r.label) for r in from_dir.splits["test"]
    )


def test_missing_data_says_where_it_is_expected_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as error:
        imdb.source(ImdbSourceConfig(source="local", data_dir=str(tmp_path / "nothing")))
    message = str(error.value)
    assert str(tmp_path / "nothing" / "imdb") in message
    assert (
        imdb.DOWNLOAD_URL in message and "data.source=tfds" in message and "RNN_DATA_DIR" in message
    )


def test_corrupt_tarball_is_named(tmp_path):
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match=r"aclImdb_v1.tar.gz: not a readable .tar.gz archive"):
        imdb.source(ImdbSourceConfig(source="local", data_dir=str(tmp_path)))


def test_empty_split_directory_is_reported(acl_imdb):
    shutil.rmtree(acl_imdb / "test")
    with pytest.raises(DataError, match="no reviews found for the test split"):
        imdb.source(ImdbSourceConfig(source="local", data_dir=str(acl_imdb.parent)))


def test_sampling_is_seeded_and_label_balanced(acl_imdb):
    config = ImdbSourceConfig(
        source="local", data_dir=str(acl_imdb.parent), max_reviews_per_split=10
    )
    first, second = imdb.source(config), imdb.source(config)
    labels = [r.label for r in first.splits["train"]]
    assert labels.count(0) == labels.count(1) == 5
    assert [r.origin for r in first.splits["train"]] == [r.origin for r in second.splits["train"]]


def test_tfds_source_uses_the_real_loader(monkeypatch):
    import tensorflow_datasets as tfds

    monkeypatch.delenv(imdb.DATA_DIR_ENV, raising=False)
    # TFDS' mock stands in for the download; the host check before it must see a network too.
    monkeypatch.setattr("components.downloads.reachable", lambda host, port: True)
    with tfds.testing.mock_data(num_examples=6):
        source = imdb.source(ImdbSourceConfig(source="auto"))
        # The same mock examples, read straight from TFDS: the source must carry exactly these.
        expected = {
            split: [(text, int(label)) for text, label in tfds.as_numpy(dataset)]
            for split, dataset in zip(
                imdb.SPLITS,
                tfds.load("imdb_reviews", split=list(imdb.SPLITS), as_supervised=True),
                strict=True,
            )
        }
        tfds_names = tfds.builder("imdb_reviews").info.features["label"].names
    assert source.uri.startswith("tfds://imdb_reviews")
    for split in imdb.SPLITS:
        records = list(source.splits[split])
        assert len(records) == 6
        # Texts kept as TFDS' bytes (ingest decodes them, and counts the non-UTF-8 ones), in TFDS'
        # order, each with its own label.
        assert [(r.text, r.label) for r in records] == expected[split]
        assert all(isinstance(r.text, bytes) for r in records)
        assert [r.origin for r in records] == [f"tfds:imdb_reviews/{split}[{i}]" for i in range(6)]
    # TFDS' label 0 is "neg", 1 is "pos": the source's ids mean negative, positive.
    assert tfds_names == ["neg", "pos"] and imdb.LABELS == {"neg": 0, "pos": 1}
    assert source.label_names == ("negative", "positive")
    labels = [r.label for split in imdb.SPLITS for r in source.splits[split]]
    assert set(labels) == {0, 1}, "the mock should give both labels, or a swap goes unseen"


def test_an_empty_review_file_stops_ingest_naming_the_file(acl_imdb, tmp_path):
    from components.text_classification import ingest
    from components.text_classification.ingest import IngestConfig

    empty = acl_imdb / "train" / "pos" / "999_10.txt"
    empty.write_bytes(b"")
    source = imdb.source(ImdbSourceConfig(source="local", data_dir=str(acl_imdb.parent)))
    with pytest.raises(DataError, match=f"{empty}: text is empty"):
        ingest.run(IngestConfig(), source, tmp_path / "examples")


def test_non_utf8_review_file_can_be_skipped_and_counted(acl_imdb, tmp_path):
    from components.text_classification import ingest
    from components.text_classification.ingest import IngestConfig

    (acl_imdb / "test" / "neg" / "998_1.txt").write_bytes(b"\xff\xfe broken")
    source = imdb.source(ImdbSourceConfig(source="local", data_dir=str(acl_imdb.parent)))
    examples = ingest.run(IngestConfig(bad_records="skip"), source, tmp_path / "examples")
    assert examples.statistics()["skipped"] == {"non_utf8": 1}
    assert len(examples.load("test")) == 40
