from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.config import model_server_config_pb2

from components.errors import ConfigError
from serving import deployment
from serving.tf_serving_protos import BatchingParameters, MonitoringConfig
from serving.version_labels import refused_labels


def export_versions(models_dir: Path, model_name: str, *versions: int) -> None:
    """Version directories as the export leaves them (a ``saved_model.pb`` is all we look at)."""
    for version in versions:
        (models_dir / model_name / str(version)).mkdir(parents=True)
        (models_dir / model_name / str(version) / "saved_model.pb").write_bytes(b"")


def read_models_config(deployment_dir: Path) -> dict[str, model_server_config_pb2.ModelConfig]:
    config = text_format.Parse(
        (deployment_dir / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    return {entry.name: entry for entry in config.model_config_list.config}


def test_one_version_is_served_as_latest_and_labelled_stable(tmp_path):
    export_versions(tmp_path / "models", "sales", 1)
    deployment.write_deployment(tmp_path / "models")
    sales = read_models_config(tmp_path)["sales"]
    assert (sales.base_path, sales.model_platform) == ("/models/sales", "tensorflow")
    assert sales.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert sales.model_version_policy.latest.num_versions == 1
    assert dict(sales.version_labels) == {"stable": 1}


def test_with_more_versions_the_previous_is_stable_and_the_newest_canary(tmp_path):
    models = tmp_path / "models"
    export_versions(models, "sentiment", 1, 2, 3)
    (models / "sentiment" / ".staging-123").mkdir()
    (models / "sentiment" / "4").mkdir()  # a version still being copied in: no saved_model.pb
    (models / ".staging-9" / "1").mkdir(parents=True)
    (models / "empty").mkdir()
    deployment.write_deployment(models)
    config = read_models_config(tmp_path)
    assert list(config) == ["sentiment"]
    assert list(config["sentiment"].model_version_policy.specific.versions) == [2, 3]
    assert dict(config["sentiment"].version_labels) == {"stable": 2, "canary": 3}


def served_by(entry: model_server_config_pb2.ModelConfig, on_disk: list[int]) -> set[int]:
    """The versions TF Serving loads for ``entry``'s policy (each load succeeding)."""
    policy = entry.model_version_policy
    if policy.WhichOneof("policy_choice") == "specific":
        return set(policy.specific.versions)
    return set(on_disk[-max(policy.latest.num_versions, 1) :])


def test_every_generated_config_is_a_reload_tf_serving_accepts(tmp_path):
    """Ten exports in a row, each followed by one TF Serving poll: every reload passes TF
    Serving's label rule; a label never moves onto a version TF Serving has not loaded."""
    models, current, available = tmp_path / "models", {}, set()
    history = []
    for version in range(1, 11):
        export_versions(models, "sentiment", version)
        deployment.write_deployment(models)
        entry = read_models_config(tmp_path)["sentiment"]
        labels = dict(entry.version_labels)
        assert refused_labels("sentiment", labels, current, available) == {}, version
        current, available = labels, served_by(entry, list(range(1, version + 1)))
        history.append(labels)
        if version == 6:  # `make serving-config` once the new version is available
            deployment.write_deployment(models)
            labels = dict(read_models_config(tmp_path)["sentiment"].version_labels)
            assert refused_labels("sentiment", labels, current, available) == {}
            assert labels == {"stable": 5, "canary": 6}
            current = labels
    assert history[:4] == [
        {"stable": 1},
        {"stable": 1, "canary": 2},
        {"stable": 2},  # canary waits: TF Serving would refuse moving it onto 3, not loaded yet
        {"stable": 3, "canary": 4},  # canary is new again: allowed even before 4 has loaded
    ]
    # What the generator used to write at the third export, TF Serving refuses.
    assert refused_labels("sentiment", {"stable": 2, "canary": 3}, history[1], {1, 2}) == {
        "canary": "Request to assign label to version 3 of model sentiment, which is not "
        "currently available for inference (label 'canary')"
    }


def test_deployment_yaml_overrides_policy_and_labels(tmp_path):
    export_versions(tmp_path / "models", "sentiment", 1, 2, 3)
    export_versions(tmp_path / "models", "lm_char", 1, 2, 3)
    (tmp_path / "deployment.yaml").write_text(
        "sentiment: {policy: specific, versions: [1, 3], labels: {stable: 1, canary: 3}}\n"
        "lm_char: {policy: latest, num_versions: 2}\n"
        "not_exported_yet: {policy: latest}\n"
    )
    deployment.write_deployment(tmp_path / "models")
    config = read_models_config(tmp_path)
    assert list(config["sentiment"].model_version_policy.specific.versions) == [1, 3]
    assert dict(config["sentiment"].version_labels) == {"stable": 1, "canary": 3}
    assert config["lm_char"].model_version_policy.latest.num_versions == 2
    assert dict(config["lm_char"].version_labels) == {"stable": 2, "canary": 3}
    assert "not_exported_yet" not in config


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{policy: latest, labels: {canary: 1}}",
            "model 'sentiment': label 'canary' points at version 1, which its policy does not",
        ),
        (
            "{policy: specific, versions: [2, 3], labels: {stable: 1}}",
            "model 'sentiment': label 'stable' points at version 1",
        ),
        ("{policy: specific, versions: [2, 7]}", r"versions \[7\] are not exported"),
        ("{policy: specific, versions: 3}", "versions must be a list of integers, got 3"),
        ("{policy: newest}", "policy='newest' must be one of"),
        ("{policy: latest, versions: [2]}", r"keys \['versions'\] are not used with policy"),
        ("{label: {stable: 2}}", r"keys \['label'\]"),
        ("{policy: [latest", "deployment.yaml is not valid YAML"),
    ],
)
def test_a_deployment_yaml_tf_serving_would_refuse_is_a_named_error(tmp_path, entry, message):
    export_versions(tmp_path / "models", "sentiment", 1, 2, 3)
    (tmp_path / "deployment.yaml").write_text(f"sentiment: {entry}\n")
    with pytest.raises(ConfigError, match=message):
        deployment.write_deployment(tmp_path / "models")
    assert not (tmp_path / "models.config").exists()


