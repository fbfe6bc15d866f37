"""The Prometheus endpoint: TF Serving's request and runtime metrics from REST and gRPC traffic."""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import load_generator
from serving.metrics import PROMETHEUS_PATH
from serving.server import LocalModelServer
from tests.serving.conftest import call, save_toy

TOY = {"x": [[1.0, 2.0, 3.0]], "k": [4], "word": ["hi"]}
TOY_ROW = {"x": [1.0, 2.0, 3.0], "k": 4, "word": "hi"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("metrics") / "models"
    save_toy(models / "toy" / "1")
    with LocalModelServer(models, port=0, grpc_port=0) as running:
        yield running


def scrape(server) -> tuple[str, dict]:
    """(Content-Type, {(sample name, sorted labels): value})."""
    with urllib.request.urlopen(server.url + PROMETHEUS_PATH, timeout=30) as response:
        content_type, text = response.headers["Content-Type"], response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return content_type, samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_rest_requests_are_counted_by_status_and_timed_with_the_model_runtime(server):
    api = f"{server.url}/v1/models"
    assert call(f"{api}/toy:predict", {"instances": [TOY_ROW]})[0] == 200
    assert call(f"{api}/toy/versions/1:predict", {"inputs": TOY})[0] == 200
    assert call(f"{api}/toy:predict", {"inputs": {**TOY, "k": ["four"]}})[0] == 400
    assert call(f"{api}/no_such_model:predict", {"inputs": TOY})[0] == 404

    content_type, samples = scrape(server)

    assert content_type.startswith("text/plain")
    count = ":tensorflow:serving:request_count_total"
    assert value(samples, count, model_name="toy", status="OK") == 2
    assert value(samples, count, model_name="toy", status="INVALID_ARGUMENT") == 1
    # A model the server does not have is counted without its name: clients cannot add labels.
    assert value(samples, count, model_name="", status="NOT_FOUND") == 1
    request = {"model_name": "toy", "API": "predict", "entrypoint": "REST"}
    assert value(samples, ":tensorflow:serving:request_latency_count", **request) == 3
    runtime = {"model_name": "toy", "API": "predict", "runtime": "TF2"}
    # The refused request never reached the model; warmup calls are not counted either.
    assert value(samples, ":tensorflow:serving:runtime_latency_count", **runtime) == 2
    runtime_us = value(samples, ":tensorflow:serving:runtime_latency_sum", **runtime)
    request_us = value(samples, ":tensorflow:serving:request_latency_sum", **request)
    assert 0 < runtime_us < request_us


def test_each_predict_answer_says_its_own_model_time_in_a_server_timing_header(server):
    request = urllib.request.Request(
        f"{server.url}/v1/models/toy:predict",
        data=json.dumps({"instances": [TOY_ROW]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        timing = response.headers["Server-Timing"]
    elapsed_ms = 1e3 * (time.perf_counter() - started)
    assert 0 < load_generator._model_ms(timing) < elapsed_ms
    # A status call runs no model: no model time to report.
    with urllib.request.urlopen(f"{server.url}/v1/models/toy", timeout=30) as response:
        assert response.headers["Server-Timing"] is None


def test_grpc_predict_is_counted_under_its_entrypoint(server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "toy"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0, 3.0]]))
    request.inputs["k"].CopyFrom(tf.make_tensor_proto([4], dtype=tf.int64))
    request.inputs["word"].CopyFrom(tf.make_tensor_proto(["hi"]))
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(request, timeout=30)
        request.model_spec.name = "absent"
        with pytest.raises(grpc.RpcError):
            stub.Predict(request, timeout=30)

    samples = scrape(server)[1]

    grpc_predict = {"model_name": "toy", "API": "predict", "entrypoint": "GRPC"}
    assert value(samples, ":tensorflow:serving:request_latency_count", **grpc_predict) == 1
    unknown = {"model_name": "", "API": "predict", "entrypoint": "GRPC"}
    assert value(samples, ":tensorflow:serving:request_latency_count", **unknown) == 1
