import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from components import bless, export, tracking
from components.artifacts import Blessing, Metrics, TrainedModel
from components.bless import BlessingConfig
from components.errors import ConfigError
from components.export import ExportConfig
from components.text_classification import signatures
from components.versions import list_versions, read_evaluation
from serving import deployment
from tests.conftest import REPOSITORY, write_blessing

REVIEWS = ["wonderful brilliant superb film", "awful boring terrible waste"]


@pytest.fixture(scope="module")
def tiny_sentiment(tiny_sentiment):
    """The session's tiny classifier with its serving archive, built once (seconds of tracing) and
    written out by every push here: the copies pushed have its weights, and export tells them
    apart by their artifacts."""
    archive = signatures.serving_archive(tiny_sentiment["train"], tiny_sentiment["preprocess"], 0.5)
    return {**tiny_sentiment, "archive": archive}


def retrained(tiny_sentiment, folder: Path) -> TrainedModel:
    """The tiny model as if from another training run: same weights, a different artifact."""
    shutil.copytree(tiny_sentiment["train"].path, folder)
    (folder / "run.txt").write_text(folder.name)
    return TrainedModel(folder)


def push(
    tiny_sentiment,
    serving_dir: Path | str,
    out_dir: Path,
    blessed: bool = True,
    trained: TrainedModel | None = None,
    champion: int | None = None,
    blessing: Blessing | None = None,
    build_archive=None,
    **options,
):
    """Export the tiny model: a distinct trained model on each call unless ``trained`` is given.
    Its blessing is ``blessing``, else one made up, judged against registered version
    ``champion``. ``build_archive`` replaces the one that returns the prebuilt archive."""
    trained = trained or retrained(tiny_sentiment, out_dir.with_name(f"{out_dir.name}-model"))
    config = ExportConfig(model_name="sentiment", serving_dir=str(serving_dir), **options)
    blessing = blessing or write_blessing(
        out_dir.with_name(f"{out_dir.name}-blessing"), blessed, champion=champion
    )
    inputs = {"text": tf.constant(REVIEWS)}
    return export.run(
        config,
        build_archive or (lambda: tiny_sentiment["archive"]),
        inputs,
        blessing,
        trained,
        out_dir,
        write_deployment=deployment.write_deployment,
    )


def test_versions_increase_and_no_staging_is_left(tiny_sentiment, tmp_path):
    first = push(tiny_sentiment, tmp_path / "models", tmp_path / "a")
    second = push(tiny_sentiment, tmp_path / "models", tmp_path / "b")
    assert (first.load()["version"], second.load()["version"]) == (1, 2)
    folder = tmp_path / "models" / "sentiment"
    assert sorted(p.name for p in folder.iterdir()) == [export.PUSH_LOCK, "1", "2"]
    assert (second.version_dir / "saved_model.pb").is_file()


def refuse_to_build():
    raise AssertionError("a model that is not pushed needs no serving archive (seconds of tracing)")


def test_the_model_already_serving_is_not_pushed_again(tiny_sentiment, tmp_path):
    model = tiny_sentiment["train"]
    push(tiny_sentiment, tmp_path / "models", tmp_path / "a", trained=model)
    again = push(
        tiny_sentiment,
        tmp_path / "models",
        tmp_path / "b",
        trained=model,
        build_archive=refuse_to_build,
    )
    assert not again.pushed
    assert again.load()["reason"] == "this trained model already serves as version 1"
    folder = tmp_path / "models" / "sentiment"
    assert sorted(p.name for p in folder.iterdir()) == [export.PUSH_LOCK, "1"]


def test_an_unblessed_model_is_recorded_but_not_pushed(tiny_sentiment, tmp_path):
    pushed = push(
        tiny_sentiment,
        tmp_path / "models",
        tmp_path / "out",
        blessed=False,
        build_archive=refuse_to_build,
    )
    assert not (tmp_path / "models").exists()
    assert not pushed.pushed and pushed.version_dir is None
    assert pushed.load()["reason"] == "not blessed: accuracy 0.9 >= lower bound 0.85: FAIL"