def test_batching_and_monitoring_files_parse_as_tf_serving_messages(tmp_path):
    export_versions(tmp_path / "models", "sentiment", 1)
    deployment.write_deployment(tmp_path / "models")
    batching = text_format.Parse(
        (tmp_path / "batching_parameters.txt").read_text(), BatchingParameters()
    )
    assert batching.max_batch_size.value == 32
    assert batching.batch_timeout_micros.value == 2000
    assert batching.max_enqueued_batches.value == 100
    assert batching.num_batch_threads.value == 4
    monitoring = text_format.Parse((tmp_path / "monitoring.config").read_text(), MonitoringConfig())
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_the_messages_accept_tf_servings_documented_examples_and_reject_typos():
    text_format.Parse(
        "max_batch_size { value: 128 }\nbatch_timeout_micros { value: 0 }\n"
        "max_enqueued_batches { value: 1000000 }\nnum_batch_threads { value: 8 }\n",
        BatchingParameters(),
    )
    text_format.Parse(
        'prometheus_config {\n  enable: true,\n  path: "/monitoring/prometheus/metrics"\n}\n',
        MonitoringConfig(),
    )
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_size: 32", BatchingParameters())
    with pytest.raises(text_format.ParseError):
        text_format.Parse("prometheus_config { enabled: true }", MonitoringConfig())


def test_compose_file_runs_tf_serving_on_the_generated_files(tmp_path):
    export_versions(tmp_path / "models", "sentiment", 1, 2)
    deployment.write_deployment(tmp_path / "models")
    service = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())["services"][
        "tf-serving"
    ]
    assert service["image"] == "${TF_SERVING_IMAGE:-tensorflow/serving:2.20.0}"
    assert service["ports"] == ["127.0.0.1:8500:8500", "127.0.0.1:8501:8501"]
    assert service["volumes"] == ["./models:/models:ro", ".:/config:ro"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in service["command"])
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        assert (tmp_path / Path(flags[flag]).relative_to("/config")).is_file(), flag
    assert flags["enable_batching"] == "true"
    for entry in read_models_config(tmp_path).values():
        assert (tmp_path / "models" / Path(entry.base_path).relative_to("/models")).is_dir()


def test_rewriting_replaces_the_files_and_leaves_no_partial_ones(tmp_path):
    export_versions(tmp_path / "models", "sentiment", 1)
    first = deployment.write_deployment(tmp_path / "models")
    export_versions(tmp_path / "models", "sentiment", 2)
    second = deployment.write_deployment(tmp_path / "models")
    assert first == second
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["models", *(p.name for p in first)]
    )
    assert dict(read_models_config(tmp_path)["sentiment"].version_labels) == {
        "stable": 1,
        "canary": 2,
    }


def test_command_line_writes_beside_the_models_or_where_asked(tmp_path):
    export_versions(tmp_path / "models", "sentiment", 1)
    assert deployment.main(["--models-dir", str(tmp_path / "models")]) == 0
    assert (tmp_path / "models.config").is_file()
    elsewhere = ["--deployment-dir", str(tmp_path / "d")]
    assert deployment.main(["--models-dir", str(tmp_path / "models"), *elsewhere]) == 0
    compose = yaml.safe_load((tmp_path / "d" / "docker-compose.yml").read_text())
    assert compose["services"]["tf-serving"]["volumes"][0] == "../models:/models:ro"


def test_command_line_reports_a_missing_models_dir(tmp_path, capsys):
    assert deployment.main(["--models-dir", str(tmp_path / "no_models")]) == 2
    assert "no_models is not a directory of exported models" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_batching_stays_off_in_compose_when_a_model_takes_scalar_inputs(tmp_path):
    export_versions(tmp_path / "models", "sentiment", 1)
    deployment.write_deployment(tmp_path / "models")
    compose = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    assert "--enable_batching=true" in compose["services"]["tf-serving"]["command"]

    # A generate-like signature: a scalar prompt, as the language model's.
    saved_model = saved_model_pb2.SavedModel()
    signature = saved_model.meta_graphs.add().signature_def["generate"]
    signature.inputs["prompt"].tensor_shape.SetInParent()  # known rank 0: a scalar
    export_versions(tmp_path / "models", "lm_char", 1)
    (tmp_path / "models" / "lm_char" / "1" / "saved_model.pb").write_bytes(
        saved_model.SerializeToString()
    )
    assert deployment.scalar_input_models(tmp_path / "models") == ["lm_char"]
    deployment.write_deployment(tmp_path / "models")
    compose = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    assert not [flag for flag in compose["services"]["tf-serving"]["command"] if "batch" in flag]
