"""components/tracking.py where runs of several processes meet in one store."""

import mlflow
import pandas as pd
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


def test_a_split_another_run_stored_meanwhile_is_logged_again(mlflow_store, monkeypatch):
    log_inputs = mlflow.MlflowClient.log_inputs
    calls = []

    def stored_meanwhile(self, run_id, datasets=None, models=None):
        """The first insert collides with the other run's, as the store reports it."""
        calls.append(run_id)
        if len(calls) == 1:
            raise mlflow.exceptions.RestException(
                {
                    "error_code": "BAD_REQUEST",
                    "message": 'duplicate key value violates unique constraint "dataset_pk"',
                }
            )
        return log_inputs(self, run_id, datasets=datasets, models=models)

    monkeypatch.setattr(mlflow.MlflowClient, "log_inputs", stored_meanwhile)
    frame = pd.DataFrame({"text": ["good", "bad"], "label": [1, 0]})
    with mlflow.start_run() as run:
        tracking.log_dataset(frame, "reviews-train", "file:///data/train.csv", "training")

    assert len(calls) == 2
    (logged,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert logged.dataset.name == "reviews-train"
