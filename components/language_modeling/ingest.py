"""Ingest for language modeling: validate a plain-text corpus and cut contiguous splits.

A task hands over either one text (split here by fractions, in order: train, then validation,
then test, as TFDS splits Tiny Shakespeare) or an already split corpus (Penn Treebank's three
files). Text is never shuffled: a language model reads it as a stream.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd

from components import tracking
from components.artifacts import Corpus
from components.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CorpusIngestConfig:
    validation_fraction: float = 0.05
    """Share of a single-text corpus cut (after train) for validation; unused for split corpora."""
    test_fraction: float = 0.05
    """Share of a single-text corpus cut from its end for test. 0: a two-way split whose test
    split is the validation split, as nanoGPT cuts Tiny Shakespeare (first 90% train, last 10%
    validation: ``validation_fraction: 0.1``); its "test" numbers are then validation numbers,
    comparable with nanoGPT's, not held out from model selection (logged with a warning)."""

    def __post_init__(self):
        fractions = (self.validation_fraction, self.test_fraction)
        if (
            not 0.0 < self.validation_fraction < 1.0
            or not 0.0 <= self.test_fraction < 1.0
            or sum(fractions) >= 1.0
        ):
            raise ConfigError(
                "ingest.validation_fraction must be in (0, 1) and ingest.test_fraction in [0, 1) "
                f"(0: test is the validation split), leaving room for train; got {fractions}"
            )


@dataclasses.dataclass(frozen=True)
class RawText:
    origin: str
    """The file (or dataset) the text came from, named in every error about it."""
    content: bytes | str


@dataclasses.dataclass(frozen=True)
class CorpusSource:
    """Either ``{"all": text}`` to be split here, or ``{"train", "validation", "test"}``."""

    name: str
    uri: str
    texts: dict[str, RawText]


def run(config: CorpusIngestConfig, source: CorpusSource, out_dir: Path) -> Corpus:
    texts = {split: decoded(raw) for split, raw in source.texts.items()}
    if set(texts) == {"all"}:
        splits = _cut(texts["all"], config, source.texts["all"].origin)
        if config.test_fraction == 0:
            log.warning(
                "ingest.test_fraction=0: the test split IS the validation split (two-way split); "
                "test metrics are validation metrics, used for model selection too"
            )
            tracking.set_tags({"test_is_validation": "true"})
    elif set(texts) == set(Corpus.SPLITS):
        splits = texts
    else:
        raise DataError(
            f"{source.uri}: expected one text or train/validation/test, got {sorted(texts)}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, text in splits.items():
        (out_dir / f"{split}.txt").write_text(text, encoding="utf-8")
        lines = pd.DataFrame({"line": text.split("\n")})
        tracking.log_dataset(lines, f"{source.name}-{split}", source.uri, split)
    per_split = {split: _statistics(text) for split, text in splits.items()}
    statistics = {"dataset": source.name, **per_split}
    (out_dir / "statistics.json").write_text(json.dumps(statistics, indent=2))
    tracking.log_dict({"source": source.uri, **statistics}, "statistics.json")
    for split, numbers in per_split.items():
        tracking.log_metrics({f"{split}_{key}": value for key, value in numbers.items()})
    return Corpus(out_dir)


def decoded(raw: RawText) -> str:
    """UTF-8 text, or a DataError that says why the bytes are not a text corpus."""
    content = raw.content
    if isinstance(content, bytes):
        nul = content.find(b"\x00")
        if nul >= 0:
            raise DataError(
                f"{raw.origin}: contains a NUL byte at offset {nul}, so it looks like a binary "
                "file; expected a plain UTF-8 text corpus"
            )
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(
                f"{raw.origin}: bytes {error.start}-{error.end} are not valid UTF-8; "
                "expected a plain UTF-8 text corpus"
            ) from error
    if not content.strip():
        raise DataError(f"{raw.origin}: is empty; expected a plain-text corpus to model")
    return content


def _cut(text: str, config: CorpusIngestConfig, origin: str) -> dict[str, str]:
    validation_size = round(len(text) * config.validation_fraction)
    test_size = round(len(text) * config.test_fraction)
    train_size = len(text) - validation_size - test_size
    if min(train_size, validation_size, test_size or 1) < 1:
        raise DataError(
            f"{origin}: {len(text)} characters are too few to cut train/validation/test splits"
        )
    validation = text[train_size : train_size + validation_size]
    return {
        "train": text[:train_size],
        "validation": validation,
        "test": text[train_size + validation_size :] if test_size else validation,
    }


def _statistics(text: str) -> dict[str, int]:
    return {
        "characters": len(text),
        "lines": text.count("\n"),
        "words": len(text.split()),
        "distinct_characters": len(set(text)),
    }