def test_a_blessed_push_carries_its_evaluation_and_becomes_champion(
    tiny_sentiment, tmp_path, mlflow_store
):
    client = mlflow.MlflowClient()
    tracking.configure("tests")
    with mlflow.start_run():  # the registry helpers act inside a run, as in a pipeline
        pushed = push(tiny_sentiment, tmp_path / "models", tmp_path / "a")
        record = pushed.load()
        assert (record["pushed"], record["version"], record["registered_version"]) == (True, 1, 1)
        evaluation = pushed.version_dir / "assets.extra" / "evaluation.json"
        assert json.loads(evaluation.read_text())["metrics"] == {"accuracy": 0.9}
        champion = client.get_model_version_by_alias("sentiment", "champion")
        assert int(champion.version) == 1
        assert champion.tags["serving_path"] == str(pushed.version_dir)
        assert champion.tags["serving_version"] == "1"

        # What serves next is not registered, so it cannot be champion; no stale alias remains.
        push(tiny_sentiment, tmp_path / "models", tmp_path / "b", register=False, champion=1)
        assert not client.get_registered_model("sentiment").aliases


def champion() -> int:
    return int(mlflow.MlflowClient().get_model_version_by_alias("sentiment", "champion").version)


def judged(tmp_path, serving_dir: Path, accuracy: float, name: str) -> Blessing:
    """The bless stage, by default settings, on a candidate scoring ``accuracy`` (the simple
    baseline scores 0.5): blessed unless more than 2% below the champion."""
    comparison = bless.baseline_comparison("accuracy", True, accuracy, {"majority": 0.5})
    scores = tmp_path / f"{name}-metrics"
    scores.mkdir()
    (scores / "metrics.json").write_text(
        json.dumps({"accuracy": accuracy, "baseline_comparison": comparison})
    )
    model_dir = ExportConfig(model_name="sentiment", serving_dir=str(serving_dir)).model_dir
    return bless.run(BlessingConfig(), Metrics(scores), model_dir, tmp_path / f"{name}-blessing")


def test_machines_sharing_a_registry_judge_against_its_champion_not_their_folders(
    tiny_sentiment, tmp_path, mlflow_store
):
    """Machine B's folder holds only an old, worse version; machine A pushed a better champion."""
    machine_a, machine_b = tmp_path / "a" / "models", tmp_path / "b" / "models"
    stale = machine_b / "sentiment" / "1" / "assets.extra"
    stale.mkdir(parents=True)
    old = bless.baseline_comparison("accuracy", True, 0.70, {"majority": 0.5})
    (stale / "evaluation.json").write_text(json.dumps({"metrics": {"baseline_comparison": old}}))
    tracking.configure("tests")
    with mlflow.start_run():
        first = judged(tmp_path, machine_a, 0.95, "a1")
        push(tiny_sentiment, machine_a, tmp_path / "a1", blessing=first)
        assert champion() == 1

        worse = judged(tmp_path, machine_b, 0.80, "b1").load()
        assert not worse["blessed"]
        assert worse["baseline"]["source"] == "registry"
        assert worse["reasons"][1].startswith("accuracy 0.8 vs 0.95 of serving version 1")
        assert not push(tiny_sentiment, machine_b, tmp_path / "b1", blessed=False).pushed
        assert champion() == 1

        better = judged(tmp_path, machine_b, 0.96, "b2")
        pushed = push(tiny_sentiment, machine_b, tmp_path / "b2", blessing=better).load()
    assert (pushed["version"], pushed["registered_version"], pushed["champion"]) == (2, 2, 2)
    assert champion() == 2
    assert list_versions(machine_b / "sentiment") == [1, 2]


