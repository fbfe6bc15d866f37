"""An exported model's version directories, listed in one place.

TF Serving (and serving/server.py) serve ``<serving_dir>/<model_name>/<N>/`` for integer ``N``;
hidden directories beside them are never served: the exporter's ``.staging-*`` and
``.rolled_back/<N>/``, where ``make rollback`` keeps the versions it took out of service. Their
numbers stay taken, so a version number never names two different models.
"""

from __future__ import annotations

from pathlib import Path

EVALUATION_FILE = "evaluation.json"
"""Under a pushed version's ``assets.extra/``: the blessing, with every metric, that let it in."""
ROLLED_BACK = ".rolled_back"
"""Under a model's directory: the versions taken out of service, kept under their numbers."""


def list_versions(model_dir: Path) -> list[int]:
    """The integer version directories directly under ``model_dir``, ascending; [] when none."""
    try:
        entries = list(Path(model_dir).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(entry.name) for entry in entries if entry.name.isdigit() and entry.is_dir())


def next_version(model_dir: Path) -> int:
    """One above every version ever pushed, whether still served or rolled back."""
    taken = [*list_versions(model_dir), *list_versions(Path(model_dir) / ROLLED_BACK)]
    return max(taken, default=0) + 1
