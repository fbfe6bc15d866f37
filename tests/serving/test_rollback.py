"""Rollback on version directories and registry entries made by hand, like those an export leaves
(tests/components/test_export.py pushes real models): fast."""

import mlflow
import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components import tracking
from components.errors import DataError
from components.versions import list_versions, next_version
from pipelines.__main__ import main
from serving import rollback


def pushed(models, version: int, registered: int | None) -> None:
    """What export leaves: ``<models>/sentiment/<version>/`` and, if registered, the registry
    version tagged with its serving path and made champion."""
    version_dir = models / "sentiment" / str(version)
    version_dir.mkdir(parents=True)
    (version_dir / "saved_model.pb").touch()
    if registered is not None:
        client = mlflow.MlflowClient()
        if not client.search_registered_models("name = 'sentiment'"):
            client.create_registered_model("sentiment")
        client.create_model_version("sentiment", source=str(version_dir))
        tracking.configure("tests")  # the registry helpers act inside a run, as in a pipeline
        with mlflow.start_run():
            tags = {"serving_version": version, "serving_path": version_dir.resolve()}
            tracking.tag_registered_version("sentiment", registered, tags)
            tracking.set_champion("sentiment", registered)


def champion() -> int:
    return int(mlflow.MlflowClient().get_model_version_by_alias("sentiment", "champion").version)


def test_rollback_serves_the_previous_version_and_moves_the_champion_back(
    tmp_path, mlflow_store, capsys
):
    models = tmp_path / "models"
    pushed(models, 1, registered=1)
    pushed(models, 2, registered=2)
    assert champion() == 2

    assert main(["rollback", "--model-name", "sentiment", "--serving-dir", str(models)]) == 0
    assert "sentiment: version 2 rolled back" in capsys.readouterr().out
    assert list_versions(models / "sentiment") == [1]
    retired = (models / "sentiment" / ".rolled_back" / "2").resolve()
    assert (retired / "saved_model.pb").is_file()
    assert champion() == 1
    rolled_back = mlflow.MlflowClient().get_model_version("sentiment", "2")
    assert rolled_back.tags["serving_path"] == str(retired)
    config = text_format.Parse(
        (tmp_path / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    (entry,) = config.model_config_list.config
    assert entry.model_version_policy.latest.num_versions == 1
    assert dict(entry.version_labels) == {"stable": 1}
    assert next_version(models / "sentiment") == 3, "a rolled-back number is never reused"


def test_rolling_back_to_an_unregistered_version_leaves_no_champion(tmp_path, mlflow_store):
    pushed(tmp_path / "models", 1, registered=None)
    pushed(tmp_path / "models", 2, registered=1)
    record = rollback.run(tmp_path / "models", "sentiment")
    assert (record["serving"]["version"], record["champion"]) == (1, None)
    with pytest.raises(mlflow.exceptions.MlflowException, match="champion"):
        champion()


def test_rollback_needs_a_previous_version(tmp_path, mlflow_store):
    with pytest.raises(DataError, match=r"versions none, and a rollback needs a previous"):
        rollback.run(tmp_path / "models", "sentiment")
    pushed(tmp_path / "models", 1, registered=None)
    with pytest.raises(DataError, match=r"models/sentiment holds versions \[1\]"):
        rollback.run(tmp_path / "models", "sentiment")
    assert list_versions(tmp_path / "models" / "sentiment") == [1]
