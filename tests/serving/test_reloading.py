"""Hot reloading: versions that appear, break, vanish or change policy while requests go on."""

from __future__ import annotations

import random
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from serving.server import LocalModelServer
from tests.conftest import synthetic_review
from tests.serving.conftest import call, served_version, wait_for

POSITIVE = synthetic_review(1, random.Random(7))


@pytest.mark.parametrize("delete_old", [False, True], ids=["old kept", "old deleted at once"])
def test_a_new_version_is_hot_loaded_without_a_failed_request(
    models_copy, flipped_sentiment, delete_old
):
    """TF Serving's availability-preserving policy: the old version serves until the new one is
    available, even when its folder is deleted right after the new one is copied in. Version 2
    answers one minus version 1's probability, so each answer names the version that gave it."""
    with LocalModelServer(models_copy, port=0, poll_seconds=0.1) as server:
        api = server.url + "/v1/models"
        failures, answered, stop = [], [], threading.Event()

        def keep_asking():
            while not stop.is_set():
                status, answer = call(f"{api}/sentiment:predict", {"instances": [POSITIVE]})
                (answered if status == 200 else failures).append((status, answer))

        clients = [threading.Thread(target=keep_asking) for _ in range(4)]
        for client in clients:
            client.start()
        wait_for(lambda: len(answered) > 5)
        # As the exporter does: write beside the versions under a hidden name, then rename.
        shutil.copytree(flipped_sentiment, models_copy / "sentiment" / ".incoming")
        (models_copy / "sentiment" / ".incoming").rename(models_copy / "sentiment" / "2")
        if delete_old:
            shutil.rmtree(models_copy / "sentiment" / "1")
        wait_for(lambda: served_version(api, "sentiment") == 2)
        # Requests in flight when the metadata turned may still finish on version 1: one a client.
        switched = len(answered) + len(clients)
        wait_for(lambda: len(answered) > switched + 5)
        stop.set()
        for client in clients:
            client.join()
        assert failures == []
        first = _probability(answered[0][1])
        assert first > 0.5  # version 1 calls the positive review positive; version 2 does not
        probabilities = [_probability(answer) for _, answer in answered]
        old, new = pytest.approx(first, abs=1e-5), pytest.approx(1 - first, abs=1e-5)
        assert all(p in (old, new) for p in probabilities)
        assert probabilities[switched:] == [new] * len(probabilities[switched:])
        versions = call(f"{api}/sentiment")[1]["model_version_status"]
        assert [(v["version"], v["state"]) for v in versions] == [("2", "AVAILABLE"), ("1", "END")]


def _probability(answer: dict) -> float:
    return answer["predictions"][0]["probability"]


def test_a_broken_version_is_reported_and_the_working_one_keeps_serving(models_copy):
    (models_copy / "sentiment" / ".staging-123").mkdir()  # hidden: never a version
    (models_copy / "sentiment" / "notes").mkdir()  # not a number: never a version
    with LocalModelServer(models_copy, port=0, poll_seconds=0.2) as server:
        api = server.url + "/v1/models"
        broken = models_copy / "sentiment" / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a protocol buffer")
        versions = wait_for(_settled(f"{api}/sentiment"))
        assert [(v["version"], v["state"]) for v in versions] == [("2", "END"), ("1", "AVAILABLE")]
        assert versions[0]["status"]["error_code"] == "DATA_LOSS"
        assert "saved_model.pb" in versions[0]["status"]["error_message"]
        assert call(f"{api}/sentiment:predict", {"instances": [POSITIVE]})[0] == 200
        assert served_version(api, "sentiment") == 1

        # Fixing the files retries the load; the fixed version then replaces the old one.
        shutil.rmtree(broken)
        shutil.copytree(models_copy / "sentiment" / "1", broken)
        wait_for(lambda: served_version(api, "sentiment") == 2)
        status = call(f"{api}/sentiment/versions/2")[1]["model_version_status"][0]
        assert status["status"] == {"error_code": "OK", "error_message": ""}


def test_an_empty_version_directory_is_not_found(models_copy):
    with LocalModelServer(models_copy, port=0, poll_seconds=0.2) as server:
        (models_copy / "toy" / "2").mkdir()
        versions = wait_for(_settled(server.url + "/v1/models/toy", count=2))
        status = versions[0]
        assert (status["state"], status["status"]["error_code"]) == ("END", "NOT_FOUND")
        assert call(server.url + "/v1/models/toy/metadata")[1]["model_spec"]["version"] == "1"


def _settled(url: str, count: int = 2):
    """A condition: the model lists ``count`` versions, none of them loading."""

    def versions():
        listed = call(url)[1]["model_version_status"]
        return len(listed) == count and all(v["state"] != "LOADING" for v in listed) and listed

    return versions


def test_a_removed_version_is_unloaded_while_a_held_one_finishes(models_copy):
    with LocalModelServer(models_copy, port=0, poll_seconds=0.2) as server:
        held = server.store.servable("toy")  # what a request in flight holds
        shutil.rmtree(models_copy / "toy" / "1")
        api = server.url + "/v1/models/toy"
        wait_for(lambda: call(api)[1]["model_version_status"][0]["state"] == "END")
        assert call(api + ":predict", {"inputs": {"x": [[1, 2, 3]], "k": [0], "word": ["a"]}}) == (
            404,
            {"error": "Servable not found for request: Latest(toy)"},
        )
        inputs = {"x": np.ones((1, 3), np.float32), "k": np.zeros(1, np.int64)}
        outputs = held.run("", {**inputs, "word": np.array([b"a"], dtype=object)})
        assert outputs["total"].tolist() == [3.0]


