import pytest

from components.errors import ConfigError, DataError
from pipelines.language_model import corpora
from pipelines.language_model.corpora import CorpusConfig


@pytest.fixture
def mirror(tmp_path):
    (tmp_path / "tinyshakespeare").mkdir()
    (tmp_path / "tinyshakespeare" / "input.txt").write_text("First Citizen:\nSpeak.\n" * 50)
    (tmp_path / "ptb").mkdir()
    for name in corpora.PTB_FILES.values():
        (tmp_path / "ptb" / name).write_text(" the cat <unk> \n the dog N \n")
    return tmp_path


def test_tiny_shakespeare_is_one_text_to_split(mirror):
    source = corpora.source(
        CorpusConfig(corpus="tiny_shakespeare", source="local", data_dir=str(mirror))
    )
    assert list(source.texts) == ["all"] and source.texts["all"].origin.endswith("input.txt")


def test_ptb_is_read_as_its_three_files(mirror):
    source = corpora.source(CorpusConfig(corpus="ptb", data_dir=str(mirror)))
    assert sorted(source.texts) == ["test", "train", "validation"]
    assert source.texts["validation"].origin.endswith("ptb.valid.txt")


def test_own_text_file_and_character_limit(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("abcdefghij" * 10)
    source = corpora.source(CorpusConfig(corpus="text", path=str(path), max_characters=25))
    assert source.name == "mine" and source.texts["all"].content == "abcdefghij" * 2 + "abcde"


def test_missing_file_says_what_and_where(tmp_path):
    with pytest.raises(
        DataError,
        match=r"Penn Treebank not found: expected the file .*ptb.train.txt.*data.source=remote",
    ):
        corpora.source(CorpusConfig(corpus="ptb", source="local", data_dir=str(tmp_path)))


def test_text_corpus_needs_a_path():
    with pytest.raises(ConfigError, match="data.corpus=text needs data.path"):
        CorpusConfig(corpus="text")


def test_tfds_tiny_shakespeare_uses_the_real_loader(monkeypatch):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    monkeypatch.delenv(corpora.DATA_DIR_ENV, raising=False)
    # TFDS' mock stands in for the download; the host check before it must see a network too.
    monkeypatch.setattr("components.downloads.reachable", lambda host, port: True)
    splits = ["train", "validation", "test"]

    def one_text_per_split(builder, *args, split, **kwargs):
        # TFDS' default mock gives every split the same text; a text naming its split shows a
        # split read as another.
        def one(name):
            return tf.data.Dataset.from_tensors({"text": tf.constant(f"First Citizen of {name}")})

        return [one(name) for name in split] if isinstance(split, list) else one(split)

    with tfds.testing.mock_data(num_examples=1, as_dataset_fn=one_text_per_split):
        source = corpora.source(CorpusConfig(corpus="tiny_shakespeare"))
        # The same mock examples, read straight from TFDS: each split's one text, as bytes (ingest
        # decodes, and names the file of a text that is not UTF-8).
        expected = {
            name: next(iter(tfds.as_numpy(dataset)))["text"]
            for name, dataset in zip(
                splits, tfds.load("tiny_shakespeare", split=splits), strict=True
            )
        }
    assert source.uri == "tfds://tiny_shakespeare" and sorted(source.texts) == sorted(splits)
    assert expected == {name: f"First Citizen of {name}".encode() for name in splits}
    for name in splits:
        text = source.texts[name]
        assert text.origin == f"tfds:tiny_shakespeare/{name}"
        assert isinstance(text.content, bytes) and text.content == expected[name]