def test_a_champion_moved_since_the_blessing_stays_champion_and_keeps_the_traffic(
    tiny_sentiment, tmp_path, mlflow_store, caplog
):
    tracking.configure("tests")
    with mlflow.start_run():
        push(tiny_sentiment, tmp_path / "a", tmp_path / "a1")
        # A second candidate is blessed against version 1, then another run pushes version 2.
        push(tiny_sentiment, tmp_path / "a", tmp_path / "a2", champion=1)
        late = push(tiny_sentiment, tmp_path / "a", tmp_path / "a3", champion=1).load()
    assert (late["pushed"], late["registered_version"], late["champion"]) == (False, 3, 2)
    assert late["reason"].startswith(
        "the champion of sentiment is registered version 2, not registered version 1 as when"
    )
    assert "not published as a version" in late["reason"]
    assert champion() == 2
    assert late["reason"] in caplog.text
    # Registered, tagged why, but no version directory: unversioned requests still get 2.
    assert list_versions(tmp_path / "a" / "sentiment") == [1, 2]
    assert not list((tmp_path / "a" / "sentiment").glob(".staging-*"))
    version = mlflow.MlflowClient().get_model_version("sentiment", "3")
    assert version.tags["not_served"] == late["reason"] and "serving_path" not in version.tags


def test_a_push_to_a_gfile_uri(tiny_sentiment, tmp_path, mlflow_store):
    model_dir = f"ram://{tmp_path.name}/models/sentiment"  # TF's in-memory file system
    tracking.configure("tests")
    with mlflow.start_run():
        push(tiny_sentiment, model_dir.rsplit("/", 1)[0], tmp_path / "a")
        pushed = push(tiny_sentiment, model_dir.rsplit("/", 1)[0], tmp_path / "b", champion=1)
    assert pushed.version_dir == f"{model_dir}/2"
    assert list_versions(model_dir) == [1, 2]
    assert sorted(tf.io.gfile.listdir(model_dir)) == ["1", "2"], "a staging folder is left"
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["push.json"]
    serve = tf.saved_model.load(pushed.version_dir).signatures["serving_default"]
    labels = serve(text=tf.constant(REVIEWS))["label_name"].numpy()
    assert [label.decode() for label in labels] == ["positive", "negative"]
    assert read_evaluation(pushed.version_dir)["metrics"] == {"accuracy": 0.9}
    assert "deployment_files" not in pushed.load() and not (tmp_path / "models.config").exists()
    version = mlflow.MlflowClient().get_model_version_by_alias("sentiment", "champion")
    assert (int(version.version), version.tags["serving_path"]) == (2, f"{model_dir}/2")


def test_the_logged_model_carries_its_scores_on_the_test_data_set(
    tiny_sentiment, tmp_path, mlflow_store
):
    tracking.configure("tests")
    with mlflow.start_run() as run:
        for split in ("train", "test"):
            frame = pd.DataFrame({"text": REVIEWS, "label": [1, 0]})
            tracking.log_dataset(frame, f"reviews-{split}", "file:///reviews", split, "label")
        push(tiny_sentiment, tmp_path / "models", tmp_path / "a")

    [model] = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    assert model.name == "sentiment" and model.source_run_id == run.info.run_id
    [accuracy] = [metric for metric in model.metrics if metric.key == "accuracy"]
    assert (accuracy.value, accuracy.dataset_name) == (0.9, "reviews-test")
    assert accuracy.dataset_digest


LOAD_ELSEWHERE = """
import sys
# Neither the checkout nor its editable install: as on a machine with MLflow and TensorFlow only.
sys.path = [p for p in sys.path if p not in ("", ".", REPOSITORY)]
sys.meta_path = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path_hooks = [h for h in sys.path_hooks if "editable" not in getattr(h, "__module__", "")]
sys.path_importer_cache.clear()
import mlflow, pandas as pd
try:
    import components
    raise SystemExit("the project is importable: the test proves nothing")
except ImportError:
    pass
model = mlflow.pyfunc.load_model("models:/sentiment@champion")
print(model.predict(pd.DataFrame({"text": REVIEWS}))["label_name"].tolist())
"""


