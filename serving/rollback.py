"""Roll a model back: serve its previous version again (``make rollback MODEL=sentiment``).

The newest version directory is renamed into ``.rolled_back/`` (one atomic rename: TF Serving and
serving/server.py serve only numeric directories, so the previous version takes over at their next
poll), the MLflow ``champion`` alias moves to the previous version's registered version (so the
next candidate is judged against what serves), and TF Serving's deployment files are regenerated
without the rolled-back version. Its number stays taken: the next push gets a new one. The
rollback is recorded as a run of the MLflow experiment ``serving``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from components import tracking
from components.errors import DataError
from components.versions import ROLLED_BACK, list_versions
from serving import deployment

log = logging.getLogger(__name__)


def run(serving_dir: Path, model_name: str) -> dict[str, Any]:
    """Take ``model_name``'s newest version out of service; returns what was done.

    Raises:
        DataError: the model has fewer than two versions (nothing would be left to serve), or
            the newest version's number is already under ``.rolled_back/``.
    """
    base = Path(serving_dir).resolve() / model_name
    served = list_versions(base)
    if len(served) < 2:
        raise DataError(
            f"cannot roll back {model_name}: {base} holds versions {served or 'none'}, and a "
            "rollback needs a previous version to serve"
        )
    newest, previous = base / str(served[-1]), base / str(served[-2])
    retired = base / ROLLED_BACK / newest.name
    if retired.exists():
        raise DataError(f"{retired} exists already; move it away to roll {newest} back")
    retired.parent.mkdir(exist_ok=True)
    tracking.configure("serving")
    tags = {"action": "rollback", "model_name": model_name}
    with tracking.pipeline_run(f"rollback-{model_name}", tags):
        rolled_back = tracking.registered_version_at(model_name, newest)
        newest.rename(retired)
        champion = tracking.registered_version_at(model_name, previous)
        tracking.set_champion(model_name, champion)
        if rolled_back is not None:
            tracking.tag_registered_version(model_name, rolled_back, {"serving_path": retired})
        record = {
            "model_name": model_name,
            "rolled_back": {"version": served[-1], "path": str(retired)},
            "serving": {"version": served[-2], "path": str(previous)},
            "champion": champion,
            "deployment_files": [str(p) for p in deployment.write_deployment(base.parent)],
        }
        tracking.log_dict(record, "rollback.json")
    log.info("%s: version %s rolled back to %s", model_name, served[-1], retired)
    return record
