"""IMDB review sources: a local ``aclImdb`` mirror (folder or tarball) or TFDS.

Each source yields ``RawRecord``s for the official train and test splits; ingest validates them.
File layout (both local forms): ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tarfile
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from components import downloads
from components.errors import ConfigError, DataError, require_one_of
from components.text_classification.ingest import RawRecord, Source

DOWNLOAD_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
DATA_DIR_ENV = "RNN_DATA_DIR"
LOCAL_COPY = (
    f"set ${DATA_DIR_ENV} (or data.data_dir) to a folder holding imdb/aclImdb/{{train,test}}/"
    f"{{pos,neg}}/*.txt or imdb/aclImdb_v1.tar.gz (the archive at {DOWNLOAD_URL})"
)
LABELS = {"neg": 0, "pos": 1}
SPLITS = ("train", "test")


@dataclasses.dataclass
class ImdbSourceConfig:
    source: str = "auto"
    """``local`` reads a mirror, ``tfds`` downloads TFDS ``imdb_reviews``, ``auto`` picks local if
    a data directory is set (here or in $RNN_DATA_DIR), else TFDS."""
    data_dir: str | None = None
    """Mirror root holding ``imdb/`` (or ``aclImdb/``, or the tarball); default $RNN_DATA_DIR."""
    max_reviews_per_split: int | None = None
    """Keep a seeded, label-balanced sample of this many reviews per split (smoke runs, tests)."""
    seed: int = 42

    def __post_init__(self):
        require_one_of("data.source", self.source, ("auto", "local", "tfds"))


def source(config: ImdbSourceConfig) -> Source:
    data_dir = config.data_dir or os.environ.get(DATA_DIR_ENV)
    use_local = config.source == "local" or (config.source == "auto" and data_dir)
    if use_local:
        if not data_dir:
            raise ConfigError(f"data.source=local needs data.data_dir or ${DATA_DIR_ENV}")
        location = find_local_copy(Path(data_dir))
        read = _read_tarball if location.is_file() else _read_directory
        records = sampled(read(location), config)
        return Source("imdb", location.resolve().as_uri(), records)
    return Source("imdb", "tfds://imdb_reviews/plain_text", sampled(_read_tfds(), config))


def find_local_copy(data_dir: Path) -> Path:
    """The ``aclImdb`` directory or ``aclImdb_v1*.tar.gz`` in ``data_dir`` or ``data_dir/imdb``."""
    candidates = [data_dir, data_dir / "imdb"]
    for folder in candidates:
        if folder.is_file() and folder.name.endswith((".tar.gz", ".tgz")):
            return folder
        if (folder / "aclImdb").is_dir():
            return folder / "aclImdb"
        if folder.name == "aclImdb" and folder.is_dir():
            return folder
        tarballs = sorted(folder.glob("aclImdb_v1*.tar.gz")) if folder.is_dir() else []
        if tarballs:
            return tarballs[0]
    raise DataError(
        f"IMDB data not found: expected an aclImdb/ directory or aclImdb_v1*.tar.gz in "
        f"{' or '.join(str(c) for c in candidates)}. "
        f"Download {DOWNLOAD_URL} into {data_dir / 'imdb'}, "
        f"point ${DATA_DIR_ENV} (or data.data_dir) at your copy, or set data.source=tfds to let "
        "TensorFlow Datasets download it."
    )


def _parse_member(name: str) -> tuple[str, int] | None:
    """``aclImdb/train/pos/0_9.txt`` -> ("train", 1); None for files outside the labeled splits."""
    parts = Path(name).parts
    labeled = len(parts) >= 4 and parts[-4] == "aclImdb" and parts[-3] in SPLITS
    if labeled and parts[-2] in LABELS and parts[-1].endswith(".txt"):
        return parts[-3], LABELS[parts[-2]]
    return None


def _read_tarball(path: Path) -> dict[str, list[RawRecord]]:
    splits: dict[str, list[RawRecord]] = {split: [] for split in SPLITS}
    try:
        with tarfile.open(path) as archive:
            for member in tqdm(archive, desc=f"reading {path.name}", unit=" files", mininterval=2):
                parsed = _parse_member(member.name) if member.isfile() else None
                if parsed:
                    text = archive.extractfile(member).read()
                    splits[parsed[0]].append(RawRecord(f"{path}:{member.name}", text, parsed[1]))
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(f"{path}: not a readable .tar.gz archive ({error})") from error
    return _require_records(splits, path)


def _read_directory(path: Path) -> dict[str, list[RawRecord]]:
    splits: dict[str, list[RawRecord]] = {split: [] for split in SPLITS}
    files = sorted(path.glob("*/*/*.txt"))
    for file in tqdm(files, desc=f"reading {path}", unit=" files", mininterval=2):
        parsed = _parse_member(str(file))
        if parsed:
            splits[parsed[0]].append(RawRecord(str(file), file.read_bytes(), parsed[1]))
    return _require_records(splits, path)


def _require_records(splits: dict[str, list[RawRecord]], path: Path) -> dict[str, list[RawRecord]]:
    for split, records in splits.items():
        if not records:
            raise DataError(
                f"{path}: no reviews found for the {split} split; expected files "
                f"aclImdb/{split}/pos/*.txt and aclImdb/{split}/neg/*.txt"
            )
    return splits


def _read_tfds() -> dict[str, Iterator[RawRecord]]:
    """TFDS ``imdb_reviews``: downloads and prepares the dataset on first use (needs internet)."""
    import tensorflow_datasets as tfds

    if not tfds.builder("imdb_reviews").is_prepared():
        downloads.require_reachable("IMDB reviews (TFDS imdb_reviews)", DOWNLOAD_URL, LOCAL_COPY)
    datasets = tfds.load("imdb_reviews", split=list(SPLITS), as_supervised=True)
    return {
        split: [
            RawRecord(f"tfds:imdb_reviews/{split}[{index}]", text, int(label))
            for index, (text, label) in enumerate(tfds.as_numpy(dataset))
        ]
        for split, dataset in zip(SPLITS, datasets, strict=True)
    }


def sampled(
    splits: dict[str, list[RawRecord]], config: ImdbSourceConfig
) -> dict[str, list[RawRecord]]:
    """A seeded, label-balanced subset when ``max_reviews_per_split`` is set; else everything."""
    limit = config.max_reviews_per_split
    if limit is None:
        return splits
    rng = random.Random(config.seed)
    sampled = {}
    for split, records in splits.items():
        by_label: dict[int | None, list[RawRecord]] = {}
        for record in sorted(records, key=lambda r: r.origin):
            by_label.setdefault(record.label, []).append(record)
        per_label = max(1, limit // max(1, len(by_label)))
        sampled[split] = [
            r for group in by_label.values() for r in rng.sample(group, min(per_label, len(group)))
        ]
    return sampled
