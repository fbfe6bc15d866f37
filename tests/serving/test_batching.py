"""Server-side batching: fewer signature calls, each caller its own rows, bad requests alone."""

from __future__ import annotations

import dataclasses
import random
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from components.errors import ConfigError
from serving import batching, deployment
from serving.batching import Batcher, BatchingParameters
from serving.server import LocalModelServer
from serving.status import ServingError
from tests.conftest import synthetic_review
from tests.serving.conftest import call, served_version, wait_for

SLOW = {"batch_timeout_micros": 20_000_000}
"""A batch timeout no test reaches: a batch runs when it is full, so a test knows its size."""


class Counting(tf.Module):
    """Counts its calls; refuses a negative ``x`` in the graph, where validation cannot see it."""

    def __init__(self):
        super().__init__()
        self.calls = tf.Variable(0, dtype=tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def predict(self, x):
        self.calls.assign_add(1)
        tf.debugging.assert_non_negative(x, message="x must not be negative")
        return {"double": 2.0 * x, "row_sum": tf.reduce_sum(x, axis=1)}


def save_counting(models_dir: Path, version: int = 1) -> Path:
    module = Counting()
    tf.saved_model.save(module, str(models_dir / "counting" / str(version)), module.predict)
    return models_dir


@contextmanager
def batching_server(models_dir: Path, grpc_port: int | None = None, **parameters):
    settings = BatchingParameters(**parameters)
    with LocalModelServer(
        models_dir, port=0, poll_seconds=0.2, grpc_port=grpc_port, batching_parameters=settings
    ) as server:
        yield server


def calls(server: LocalModelServer) -> int:
    return int(server.store.servable("counting").module.calls.numpy())


def rows_of(request: int) -> list[list[float]]:
    """Distinct rows for each request: 1 to 3 of them, each holding the request's number."""
    return [[float(request), row + 0.5] for row in range(request % 3 + 1)]


def burst(url: str, bodies: list) -> list[tuple[int, dict]]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: call(url, body), bodies))


def test_concurrent_requests_run_in_one_call_and_each_gets_its_own_rows(tmp_path):
    requests = list(range(8))
    rows = sum(len(rows_of(request)) for request in requests)
    with batching_server(save_counting(tmp_path), max_batch_size=rows, **SLOW) as server:
        url = server.url + "/v1/models/counting:predict"
        answers = burst(url, [{"instances": rows_of(request)} for request in requests])
        assert calls(server) == 1
    for request, (status, answer) in zip(requests, answers, strict=True):
        assert status == 200
        x = np.array(rows_of(request))
        assert [row["double"] for row in answer["predictions"]] == (2 * x).tolist()
        assert [row["row_sum"] for row in answer["predictions"]] == x.sum(axis=1).tolist()


def test_a_bad_request_in_a_burst_fails_alone_with_the_unbatched_error(tmp_path):
    models = save_counting(tmp_path)
    negative = {"instances": [[1.0, -1.0]]}  # valid, but the graph refuses it: the batch fails
    wrong_shape = {"instances": [[1.0, 2.0, 3.0]]}  # refused before it could join a batch
    good = [{"instances": [[float(i), 1.0]]} for i in range(3)]
    with (
        LocalModelServer(models, port=0) as unbatched,
        batching_server(models, max_batch_size=4, **SLOW) as server,
    ):
        url = server.url + "/v1/models/counting:predict"
        answers = burst(url, [*good, negative, wrong_shape])
        # One batched call of the four valid-looking requests, then each of them alone.
        assert calls(server) == 1 + 4
        unbatched_url = unbatched.url + "/v1/models/counting:predict"
        expected = [call(unbatched_url, body) for body in (negative, wrong_shape)]
    assert [status for status, _ in answers[:3]] == [200, 200, 200]
    assert [answer["predictions"][0]["row_sum"] for _, answer in answers[:3]] == [1.0, 2.0, 3.0]
    assert _without_op_names(answers[3:]) == _without_op_names(expected)
    assert expected[0][0] == 400 and "x must not be negative" in expected[0][1]["error"]
    assert expected[1][0] == 400 and "has shape [1, 3]" in expected[1][1]["error"]


def test_grpc_requests_are_batched_too(tmp_path):
    with batching_server(save_counting(tmp_path), grpc_port=0, max_batch_size=4, **SLOW) as (
        server
    ):
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def predict(request: int) -> list[float]:
                message = predict_pb2.PredictRequest()
                message.model_spec.name = "counting"
                x = np.array([[float(request), 0.0]], np.float32)
                message.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
                return tf.make_ndarray(stub.Predict(message, timeout=30).outputs["row_sum"])

            with ThreadPoolExecutor(4) as pool:
                sums = list(pool.map(predict, range(4)))
        assert calls(server) == 1
    assert [row.tolist() for row in sums] == [[0.0], [1.0], [2.0], [3.0]]