def test_models_config_sets_the_version_policy_and_labels(models_copy, flipped_sentiment, tmp_path):
    """Versions 1 and 3 answer alike and version 2 the opposite, so a prediction through a label
    shows which version the label reached."""
    shutil.copytree(flipped_sentiment, models_copy / "sentiment" / "2")
    shutil.copytree(models_copy / "sentiment" / "1", models_copy / "sentiment" / "3")
    config = tmp_path / "models.config"
    config.write_text(_model_config(versions=(1, 2), stable=1, canary=2))
    with LocalModelServer(models_copy, port=0, config_file=config, poll_seconds=0.2) as server:
        api = server.url + "/v1/models"
        versions = call(f"{api}/sentiment")[1]["model_version_status"]
        assert [(v["version"], v["state"]) for v in versions] == [
            ("2", "AVAILABLE"),
            ("1", "AVAILABLE"),
        ]
        assert served_version(api, "sentiment") == 2  # no version, no label: the latest served
        assert call(f"{api}/sentiment/labels/stable/metadata")[1]["model_spec"]["version"] == "1"
        assert call(f"{api}/sentiment/labels/canary/metadata")[1]["model_spec"]["version"] == "2"
        assert call(f"{api}/sentiment/versions/3/metadata")[0] == 404  # not in the policy
        stable = _predicted(f"{api}/sentiment/labels/stable")
        assert stable > 0.5
        assert _predicted(f"{api}/sentiment/labels/canary") == pytest.approx(1 - stable, abs=1e-5)
        assert _predicted(f"{api}/sentiment") == pytest.approx(1 - stable, abs=1e-5)
        # Other models keep the defaults: their latest version, labelled stable.
        assert call(f"{api}/toy/labels/stable/metadata")[0] == 200

        config.write_text("model_config_list { config { nme: 'typo' } }")
        server.store.poll()  # a config that does not parse is logged; the previous one stays
        assert call(f"{api}/sentiment/labels/canary/metadata")[1]["model_spec"]["version"] == "2"

        # As TF Serving: moving canary onto version 3, not loaded, fails the whole reload.
        config.write_text(_model_config(versions=(2, 3), stable=2, canary=3))
        server.store.poll()
        assert call(f"{api}/sentiment/versions/3/metadata")[0] == 404
        assert call(f"{api}/sentiment/labels/stable/metadata")[1]["model_spec"]["version"] == "1"
        # In two steps, as serving/deployment.py writes them: load 3, then label it.
        config.write_text(_model_config(versions=(2, 3), stable=2))
        wait_for(lambda: served_version(api, "sentiment") == 3)
        config.write_text(_model_config(versions=(2, 3), stable=2, canary=3))
        canary = f"{api}/sentiment/labels/canary/metadata"
        wait_for(lambda: call(canary)[1].get("model_spec", {}).get("version") == "3")
        assert _predicted(f"{api}/sentiment/labels/canary") == pytest.approx(stable, abs=1e-5)
        assert _predicted(f"{api}/sentiment/labels/stable") == pytest.approx(1 - stable, abs=1e-5)
        version_1 = f"{api}/sentiment/versions/1"
        wait_for(lambda: call(version_1)[1]["model_version_status"][0]["state"] == "END")


def _predicted(model_url: str) -> float:
    """The probability the model (version or label) at ``model_url`` gives ``POSITIVE``."""
    status, answer = call(model_url + ":predict", {"instances": [POSITIVE]})
    assert status == 200, answer
    return _probability(answer)


def _model_config(versions: tuple[int, ...], stable: int, canary: int | None = None) -> str:
    specific = " ".join(f"versions: {v}" for v in versions)
    labels = f"version_labels {{ key: 'stable' value: {stable} }} "
    if canary is not None:
        labels += f"version_labels {{ key: 'canary' value: {canary} }} "
    return (
        "model_config_list { config { name: 'sentiment' base_path: '/models/sentiment' "
        f"model_platform: 'tensorflow' model_version_policy {{ specific {{ {specific} }} }} "
        f"{labels}}} }}"
    )


def test_warmup_requests_are_replayed_and_a_failing_one_fails_the_load(models_copy):
    from tensorflow_serving.apis import prediction_log_pb2

    def write_warmup(version: Path, rows: int, k_values: list[int]) -> None:
        log = prediction_log_pb2.PredictionLog()
        request = log.predict_log.request
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones((rows, 3), np.float32)))
        request.inputs["k"].CopyFrom(tf.make_tensor_proto(np.array(k_values, np.int64)))
        request.inputs["word"].CopyFrom(tf.make_tensor_proto([b"a"] * rows))
        (version / "assets.extra").mkdir(exist_ok=True)
        warmup_file = version / "assets.extra" / "tf_serving_warmup_requests"
        with tf.io.TFRecordWriter(str(warmup_file)) as records:
            records.write(log.SerializeToString())

    shutil.copytree(models_copy / "toy" / "1", models_copy / "toy" / "2")
    shutil.copytree(models_copy / "toy" / "1", models_copy / "toy" / "3")
    write_warmup(models_copy / "toy" / "2", 1, [1])
    write_warmup(models_copy / "toy" / "3", 3, [1, 2])  # 3 rows of x, 2 of k: the call fails
    config = models_copy.parent / "models.config"
    config.write_text(
        "model_config_list { config { name: 'toy' model_version_policy { all {} } } }"
    )
    with LocalModelServer(models_copy, port=0, config_file=config) as server:
        versions = call(server.url + "/v1/models/toy")[1]["model_version_status"]
        states = [(v["version"], v["state"], v["status"]["error_code"]) for v in versions]
        assert states == [
            ("3", "END", "INVALID_ARGUMENT"),
            ("2", "AVAILABLE", "OK"),
            ("1", "AVAILABLE", "OK"),
        ]
