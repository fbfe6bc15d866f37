"""Typed artifacts passed between components.

An artifact is a directory plus a type. Its content digest identifies it in manifests and lineage.
The runner moves artifacts from a temporary directory to their final place, so each type only
stores a path and derives everything else from the files inside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from components.errors import DataError
from components.versions import is_uri


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A directory produced by one component execution."""

    path: Path

    def digest(self) -> str:
        """SHA-256 over every file's relative path and bytes, in sorted order."""
        sha = hashlib.sha256()
        for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
            sha.update(file.relative_to(self.path).as_posix().encode())
            with file.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    sha.update(block)
        return sha.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "path": str(self.path), "digest": self.digest()}


@dataclasses.dataclass(frozen=True)
class Examples(Artifact):
    """Train / validation / test splits as Parquet files, plus statistics.json."""

    SPLITS: ClassVar[tuple[str, ...]] = ("train", "validation", "test")

    def split_path(self, split: str) -> Path:
        return self.path / f"{split}.parquet"

    def load(self, split: str) -> pd.DataFrame:
        return pd.read_parquet(self.split_path(split))

    def statistics(self) -> dict[str, Any]:
        return json.loads((self.path / "statistics.json").read_text())


@dataclasses.dataclass(frozen=True)
class Corpus(Artifact):
    """A text corpus as contiguous train / validation / test streams (``<split>.txt``)."""

    SPLITS: ClassVar[tuple[str, ...]] = ("train", "validation", "test")

    def text(self, split: str) -> str:
        return (self.path / f"{split}.txt").read_text(encoding="utf-8")

    def statistics(self) -> dict[str, Any]:
        return json.loads((self.path / "statistics.json").read_text())


@dataclasses.dataclass(frozen=True)
class TokenizedCorpus(Artifact):
    """A language-model vocabulary (tokenizer.json) and each split as a stream of token ids."""

    def ids(self, split: str) -> np.ndarray:
        return np.load(self.path / f"{split}.ids.npy")


@dataclasses.dataclass(frozen=True)
class TimeSeries(Artifact):
    """A regular panel of series (panel.parquet: one row per series and period) and statistics."""

    def load(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "panel.parquet")

    def statistics(self) -> dict[str, Any]:
        return json.loads((self.path / "statistics.json").read_text())


@dataclasses.dataclass(frozen=True)
class SeriesWindows(Artifact):
    """One backtest fold's transform: the series on a period grid (values.npy), static columns,
    the fitted feature_spec.json, and (series, origin) window pairs per split."""

    def observed(self) -> np.ndarray:
        """[series, period]: true where the file had the target, false where ingest filled a
        missing period (or the series does not reach): such periods are neither trained on nor
        scored."""
        return np.load(self.path / "observed.npy")

    def values(self) -> np.ndarray:
        """[series, period, target + known-future + past covariates], NaN outside a series."""
        return np.load(self.path / "values.npy")

    def statics(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "statics.parquet")

    def origins(self, split: str) -> np.ndarray:
        return np.load(self.path / f"{split}.origins.npy")

    def summary(self) -> dict[str, Any]:
        return json.loads((self.path / "windows.json").read_text())

    def grid_dates(self) -> list[str]:
        return self.summary()["grid"]


@dataclasses.dataclass(frozen=True)
class Vocabulary(Artifact):
    """A fitted text vectorization: vocabulary.txt plus the layer settings in vectorizer.json,
    and the train split as token ids in TFRecord shards (train_shards/)."""

    @property
    def vocabulary_file(self) -> Path:
        return self.path / "vocabulary.txt"

    @property
    def train_shards_dir(self) -> Path:
        return self.path / "train_shards"


@dataclasses.dataclass(frozen=True)
class TrainedModel(Artifact):
    """The best Keras model (model.keras), its per-epoch history (history.json) and a training
    summary (training.json)."""

    @property
    def model_file(self) -> Path:
        return self.path / "model.keras"

    def load(self):
        import keras

        return keras.saving.load_model(self.model_file)

    def history(self) -> dict[str, list[float]]:
        return json.loads((self.path / "history.json").read_text())

    def summary(self) -> dict[str, Any]:
        """training.json: epochs, best epoch, wall time, throughput, parameters."""
        return json.loads((self.path / "training.json").read_text())