def test_exported_models_answer_the_same_and_generate_runs_unbatched(exported_models):
    positive, negative = (synthetic_review(label, random.Random(7)) for label in (1, 0))
    bodies = [{"instances": [review]} for review in (positive, negative, "fine", positive[:40])]
    with (
        LocalModelServer(exported_models, port=0) as unbatched,
        batching_server(exported_models, max_batch_size=len(bodies), **SLOW) as server,
    ):
        alone = [call(f"{unbatched.url}/v1/models/sentiment:predict", body) for body in bodies]
        batched = burst(f"{server.url}/v1/models/sentiment:predict", bodies)
        inputs = {"prompt": "abc", "num_tokens": 6, "temperature": 0.0, "top_k": 0, "seed": 1}
        request = {"signature_name": "generate", "inputs": inputs}
        generated = call(f"{server.url}/v1/models/lm_char:predict", request)
        expected = call(f"{unbatched.url}/v1/models/lm_char:predict", request)
    for (status, answer), (_, reference) in zip(batched, alone, strict=True):
        assert status == 200
        (row,), (reference_row,) = answer["predictions"], reference["predictions"]
        assert row["label"] == reference_row["label"]
        assert row["probability"] == pytest.approx(reference_row["probability"], abs=1e-5)
    assert generated == expected and generated[0] == 200


def test_a_full_queue_refuses_as_tf_serving_does():
    started, release = threading.Event(), threading.Event()

    def slow_call(signature_name, inputs):
        started.set()
        release.wait(30)
        return {"y": inputs["x"].numpy() * 2}

    parameters = BatchingParameters(
        max_batch_size=1, batch_timeout_micros=0, max_enqueued_batches=1, num_batch_threads=1
    )
    batcher = Batcher(slow_call, parameters, frozenset({"serving_default"}), name="full queue")
    outcomes: list = []

    def ask(value: float) -> None:
        try:
            outcomes.append(batcher.run("serving_default", {"x": tf.constant([value])}))
        except ServingError as error:
            outcomes.append(error)

    first = threading.Thread(target=ask, args=(1.0,))
    first.start()
    started.wait(30)  # the first request runs; one more fits in the queue, a third does not
    others = [threading.Thread(target=ask, args=(value,)) for value in (2.0, 3.0)]
    for thread in others:
        thread.start()
    wait_for(lambda: outcomes)
    release.set()
    for thread in (first, *others):
        thread.join()
    batcher.close()
    refused = [outcome for outcome in outcomes if isinstance(outcome, ServingError)]
    assert len(refused) == 1 and len(outcomes) == 3
    assert (refused[0].code, refused[0].http_status) == ("UNAVAILABLE", 503)
    assert refused[0].message == (
        "The batch scheduling queue to which this task was submitted is full; currently 1 "
        "batches enqueued and max_enqueued_batches is 1"
    )


def test_a_new_version_with_batching_drops_nothing_and_the_old_batcher_stops(tmp_path):
    models = save_counting(tmp_path)
    with batching_server(models, max_batch_size=8, batch_timeout_micros=2000) as server:
        api = server.url + "/v1/models"
        failures, answered, stop = [], [], threading.Event()

        def keep_asking(client: int) -> None:
            while not stop.is_set():
                status, answer = call(f"{api}/counting:predict", {"instances": rows_of(client)})
                wanted = np.array(rows_of(client)).sum(axis=1).tolist()
                ok = status == 200 and [r["row_sum"] for r in answer["predictions"]] == wanted
                (answered if ok else failures).append(answer)

        clients = [threading.Thread(target=keep_asking, args=(i,)) for i in range(4)]
        for client in clients:
            client.start()
        wait_for(lambda: len(answered) > 10)
        assert _batch_threads("counting 1 ")
        shutil.copytree(models / "counting" / "1", models / "counting" / ".incoming")
        (models / "counting" / ".incoming").rename(models / "counting" / "2")
        wait_for(lambda: served_version(api, "counting") == 2)
        count = len(answered)
        wait_for(lambda: len(answered) > count + 10)
        stop.set()
        for client in clients:
            client.join()
        assert failures == []
        wait_for(lambda: not _batch_threads("counting 1 "), timeout=10)
        assert _batch_threads("counting 2 ")
    wait_for(lambda: not _batch_threads("counting 2 "), timeout=10)


def _without_op_names(answers: list[tuple[int, dict]]) -> list[tuple[int, str]]:
    """Errors to compare; TF names the failing function (``[Op:...]``) anew in each load."""
    return [(status, re.sub(r"\[Op:\w+\]", "", answer["error"])) for status, answer in answers]


def _batch_threads(servable: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"batching {servable}")]


def test_parameters_come_from_the_generated_file_else_the_defaults(tmp_path):
    models = tmp_path / "models"
    assert batching.server_parameters(None, models) == BatchingParameters()
    written = tmp_path / batching.PARAMETERS_FILE
    written.write_text(deployment.batching_parameters_text())
    assert batching.read_parameters(written) == BatchingParameters()
    written.write_text("max_batch_size { value: 8 }\n")
    expected = dataclasses.replace(BatchingParameters(), max_batch_size=8)
    assert batching.server_parameters(None, models) == expected
    other = tmp_path / "other.txt"
    other.write_text("num_batch_threads { value: 0 }")
    with pytest.raises(ConfigError, match="num_batch_threads=0 must be an integer >= 1"):
        batching.server_parameters(other, models)
    other.write_text("max_batch_sise { value: 8 }")
    with pytest.raises(ConfigError, match="other.txt"):
        batching.read_parameters(other)