def test_the_registered_model_loads_and_predicts_without_this_project(
    tiny_sentiment, tmp_path, mlflow_store
):
    tracking.configure("tests")
    with mlflow.start_run():
        push(tiny_sentiment, tmp_path / "models", tmp_path / "a")
    version = mlflow.MlflowClient().get_model_version_by_alias("sentiment", "champion")
    model_info = mlflow.models.get_model_info(f"models:/sentiment/{version.version}")
    assert model_info.signature.inputs.to_dict() == [
        {"type": "string", "name": "text", "required": True}
    ]
    requirements = mlflow.pyfunc.get_model_dependencies(f"models:/sentiment/{version.version}")
    pins = Path(requirements).read_text()
    assert f"tensorflow=={tf.__version__}" in pins and "recurrent-pipelines" not in pins
    script = LOAD_ELSEWHERE.replace("REPOSITORY", repr(str(REPOSITORY))).replace(
        "REVIEWS", repr(REVIEWS)
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "['positive', 'negative']"


def test_a_push_regenerates_the_deployment_files_beside_serving_dir(tiny_sentiment, tmp_path):
    push(tiny_sentiment, tmp_path / "models", tmp_path / "a")
    push(tiny_sentiment, tmp_path / "models", tmp_path / "b")
    config = text_format.Parse(
        (tmp_path / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path) == ("sentiment", "/models/sentiment")
    assert dict(entry.version_labels) == {"stable": 1, "canary": 2}
    assert (tmp_path / "docker-compose.yml").is_file()


def test_deployment_files_can_be_left_alone(tiny_sentiment, tmp_path):
    push(tiny_sentiment, tmp_path / "models", tmp_path / "out", deployment_files=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "models",
        "out",
        "out-blessing",
        "out-model",
    ]


def test_each_version_carries_tf_serving_warmup_requests(tiny_sentiment, tmp_path):
    pushed = push(tiny_sentiment, tmp_path / "models", tmp_path / "out")
    warmup = pushed.version_dir / "assets.extra" / export.WARMUP_FILE
    records = tf.data.TFRecordDataset(str(warmup))
    requests = [
        prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        for record in records
    ]
    assert [(r.model_spec.name, r.model_spec.signature_name) for r in requests] == [
        ("sentiment", "serving_default")
    ] * 2
    assert [list(r.inputs) for r in requests] == [["text"], ["text"]]
    texts = [[t.decode() for t in tf.make_ndarray(r.inputs["text"])] for r in requests]
    assert texts == [REVIEWS[:1], REVIEWS]


def test_exported_model_classifies_raw_strings(tiny_sentiment, tmp_path):
    pushed = push(tiny_sentiment, tmp_path / "models", tmp_path / "out")
    serve = tf.saved_model.load(str(pushed.version_dir)).signatures["serving_default"]
    outputs = serve(text=tf.constant(REVIEWS))
    assert outputs["label"].numpy().tolist() == [1, 0]
    assert [s.decode() for s in outputs["label_name"].numpy()] == ["positive", "negative"]
    assert outputs["probability"].numpy()[0] > 0.5 > outputs["probability"].numpy()[1]


def test_saved_model_cli_runs_the_serving_signature(tiny_sentiment, tmp_path):
    pushed = push(tiny_sentiment, tmp_path / "models", tmp_path / "out")
    cli = Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run(
        [
            str(cli),
            "run",
            "--dir",
            str(pushed.version_dir),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            f"text={REVIEWS!r}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Result for output key label_name" in result.stdout
    assert "[b'positive' b'negative']" in result.stdout


def test_an_archive_that_fails_verification_is_not_pushed(tiny_sentiment, tmp_path):
    config = ExportConfig(model_name="sentiment", serving_dir=str(tmp_path / "models"))
    inputs, blessing = {"wrong_input_name": tf.constant(REVIEWS)}, write_blessing(tmp_path / "b")
    archive, trained = tiny_sentiment["archive"], tiny_sentiment["train"]
    with pytest.raises(TypeError):
        export.run(config, lambda: archive, inputs, blessing, trained, tmp_path / "out")
    assert not [p for p in (tmp_path / "models" / "sentiment").iterdir() if p.name.isdigit()]


def test_model_name_must_be_a_directory_name():
    with pytest.raises(ConfigError, match="export.model_name='../x'"):
        ExportConfig(model_name="../x")
