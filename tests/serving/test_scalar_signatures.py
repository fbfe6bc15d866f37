"""A signature of scalars (the language model's ``generate``) asked in the row format: the errors
say which inputs are missing, and that it takes one request's values in the columnar format.
A hand-written SavedModel with ``generate``'s inputs stands in for the trained model."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from serving.server import LocalModelServer
from tests.serving.conftest import call


class ScalarGenerator(tf.Module):
    """``generate``'s input signature: every input a scalar."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([], tf.string, name="prompt"),
            tf.TensorSpec([], tf.int32, name="num_tokens"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ]
    )
    def generate(self, prompt, num_tokens, temperature, top_k, seed):
        return {"text": tf.strings.join([prompt, tf.strings.as_string(num_tokens)])}


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> str:
    models = tmp_path_factory.mktemp("models")
    generator = ScalarGenerator()
    tf.saved_model.save(
        generator, str(models / "gen" / "1"), signatures={"generate": generator.generate}
    )
    with LocalModelServer(models, port=0, poll_seconds=0.2, grpc_port=None) as server:
        yield server.url + "/v1/models/gen:predict"


ROW = {"prompt": "ROMEO:", "num_tokens": 50, "temperature": 0.8, "top_k": 0, "seed": 1}


def test_row_format_with_fewer_keys_names_the_missing_inputs(api):
    partial = {"prompt": "ROMEO:", "num_tokens": 50}
    status, answer = call(api, {"signature_name": "generate", "instances": [partial]})
    assert status == 400
    keys = "num_tokens,prompt,seed,temperature,top_k"
    assert answer["error"].endswith(f"must only have keys: {keys}; missing: seed,temperature,top_k")


def test_row_format_with_every_key_shows_the_columnar_request(api):
    status, answer = call(api, {"signature_name": "generate", "instances": [ROW]})
    assert status == 400
    error = answer["error"]
    assert "but signature generate takes []" in error
    assert "Signature generate takes one request's scalars, not a batch" in error
    shown = json.loads(error[error.index('{"signature_name"') :])
    assert shown == {"signature_name": "generate", "inputs": ROW}
    status, answer = call(api, shown)  # the request it shows is answered
    assert (status, answer) == (200, {"outputs": "ROMEO:50"})  # one output: unnamed
