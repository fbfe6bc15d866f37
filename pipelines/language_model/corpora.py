"""Language-model corpora: Tiny Shakespeare, Penn Treebank (Mikolov's split), any text file, or
the training texts of a text classifier.

Each comes from a local mirror when one is configured (``data.data_dir`` or $RNN_DATA_DIR) and
otherwise from its public source: TFDS ``tiny_shakespeare``, or the ``simple-examples`` tarball
for PTB. A user's own ``.txt`` is read from ``data.path`` and split by the ingest fractions.
``classifier_texts`` reads the train split of a text-classification run (``data.path``: its run
folder), standardized as its vectorizer does, one text a line: a language model over the
classifier's own tokens, which the classifier can then start from (``model.init_from``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tarfile
from pathlib import Path

from components import downloads
from components.artifacts import Examples
from components.errors import ConfigError, DataError, require_one_of
from components.language_modeling.ingest import CorpusSource, RawText, decoded

DATA_DIR_ENV = "RNN_DATA_DIR"
PTB_URL = "https://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_COPY = (
    f"set ${DATA_DIR_ENV} (or data.data_dir) to a folder holding tinyshakespeare/input.txt "
    f"(the file at {TINY_SHAKESPEARE_URL})"
)
PTB_FILES = {"train": "ptb.train.txt", "validation": "ptb.valid.txt", "test": "ptb.test.txt"}
CORPORA = ("tiny_shakespeare", "ptb", "text", "classifier_texts")


@dataclasses.dataclass
class CorpusConfig:
    corpus: str = "tiny_shakespeare"
    """tiny_shakespeare | ptb | text (a file of your own, at ``path``) | classifier_texts (the
    train split of the text-classification run folder at ``path``)."""
    source: str = "auto"
    """``local`` reads the mirror, ``remote`` downloads (TFDS / the PTB tarball), ``auto`` picks
    local when a data directory is set."""
    data_dir: str | None = None
    """Mirror root with ``tinyshakespeare/`` and ``ptb/`` folders; default $RNN_DATA_DIR."""
    path: str | None = None
    """The text file for ``corpus: text``; the run folder for ``classifier_texts``."""
    max_characters: int | None = None
    """Keep only the first this-many characters of each text (smoke runs and tests)."""

    def __post_init__(self):
        require_one_of("data.corpus", self.corpus, CORPORA)
        require_one_of("data.source", self.source, ("auto", "local", "remote"))
        if self.corpus == "text" and not self.path:
            raise ConfigError("data.corpus=text needs data.path, the text file to model")
        if self.corpus == "classifier_texts" and not self.path:
            raise ConfigError(
                "data.corpus=classifier_texts needs data.path, a text-classification run folder "
                "(artifacts/sentiment/<run id>)"
            )


def source(config: CorpusConfig) -> CorpusSource:
    found = _find(config)
    if config.max_characters is None:
        return found
    texts = {
        split: RawText(raw.origin, decoded(raw)[: config.max_characters])
        for split, raw in found.texts.items()
    }
    return dataclasses.replace(found, texts=texts)


def local_files(config: CorpusConfig) -> dict:
    """The local files the corpus is read from, with their sizes and times (a cache key part)."""
    from pipelines import cache

    data_dir = config.data_dir or os.environ.get(DATA_DIR_ENV)
    local = config.source == "local" or (config.source == "auto" and data_dir)
    if config.corpus == "text":
        return cache.files_state([Path(config.path)])
    if config.corpus == "classifier_texts":
        return cache.files_state([_ingest_manifest(Path(config.path))])
    if not local:
        return {"source": "remote"}
    folder = {"tiny_shakespeare": "tinyshakespeare", "ptb": "ptb"}[config.corpus]
    return cache.files_state([Path(data_dir) / folder])


def _find(config: CorpusConfig) -> CorpusSource:
    if config.corpus == "text":
        path = Path(config.path)
        return CorpusSource(path.stem, path.resolve().as_uri(), {"all": _read(path, "your corpus")})
    if config.corpus == "classifier_texts":
        return _classifier_texts(Path(config.path))
    data_dir = config.data_dir or os.environ.get(DATA_DIR_ENV)
    local = config.source == "local" or (config.source == "auto" and data_dir)
    if local and not data_dir:
        raise ConfigError(f"data.source=local needs data.data_dir or ${DATA_DIR_ENV}")
    if config.corpus == "tiny_shakespeare":
        if local:
            path = Path(data_dir) / "tinyshakespeare" / "input.txt"
            return CorpusSource(
                "tiny_shakespeare",
                path.resolve().as_uri(),
                {"all": _read(path, "Tiny Shakespeare")},
            )
        return _tfds_tiny_shakespeare()
    folder = Path(data_dir) / "ptb" if local else _download_ptb()
    texts = {split: _read(folder / name, "Penn Treebank") for split, name in PTB_FILES.items()}
    return CorpusSource("ptb", folder.resolve().as_uri(), texts)


def _classifier_texts(run_dir: Path) -> CorpusSource:
    import tensorflow as tf

    from components.text_classification.vectorize import standardize_text

    manifest = _ingest_manifest(run_dir)
    examples = Examples(Path(json.loads(manifest.read_text())["output"]["path"]))
    texts = standardize_text(tf.constant(examples.load("train")["text"].to_numpy())).numpy()
    lines = "\n".join(" ".join(text.decode("utf-8").split()) for text in texts)
    name = f"{run_dir.parent.name}-{run_dir.name}-train-texts"
    return CorpusSource(name, run_dir.resolve().as_uri(), {"all": RawText(str(manifest), lines)})


def _ingest_manifest(run_dir: Path) -> Path:
    manifest = run_dir / "ingest" / "manifest.json"
    if not manifest.is_file():
        raise ConfigError(
            f"data.path={run_dir}: expected a text-classification run folder "
            f"(artifacts/sentiment/<run id>) with an ingest stage; {manifest} does not exist"
        )
    return manifest


def _read(path: Path, what: str) -> RawText:
    if not path.is_file():
        raise DataError(
            f"{what} not found: expected the file {path}. Point ${DATA_DIR_ENV} (or data.data_dir) "
            "at a mirror that has it, or set data.source=remote to download it."
        )
    return RawText(str(path), path.read_bytes())


def _tfds_tiny_shakespeare() -> CorpusSource:
    """TFDS ``tiny_shakespeare``: each split is one example holding the whole split's text."""
    import tensorflow_datasets as tfds

    if not tfds.builder("tiny_shakespeare").is_prepared():
        downloads.require_reachable(
            "Tiny Shakespeare (TFDS tiny_shakespeare)", TINY_SHAKESPEARE_URL, TINY_SHAKESPEARE_COPY
        )
    splits = tfds.load("tiny_shakespeare", split=["train", "validation", "test"])
    texts = {
        name: RawText(f"tfds:tiny_shakespeare/{name}", next(iter(tfds.as_numpy(split)))["text"])
        for name, split in zip(("train", "validation", "test"), splits, strict=True)
    }
    return CorpusSource("tiny_shakespeare", "tfds://tiny_shakespeare", texts)


def _download_ptb() -> Path:
    """Download Mikolov's simple-examples tarball (used by Zaremba et al.); unpack the PTB files."""
    import keras

    try:
        archive = Path(keras.utils.get_file("simple-examples.tgz", PTB_URL))
    except Exception as error:  # keras raises a bare Exception for every network failure
        raise DataError(
            f"could not download Penn Treebank from {PTB_URL} ({error}); without internet, point "
            f"${DATA_DIR_ENV} or data.data_dir at a mirror holding ptb/ptb.train.txt, "
            "ptb.valid.txt and ptb.test.txt"
        ) from error
    folder = archive.parent / "ptb"
    if not all((folder / name).is_file() for name in PTB_FILES.values()):
        folder.mkdir(exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar:
                if Path(member.name).name in PTB_FILES.values() and "/data/" in member.name:
                    (folder / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return folder