@dataclasses.dataclass(frozen=True)
class NgramModel(Artifact):
    """A text classifier's n-gram branch: ``raw text -> per-class logits`` (ngram_model.keras)
    and ngrams.json (enabled, features, fit time); no model file when the branch is off."""

    MODEL_FILE: ClassVar[str] = "ngram_model.keras"
    SUMMARY_FILE: ClassVar[str] = "ngrams.json"

    def summary(self) -> dict[str, Any]:
        return json.loads((self.path / self.SUMMARY_FILE).read_text())

    @property
    def enabled(self) -> bool:
        return self.summary()["enabled"]

    def load(self):
        import keras

        return keras.saving.load_model(self.path / self.MODEL_FILE)

    def copy_model_into(self, directory: Path) -> None:
        """Copy the branch beside what joins it, so that artifact stands on its own."""
        (directory / self.MODEL_FILE).write_bytes((self.path / self.MODEL_FILE).read_bytes())


@dataclasses.dataclass(frozen=True)
class StackedModel(NgramModel):
    """How the recurrent and n-gram branches are joined: stack.json (``enabled`` and the weights
    fitted on the validation split) and a copy of the n-gram branch."""

    WEIGHTS_FILE: ClassVar[str] = "stack.json"
    SUMMARY_FILE: ClassVar[str] = WEIGHTS_FILE

    def weights(self) -> dict[str, Any]:
        return self.summary()


@dataclasses.dataclass(frozen=True)
class Metrics(Artifact):
    """Evaluation results on the test split: metrics.json plus plots and examples."""

    def load(self) -> dict[str, Any]:
        return json.loads((self.path / "metrics.json").read_text())


@dataclasses.dataclass(frozen=True)
class Blessing(Artifact):
    """The evaluator's verdict on a candidate model (blessing.json): blessed or not, and why."""

    def load(self) -> dict[str, Any]:
        return json.loads((self.path / "blessing.json").read_text())

    @property
    def blessed(self) -> bool:
        return bool(self.load()["blessed"])


@dataclasses.dataclass(frozen=True)
class Hyperparameters(Artifact):
    """The tuner's best values as config overrides (hyperparameters.json) and all its trials."""

    def load(self) -> dict[str, Any]:
        return json.loads((self.path / "hyperparameters.json").read_text())

    def overrides(self) -> dict[str, Any]:
        """Config key (``model.units``) -> best value, applied on top of the pipeline's config."""
        record = self.load()
        if "best" not in record:
            raise DataError(
                f"{self.path} is tuning worker {record.get('tuner_id')}'s record of its trials; "
                "the best values are in the chief's run"
            )
        return record["best"]


@dataclasses.dataclass(frozen=True)
class PushedModel(Artifact):
    """What the pusher did (push.json): the serving version it wrote, or why it pushed nothing."""

    def load(self) -> dict[str, Any]:
        return json.loads((self.path / "push.json").read_text())

    @property
    def pushed(self) -> bool:
        return bool(self.load()["pushed"])

    @property
    def version_dir(self) -> Path | str | None:
        """``<serving_dir>/<model_name>/<version>`` (TF Serving layout; a URI string where
        ``serving_dir`` is one), or None if not pushed."""
        record = self.load()
        if not record["pushed"]:
            return None
        return record["path"] if is_uri(record["path"]) else Path(record["path"])


ARTIFACT_TYPES: dict[str, type[Artifact]] = {
    cls.__name__: cls
    for cls in (
        Examples,
        Corpus,
        TokenizedCorpus,
        TimeSeries,
        SeriesWindows,
        Vocabulary,
        TrainedModel,
        NgramModel,
        StackedModel,
        Metrics,
        Blessing,
        Hyperparameters,
        PushedModel,
    )
}


def from_description(description: dict[str, Any]) -> Artifact:
    """Rebuild an artifact from the dict that ``Artifact.describe`` wrote into a manifest."""
    return ARTIFACT_TYPES[description["type"]](Path(description["path"]))
