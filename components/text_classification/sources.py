"""Labelled texts from the layouts people keep them in, as ``RawRecord``s for ingest.

A table (CSV, TSV, JSON lines or Parquet) with a text and a label column, a folder with one
sub-folder of ``.txt`` files per label, one text file per label with a text per line, or any TFDS
text classification data set by name. Every
record names where it came from (file and line), so ingest's errors point at it. Label values
become ids by the order of ``label_names`` (or sorted, when none are given).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from components.errors import ConfigError, DataError
from components.text_classification.ingest import RawRecord

TABLE_READERS = {
    ".csv": lambda path: pd.read_csv(path, dtype=str, keep_default_na=False),
    ".tsv": lambda path: pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False),
    ".tab": lambda path: pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False),
    ".jsonl": lambda path: pd.read_json(path, lines=True, dtype=False),
    ".parquet": pd.read_parquet,
}
"""File suffix -> reader: every value as it is written, nothing guessed into numbers or NaN."""


def read_table(path: Path, text_column: str, label_column: str) -> list[tuple[str, str, str]]:
    """``(origin, text, label value)`` per row of a table file; an empty label is ``""``."""
    reader = TABLE_READERS.get(path.suffix.lower())
    if reader is None:
        raise ConfigError(
            f"{path}: unknown table format {path.suffix!r}; expected one of {sorted(TABLE_READERS)}"
        )
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        table = reader(path)
    except (ValueError, pd.errors.ParserError) as error:
        raise DataError(f"{path}: not a readable {path.suffix} table: {error}") from error
    table.columns = [str(column).strip() for column in table.columns]
    missing = [c for c in (text_column, label_column) if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: has no column(s) {missing}; its columns are {list(table.columns)}"
        )
    # The line a person sees in a text file: after the header in a CSV, from 1 in JSON lines.
    first_line = 2 if path.suffix.lower() in (".csv", ".tsv", ".tab") else 1
    unit = "row" if path.suffix.lower() == ".parquet" else "line"
    return [
        (f"{path}: {unit} {index + first_line}", _text(text), _text(label).strip())
        for index, (text, label) in enumerate(
            zip(table[text_column], table[label_column], strict=True)
        )
    ]


def read_directories(root: Path) -> list[tuple[str, bytes, str]]:
    """``(file, bytes, label)`` for every ``<root>/<label>/*.txt``."""
    if not root.is_dir():
        raise DataError(
            f"{root}: folder not found; expected one sub-folder of .txt files per label"
        )
    rows = [
        (str(file), file.read_bytes(), file.parent.name) for file in sorted(root.glob("*/*.txt"))
    ]
    if not rows:
        raise DataError(f"{root}: no <label>/*.txt files")
    return rows


def read_lines(files: dict[str, Path]) -> list[tuple[str, str, str]]:
    """``(file: line N, text, label)`` for every non-blank line of each label's file."""
    rows = []
    for label, path in files.items():
        if not path.is_file():
            raise DataError(f"{path}: file not found (the texts of label {label!r})")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise DataError(
                f"{path}: bytes {error.start}-{error.end} are not valid UTF-8; expected UTF-8 text"
            ) from error
        rows += [
            (f"{path}: line {number}", line, label)
            for number, line in enumerate(lines, start=1)
            if line.strip()
        ]
    return rows


def read_tfds(name: str, split: str, text_key: str, label_key: str) -> list[tuple[str, bytes, str]]:
    """A TFDS split's ``(origin, text, label)``; downloads and prepares it on first use."""
    import tensorflow_datasets as tfds

    try:
        dataset, info = tfds.load(name, split=split, with_info=True)
    except Exception as error:  # TFDS raises many kinds for an unknown name or split
        raise DataError(f"TFDS {name!r} split {split!r} could not be loaded: {error}") from error
    label = info.features[label_key]
    names = getattr(label, "names", None)
    return [
        (
            f"tfds:{name}/{split}[{index}]",
            example[text_key],
            names[example[label_key]] if names else str(example[label_key]),
        )
        for index, example in enumerate(tfds.as_numpy(dataset))
    ]


def label_ids(values: Iterable[str], label_names: list[str] | None) -> dict[str, int]:
    """Label value -> id: the order of ``label_names``, else the sorted values found. With two
    labels the second is the positive class (binary head); more make a multi-class head."""
    names = list(label_names) if label_names else sorted({v for v in values if v != ""})
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(
            f"data.label_names={names}: a classifier needs two or more distinct labels (for two, "
            "the negative first); set data.label_names to the label values of your data"
        )
    return {name: index for index, name in enumerate(names)}


def records(rows: list[tuple[str, bytes | str, str]], ids: dict[str, int]) -> list[RawRecord]:
    """Rows as ingest's records: a label outside ``ids`` is kept as written, for ingest to
    report (or skip and count); an empty one is no label."""
    return [
        RawRecord(origin, text, ids.get(label, label) if label != "" else None)
        for origin, text, label in rows
    ]


def held_out(
    rows: list[tuple[str, bytes | str, str]], fraction: float, seed: int
) -> tuple[list, list]:
    """``(rest, held out)``: a seeded ``fraction`` of each label's distinct texts held out, for a
    test split when the data has none. Copies of a text stay on one side, so a repeated text
    cannot be both learned and tested."""
    by_label: dict[str, dict] = {}
    for row in sorted(rows, key=lambda row: row[0]):
        by_label.setdefault(row[2], {}).setdefault(row[1].strip(), []).append(row)
    rng, rest, test = random.Random(seed), [], []
    for texts in by_label.values():
        groups = list(texts.values())
        chosen = set(rng.sample(range(len(groups)), round(len(groups) * fraction)))
        for index, copies in enumerate(groups):
            (test if index in chosen else rest).extend(copies)
    return rest, test


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)
