"""components/tracking.py where runs of several processes meet in one store."""

import mlflow
from mlflow.tracking._tracking_service.client import TrackingServiceClient

from components import tracking


def test_configure_activates_an_experiment_another_process_created_meanwhile(
    mlflow_store, monkeypatch
):
    created_elsewhere = mlflow.MlflowClient().create_experiment("sentiment")
    lookup = TrackingServiceClient.get_experiment_by_name
    lookups = []

    def not_there_yet(self, name):
        """The first lookup runs before the other process's create, as in the race."""
        lookups.append(name)
        return None if len(lookups) == 1 else lookup(self, name)

    monkeypatch.setattr(TrackingServiceClient, "get_experiment_by_name", not_there_yet)
    tracking.configure("sentiment")

    assert lookups  # MLflow took the path of the race
    with tracking.pipeline_run("run", {"pipeline": "sentiment"}) as run_id:
        pass
    assert mlflow.get_run(run_id).info.experiment_id == created_elsewhere
    experiment = mlflow.get_experiment(created_elsewhere)
    assert experiment.tags[tracking.EXPERIMENT_KIND] == "custom_model_development"
