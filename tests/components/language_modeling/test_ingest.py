import pytest

from components.errors import ConfigError, DataError
from components.language_modeling import ingest
from components.language_modeling.ingest import CorpusIngestConfig, CorpusSource, RawText


def ingested(tmp_path, texts):
    source = CorpusSource("tiny", "memory://tiny", texts)
    return ingest.run(CorpusIngestConfig(), source, tmp_path / "corpus")


def test_single_text_is_cut_in_order_like_tfds_tiny_shakespeare(tmp_path):
    # TFDS: 1,115,394 characters -> 1,003,854 / 55,770 / 55,770; the same fractions on 10,000 chars.
    text = "".join(chr(ord("a") + i % 26) for i in range(10_000))
    corpus = ingested(tmp_path, {"all": RawText("input.txt", text)})
    parts = [corpus.text(split) for split in ("train", "validation", "test")]
    assert [len(p) for p in parts] == [9_000, 500, 500]
    assert "".join(parts) == text
    assert corpus.statistics()["validation"]["characters"] == 500


def test_tfds_split_sizes_are_reproduced():
    sizes = ingest._cut("x" * 1_115_394, CorpusIngestConfig(), "input.txt")
    assert [len(sizes[s]) for s in ("train", "validation", "test")] == [1_003_854, 55_770, 55_770]


def test_presplit_corpus_is_kept_as_given(tmp_path):
    texts = {
        s: RawText(f"ptb.{s}.txt", f" {s} words here \n".encode())
        for s in ("train", "validation", "test")
    }
    corpus = ingested(tmp_path, texts)
    assert corpus.text("validation") == " validation words here \n"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "ptb.train.txt: is empty"),
        (b"  \n\n", "ptb.train.txt: is empty"),
        (
            b"\x7fELF\x02\x01\x00\x00binary",
            "ptb.train.txt: contains a NUL byte at offset 6, so it looks like a binary file",
        ),
        (b"caf\xe9", "ptb.train.txt: bytes 3-4 are not valid UTF-8"),
    ],
)
def test_bad_files_are_named_with_the_reason(tmp_path, content, message):
    texts = {s: RawText(f"ptb.{s}.txt", b"fine text\n") for s in ("validation", "test")}
    texts["train"] = RawText("ptb.train.txt", content)
    with pytest.raises(DataError, match=message):
        ingested(tmp_path, texts)


def test_too_short_text_cannot_be_split(tmp_path):
    with pytest.raises(DataError, match="too few to cut"):
        ingested(tmp_path, {"all": RawText("tiny.txt", "abc")})


def test_fractions_must_leave_room_for_train():
    with pytest.raises(ConfigError, match="leaving room for train"):
        CorpusIngestConfig(validation_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ConfigError, match="validation_fraction must be in"):
        CorpusIngestConfig(validation_fraction=0.0)


def test_nanogpt_two_way_split_makes_test_the_validation_split(tmp_path, caplog):
    # nanoGPT's Tiny Shakespeare: first 90% train, last 10% validation, no separate test.
    text = "".join(chr(ord("a") + i % 26) for i in range(10_000))
    config = CorpusIngestConfig(validation_fraction=0.1, test_fraction=0.0)
    corpus = ingest.run(
        config, CorpusSource("tiny", "memory://tiny", {"all": RawText("input.txt", text)}),
        tmp_path / "corpus",
    )  # fmt: skip
    assert corpus.text("train") == text[:9_000]
    assert corpus.text("validation") == corpus.text("test") == text[9_000:]
    assert "test split IS the validation split" in caplog.text
