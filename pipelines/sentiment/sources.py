"""Where the classifier's labelled texts come from: IMDB (the default), or the user's own data by
config: a table file, a folder per label, a text file per label, or a TFDS data set by name."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from components.errors import ConfigError, require_one_of
from components.text_classification import sources
from components.text_classification.ingest import Source
from pipelines import cache
from pipelines.sentiment import imdb

FORMATS = ("imdb", "table", "directories", "lines", "tfds")


@dataclasses.dataclass
class TextDataConfig(imdb.ImdbSourceConfig):
    format: str = "imdb"
    """``imdb`` (the IMDB mirror or TFDS imdb_reviews, as ``source`` says), ``table`` (``train``
    and ``test`` are CSV, TSV, JSON-lines or Parquet files with ``text_column`` and
    ``label_column``), ``directories`` (``train`` and ``test`` are folders with one sub-folder
    of .txt files per label), ``lines`` (``train_files`` and ``test_files`` map each label to a
    file with one text per line) or ``tfds`` (``tfds_name``, with ``tfds_splits``)."""
    name: str | None = None
    """The data set's name in MLflow and lineage; default the train file's or TFDS name."""
    train: str | None = None
    """The training data (a file or a folder); a relative path resolves against ``data_dir``."""
    test: str | None = None
    """The test data; null: ``test_fraction`` of ``train`` is held out (seeded, per label)."""
    train_files: dict[str, str] | None = None
    """``lines`` format: label -> its file of training texts, one per line."""
    test_files: dict[str, str] | None = None
    """``lines`` format: label -> its test file; null: ``test_fraction`` is held out."""
    test_fraction: float = 0.2
    text_column: str = "text"
    label_column: str = "label"
    label_names: list[str] | None = None
    """The label values as the data writes them (for two, the negative first); null: sorted.
    Two labels train a binary classifier, more a multi-class one."""
    tfds_name: str | None = None
    """e.g. ``yelp_polarity_reviews``; ``tfds_text_key`` / ``tfds_label_key`` name its features."""
    tfds_text_key: str = "text"
    tfds_label_key: str = "label"
    tfds_splits: list[str] = dataclasses.field(default_factory=lambda: ["train", "test"])
    """The TFDS splits read as train and test."""

    def __post_init__(self):
        super().__post_init__()
        require_one_of("data.format", self.format, FORMATS)
        if self.format in ("table", "directories") and not self.train:
            raise ConfigError(f"data.format={self.format} needs data.train, the training data")
        if self.format == "lines" and not self.train_files:
            raise ConfigError(
                "data.format=lines needs data.train_files: {label: file with a text per line}"
            )
        if self.format == "tfds" and (not self.tfds_name or len(self.tfds_splits) != 2):
            raise ConfigError("data.format=tfds needs data.tfds_name and two data.tfds_splits")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"data.test_fraction={self.test_fraction} must be between 0 and 1")


def source(config: TextDataConfig) -> Source:
    """The configured data as ingest's ``Source``: records per split, a name and a URI."""
    if config.format == "imdb":
        return imdb.source(config)
    if config.format == "tfds":
        splits = {
            split: sources.read_tfds(
                config.tfds_name, name, config.tfds_text_key, config.tfds_label_key
            )
            for split, name in zip(("train", "test"), config.tfds_splits, strict=True)
        }
        uri = f"tfds://{config.tfds_name}"
    else:
        if config.format == "lines":
            train_path = _located(config, next(iter(config.train_files.values()))).parent
            train, test_given = _lines(config, config.train_files), config.test_files
            test = _lines(config, config.test_files) if test_given else None
        else:
            read = _table_rows(config) if config.format == "table" else sources.read_directories
            train_path = _located(config, config.train)
            train = read(train_path)
            test = read(_located(config, config.test)) if config.test else None
        if test is None:
            train, test = sources.held_out(train, config.test_fraction, config.seed)
        splits, uri = {"train": train, "test": test}, train_path.resolve().as_uri()
    ids = sources.label_ids((label for _, _, label in splits["train"]), config.label_names)
    records = {split: sources.records(rows, ids) for split, rows in splits.items()}
    name = config.name or config.tfds_name or Path(config.train or train_path).stem
    names = tuple(sorted(ids, key=ids.get))
    return Source(name, uri, imdb.sampled(records, config), names)


def files_state(config: TextDataConfig) -> dict:
    """The files ingest reads, with sizes and times: part of its cache key (new data reruns)."""
    if config.format == "tfds" or (config.format == "imdb" and config.source == "tfds"):
        return {"source": f"tfds:{config.tfds_name or 'imdb_reviews'}"}
    if config.format == "imdb":
        data_dir = config.data_dir or os.environ.get(imdb.DATA_DIR_ENV)
        return cache.files_state([imdb.find_local_copy(Path(data_dir))]) if data_dir else {}
    files = [config.train, config.test]
    files += [*(config.train_files or {}).values(), *(config.test_files or {}).values()]
    return cache.files_state([_located(config, path) for path in files if path])


def _lines(config: TextDataConfig, files: dict[str, str]):
    return sources.read_lines({label: _located(config, path) for label, path in files.items()})


def _table_rows(config: TextDataConfig):
    return lambda path: sources.read_table(path, config.text_column, config.label_column)


def _located(config: TextDataConfig, path: str) -> Path:
    root = config.data_dir or os.environ.get(imdb.DATA_DIR_ENV) or "."
    return Path(root) / path
