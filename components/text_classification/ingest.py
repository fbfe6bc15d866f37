"""Ingest (ExampleGen): validate raw labeled text records and write deterministic splits.

A task module turns its source (a tarball, a directory, TFDS) into ``RawRecord`` streams for a
``train`` and a ``test`` split. This component decodes and validates every record, carves a
stratified, seeded validation split out of train, keeps the official test split for the final
score, and writes Parquet splits plus statistics.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from components import tracking
from components.artifacts import Examples
from components.errors import ConfigError, DataError, require_one_of

log = logging.getLogger(__name__)


@dataclasses.dataclass
class IngestConfig:
    validation_fraction: float = 0.1
    """Share of the train split held out (stratified by label) for early stopping."""
    seed: int = 42
    """Seed of the train/validation carve; the same seed gives the same split."""
    bad_records: str = "error"
    """``error`` stops at the first invalid record; ``skip`` drops it and counts it."""
    duplicates: str = "drop"
    """Texts that occur more than once: ``drop`` keeps a text's first copy in train, drops texts
    seen with different labels, and drops test texts that are also training texts (a model that
    memorized them would score as if it generalized); ``keep`` leaves the splits as given (e.g. a
    benchmark's official test split) and only counts them. Counted in statistics.json either way."""

    def __post_init__(self):
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(
                f"ingest.validation_fraction={self.validation_fraction} must be between 0 and 1"
            )
        require_one_of("ingest.bad_records", self.bad_records, ("error", "skip"))
        require_one_of("ingest.duplicates", self.duplicates, ("drop", "keep"))


@dataclasses.dataclass(frozen=True)
class RawRecord:
    origin: str
    """Where the record came from (a file name), named in every error about it."""
    text: bytes | str
    label: int | None


@dataclasses.dataclass(frozen=True)
class Source:
    """What a task hands to ingest: a name, a URI for lineage, and raw records per split."""

    name: str
    uri: str
    splits: dict[str, Iterable[RawRecord]]
    label_names: tuple[str, ...] = ("negative", "positive")
    """What labels 0, 1, ... mean, shown in reports and served with each prediction; every
    record's label is one of these ids."""


class RecordError(DataError):
    """A single record failed validation; ``kind`` is what skip-and-count mode counts."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def run(config: IngestConfig, source: Source, out_dir: Path) -> Examples:
    missing = {"train", "test"} - set(source.splits)
    if missing:
        raise DataError(
            f"source {source.uri} has no {sorted(missing)} split; expected train and test"
        )
    skipped: Counter[str] = Counter()
    labels = list(range(len(source.label_names)))
    frames = {
        split: _validated_frame(records, split, config, labels, skipped)
        for split, records in source.splits.items()
    }
    duplicates = _duplicate_counts(frames["train"], frames["test"])
    if config.duplicates == "drop":
        frames = _without_duplicates(frames["train"], frames["test"])
        if frames["test"].empty:
            raise DataError(
                f"every test text of {source.uri} is also a training text: nothing is left to "
                "test on (ingest.duplicates=drop); give a test split of other texts"
            )
    if any(duplicates.values()):
        log.warning(
            "%s: duplicate texts %s (ingest.duplicates=%s)", source.name, duplicates,
            config.duplicates,
        )  # fmt: skip
    try:
        train, validation = train_test_split(
            frames["train"],
            test_size=config.validation_fraction,
            random_state=config.seed,
            stratify=frames["train"]["label"],
        )
    except ValueError as error:  # too few examples of a label to carve a stratified split
        raise DataError(
            f"the train split of {source.uri} ({len(frames['train'])} examples, labels "
            f"{frames['train']['label'].value_counts().to_dict()}) is too small for "
            f"ingest.validation_fraction={config.validation_fraction}: {error}"
        ) from error
    splits = {"train": train, "validation": validation, "test": frames["test"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, frame in splits.items():
        frame.reset_index(drop=True).to_parquet(out_dir / f"{split}.parquet", index=False)
        tracking.log_dataset(frame, f"{source.name}-{split}", source.uri, split, targets="label")
    statistics = {"dataset": source.name, "label_names": list(source.label_names)}
    statistics |= _statistics(splits, skipped)
    statistics["duplicates"] = {"policy": config.duplicates, **duplicates}
    (out_dir / "statistics.json").write_text(json.dumps(statistics, indent=2))
    tracking.log_dict(statistics, "statistics.json")
    tracking.log_metrics({f"{split}_examples": len(frame) for split, frame in splits.items()})
    tracking.log_metrics({f"skipped_{kind}": count for kind, count in skipped.items()})
    tracking.log_metrics({f"duplicates_{kind}": count for kind, count in duplicates.items()})
    return Examples(out_dir)


def _duplicate_counts(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, int]:
    """Repeated texts: extra copies inside each split, training texts seen with more than one
    label, and test texts that are also in train (by exact text, surrounding space ignored)."""
    train_texts, test_texts = train["text"].str.strip(), test["text"].str.strip()
    labels_per_text = train.groupby(train_texts)["label"].nunique()
    return {
        "repeated_in_train": int(train_texts.duplicated().sum()),
        "repeated_in_test": int(test_texts.duplicated().sum()),
        "conflicting_labels_in_train": int((labels_per_text > 1).sum()),
        "test_in_train": int(test_texts.isin(set(train_texts)).sum()),
    }


def _without_duplicates(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each training text once (dropped altogether when its copies disagree on the label); each
    test text once and only if train does not hold it."""
    train_texts = train["text"].str.strip()
    conflicting = train.groupby(train_texts)["label"].transform("nunique") > 1
    train = train[~conflicting & ~train_texts.duplicated()]
    test_texts = test["text"].str.strip()
    test = test[~test_texts.duplicated() & ~test_texts.isin(set(train_texts))]
    return {"train": train.reset_index(drop=True), "test": test.reset_index(drop=True)}


def _validated_frame(
    records: Iterable[RawRecord],
    split: str,
    config: IngestConfig,
    labels: list[int],
    skipped: Counter,
) -> pd.DataFrame:
    rows = []
    for record in tqdm(records, desc=f"ingest {split}", unit=" records", mininterval=2):
        try:
            rows.append(_validated_row(record, labels))
        except DataError as error:
            if config.bad_records == "error":
                raise
            skipped[error.kind] += 1
            log.warning("skipped %s", error)
    if not rows:
        raise DataError(f"the {split} split has no valid records")
    # Sorting by origin makes the splits independent of the order the source was read in.
    frame = pd.DataFrame(rows).sort_values("origin", kind="stable").reset_index(drop=True)
    absent = set(labels) - set(frame["label"])
    if absent:
        raise DataError(f"the {split} split has no examples of label(s) {sorted(absent)}")
    return frame


def _validated_row(record: RawRecord, labels: list[int]) -> dict:
    text = record.text
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RecordError(
                "non_utf8",
                f"{record.origin}: bytes {error.start}-{error.end} are not valid UTF-8; "
                "expected UTF-8 text (set ingest.bad_records=skip to skip and count such files)",
            ) from error
    if not text.strip():
        raise RecordError(
            "empty_text",
            f"{record.origin}: text is empty; expected a non-empty review "
            "(set ingest.bad_records=skip to skip and count such files)",
        )
    if record.label is None:
        raise RecordError(
            "missing_label", f"{record.origin}: has no label; expected one of {labels}"
        )
    if record.label not in labels:
        raise RecordError(
            "unknown_label", f"{record.origin}: label {record.label!r} is not one of {labels}"
        )
    return {"origin": record.origin, "text": text, "label": int(record.label)}


def _statistics(splits: dict[str, pd.DataFrame], skipped: Counter) -> dict:
    statistics: dict = {"skipped": dict(skipped), "splits": {}}
    for split, frame in splits.items():
        words = frame["text"].str.split().str.len().to_numpy()
        statistics["splits"][split] = {
            "examples": len(frame),
            "labels": {
                str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()
            },
            "words": {
                "min": int(words.min()),
                "mean": round(float(words.mean()), 1),
                **{f"p{q}": int(np.percentile(words, q)) for q in (25, 50, 75, 95)},
                "max": int(words.max()),
            },
        }
    return statistics
