"""Where the classifier's labelled texts come from: IMDB (the default), or the user's own data by
config: a table file, a folder per label, or a TFDS data set by name."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from components.errors import ConfigError, require_one_of
from components.text_classification import sources
from components.text_classification.ingest import Source
from pipelines import cache
from pipelines.sentiment import imdb

FORMATS = ("imdb", "table", "directories", "tfds")


@dataclasses.dataclass
class TextDataConfig(imdb.ImdbSourceConfig):
    format: str = "imdb"
    """``imdb`` (the IMDB mirror or TFDS imdb_reviews, as ``source`` says), ``table`` (``train``
    and ``test`` are CSV, TSV, JSON-lines or Parquet files with ``text_column`` and
    ``label_column``), ``directories`` (``train`` and ``test`` are folders with one sub-folder
    of .txt files per label) or ``tfds`` (``tfds_name``, with ``tfds_splits``)."""
    name: str | None = None
    """The data set's name in MLflow and lineage; default the train file's or TFDS name."""
    train: str | None = None
    """The training data (a file or a folder); a relative path resolves against ``data_dir``."""
    test: str | None = None
    """The test data; null: ``test_fraction`` of ``train`` is held out (seeded, per label)."""
    test_fraction: float = 0.2
    text_column: str = "text"
    label_column: str = "label"
    label_names: list[str] | None = None
    """The two label values as the data writes them, negative first; null: sorted."""
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
        read = _table_rows(config) if config.format == "table" else sources.read_directories
        train_path = _located(config, config.train)
        train = read(train_path)
        if config.test:
            test = read(_located(config, config.test))
        else:
            train, test = sources.held_out(train, config.test_fraction, config.seed)
        splits, uri = {"train": train, "test": test}, train_path.resolve().as_uri()
    ids = sources.label_ids((label for _, _, label in splits["train"]), config.label_names)
    records = {split: sources.records(rows, ids) for split, rows in splits.items()}
    name = config.name or config.tfds_name or Path(config.train).stem
    names = tuple(sorted(ids, key=ids.get))
    return Source(name, uri, imdb.sampled(records, config), names)


def files_state(config: TextDataConfig) -> dict:
    """The files ingest reads, with sizes and times: part of its cache key (new data reruns)."""
    if config.format == "tfds" or (config.format == "imdb" and config.source == "tfds"):
        return {"source": f"tfds:{config.tfds_name or 'imdb_reviews'}"}
    if config.format == "imdb":
        data_dir = config.data_dir or os.environ.get(imdb.DATA_DIR_ENV)
        return cache.files_state([imdb.find_local_copy(Path(data_dir))]) if data_dir else {}
    return cache.files_state(
        [_located(config, path) for path in (config.train, config.test) if path]
    )


def _table_rows(config: TextDataConfig):
    return lambda path: sources.read_table(path, config.text_column, config.label_column)


def _located(config: TextDataConfig, path: str) -> Path:
    root = config.data_dir or os.environ.get(imdb.DATA_DIR_ENV) or "."
    return Path(root) / path
