"""An exported model's version directories, listed in one place.

TF Serving (and serving/server.py) serve ``<serving_dir>/<model_name>/<N>/`` for integer ``N``;
hidden directories beside them are never served: the exporter's ``.staging-*`` and
``.rolled_back/<N>/``, where ``make rollback`` keeps the versions it took out of service. Their
numbers stay taken, so a version number never names two different models. ``serving_dir`` is a
local folder (a ``Path``) or a URI that ``tf.io.gfile`` handles (a ``str``: ``gs://``, ``s3://``,
``hdfs://``, TF's in-memory ``ram://``).
"""

from __future__ import annotations

import json
from pathlib import Path

EVALUATION_FILE = "evaluation.json"
"""Under a pushed version's ``assets.extra/``: the blessing, with every metric, that let it in."""
ROLLED_BACK = ".rolled_back"
"""Under a model's directory: the versions taken out of service, kept under their numbers."""


def is_uri(location: Path | str) -> bool:
    """Whether ``location`` is a ``scheme://`` URI (read and written through ``tf.io.gfile``)."""
    return "://" in str(location)


def child(location: Path | str, name: str) -> Path | str:
    """``location/name``; a URI stays a string (``Path`` would fold ``gs://`` into ``gs:/``)."""
    return f"{str(location).rstrip('/')}/{name}" if is_uri(location) else Path(location) / name


def list_versions(model_dir: Path | str) -> list[int]:
    """The integer version directories directly under ``model_dir``, ascending; [] when none."""
    if not is_uri(model_dir):
        try:
            entries = list(Path(model_dir).iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(int(e.name) for e in entries if e.name.isdigit() and e.is_dir())
    import tensorflow as tf  # only for URIs: a local listing needs no TensorFlow

    try:
        names = [name.rstrip("/") for name in tf.io.gfile.listdir(model_dir)]
    except tf.errors.NotFoundError:
        return []
    numeric = [name for name in names if name.isdigit()]
    return sorted(int(name) for name in numeric if tf.io.gfile.isdir(child(model_dir, name)))


def next_version(model_dir: Path | str) -> int:
    """One above every version ever pushed, whether still served or rolled back."""
    taken = [*list_versions(model_dir), *list_versions(child(model_dir, ROLLED_BACK))]
    return max(taken, default=0) + 1


def read_evaluation(version_dir: Path | str) -> dict:
    """The evaluation.json a pushed version carries; {} for one pushed without it."""
    path = child(child(version_dir, "assets.extra"), EVALUATION_FILE)
    if is_uri(path):
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            return {}
        with tf.io.gfile.GFile(path) as file:
            return json.load(file)
    return json.loads(path.read_text()) if path.is_file() else {}
