"""The local server against TF Serving's REST API: routes, JSON formats, errors, hot reloading."""

from __future__ import annotations

import base64
import http.client
import json
import random

import numpy as np
import pytest
import tensorflow as tf

from serving import json_response
from serving.json_response import decimal_text
from serving.server import LocalModelServer
from tests.conftest import synthetic_review
from tests.serving.conftest import call, save_toy

POSITIVE, NEGATIVE = (synthetic_review(label, random.Random(7)) for label in (1, 0))


@pytest.fixture(scope="module")
def server(exported_models):
    with LocalModelServer(exported_models, port=0, poll_seconds=0.2) as running:
        yield running


@pytest.fixture
def api(server) -> str:
    return server.url + "/v1/models"


def test_status_of_a_model_a_version_and_a_label(api):
    ok = {"error_code": "OK", "error_message": ""}
    expected = {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]}
    for path in ("sentiment", "sentiment/versions/1", "sentiment/labels/stable"):
        assert call(f"{api}/{path}") == (200, expected)


def test_unknown_models_versions_and_labels(api):
    assert call(f"{api}/nope") == (404, {"error": "Could not find any versions of model nope"})
    assert call(f"{api}/sentiment/versions/7")[0] == 404
    # TF Serving answers an unknown label with INVALID_ARGUMENT, hence 400.
    label = call(f"{api}/sentiment/labels/canary:predict", {"instances": ["a"]})
    assert label == (400, {"error": "Unrecognized servable version label: canary"})
    missing = call(f"{api}/nope:predict", {"instances": ["a"]})
    assert missing == (404, {"error": "Servable not found for request: Latest(nope)"})
    version = call(f"{api}/sentiment/versions/7:predict", {"instances": ["a"]})
    assert version == (404, {"error": "Servable not found for request: Specific(sentiment, 7)"})


def test_metadata_renders_the_signature_defs_as_tf_serving_does(api):
    status, metadata = call(f"{api}/sentiment/labels/stable/metadata")
    assert status == 200
    assert metadata["model_spec"] == {"name": "sentiment", "version": "1", "signature_name": ""}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    text = signature["inputs"]["text"]
    assert text["dtype"] == "DT_STRING"
    assert text["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    outputs = {name: info["dtype"] for name, info in signature["outputs"].items()}
    assert outputs == {
        "probability": "DT_FLOAT",
        "label": "DT_INT64",
        "label_name": "DT_STRING",
        "scores": "DT_FLOAT",
    }
    assert signature["method_name"] == "tensorflow/serving/predict"

    lm = call(f"{api}/lm_char/metadata")[1]["metadata"]["signature_def"]["signature_def"]
    prompt = lm["generate"]["inputs"]["prompt"]
    assert prompt["tensor_shape"] == {"dim": [], "unknown_rank": False}  # a scalar
    assert lm["generate"]["inputs"]["seed"]["dtype"] == "DT_INT64"


def test_row_format_answers_what_the_saved_model_answers(api, exported_models):
    status, answer = call(f"{api}/sentiment:predict", {"instances": [POSITIVE, NEGATIVE]})
    assert status == 200
    first, second = answer["predictions"]
    assert (first["label_name"], first["label"]) == ("positive", 1)
    assert (second["label_name"], second["label"]) == ("negative", 0)
    direct = tf.saved_model.load(str(exported_models / "sentiment" / "1")).signatures[
        "serving_default"
    ](text=tf.constant([POSITIVE, NEGATIVE]))
    expected = direct["probability"].numpy()
    assert [first["probability"], second["probability"]] == pytest.approx(expected, abs=1e-6)


def test_columnar_format_and_base64_strings(api):
    status, answer = call(f"{api}/sentiment:predict", {"inputs": {"text": [POSITIVE, NEGATIVE]}})
    assert status == 200
    assert answer["outputs"]["label_name"] == ["positive", "negative"]
    assert answer["outputs"]["label"] == [1, 0]
    # One input: the bare list is enough; binary strings come as {"b64": ...}.
    encoded = {"b64": base64.b64encode(POSITIVE.encode()).decode()}
    assert call(f"{api}/sentiment:predict", {"inputs": [encoded, NEGATIVE]}) == (200, answer)
    row = call(f"{api}/sentiment:predict", {"instances": [encoded]})[1]["predictions"][0]
    assert row["probability"] == answer["outputs"]["probability"][0]


def test_several_typed_inputs_and_outputs(api):
    instances = [
        {"x": [1, 2, 3.5], "k": 4, "word": "héllo"},
        {"x": [0.5, 0.25, 0.125], "k": -1, "word": {"b64": base64.b64encode(b"\x00ab").decode()}},
    ]
    status, answer = call(f"{api}/toy:predict", {"instances": instances})
    assert status == 200
    assert answer["predictions"] == [
        {"big": True, "shout": "HéLLO", "total": 10.5, "word_bytes": {"b64": "aMOpbGxv"}},
        {"big": False, "shout": "\x00AB", "total": -0.125, "word_bytes": {"b64": "AGFi"}},
    ]
    columnar = {"x": [[1, 2, 3.5]], "k": [4], "word": ["héllo"]}
    status, answer = call(f"{api}/toy:predict", {"inputs": columnar})
    assert (status, answer["outputs"]["total"], answer["outputs"]["big"]) == (200, [10.5], [True])


def test_language_model_signatures(api):
    inputs = {"prompt": "abc", "num_tokens": 6, "temperature": 0.0, "top_k": 0, "seed": 1}
    request = {"signature_name": "generate", "inputs": inputs}
    status, answer = call(f"{api}/lm_char:predict", request)
    assert status == 200
    assert answer["outputs"]["text"].startswith("abc")
    assert len(answer["outputs"]["text"]) == 9
    assert answer["outputs"]["text"] == "abc" + answer["outputs"]["continuation"]
    # Row format batches the scalars to [1]: the signature refuses, as TF Serving's would.
    row_request = {"signature_name": "generate", "instances": [inputs]}
    status, answer = call(f"{api}/lm_char:predict", row_request)
    assert status == 400 and "takes []" in answer["error"]
    status, answer = call(f"{api}/lm_char:predict", {"instances": ["abc", "ab"]})
    assert status == 200
    for prediction in answer["predictions"]:
        assert np.exp(prediction["log_probabilities"]).sum() == pytest.approx(1.0, abs=1e-4)
        assert prediction["next_token_id"] == np.argmax(prediction["log_probabilities"])
    # An error raised inside the graph keeps its TF code: INVALID_ARGUMENT, 400.
    negative = {"signature_name": "generate", "inputs": {**inputs, "num_tokens": -1}}
    status, answer = call(f"{api}/lm_char:predict", negative)
    assert status == 400 and "num_tokens must be >= 0" in answer["error"]


@pytest.mark.parametrize("num_tokens", [2001, 10**7, 2**31 - 1])
def test_the_graph_refuses_more_tokens_than_its_limit_and_the_server_stays_up(api, num_tokens):
    """2**31 - 1 tokens once made the graph reserve that many slots and killed the process."""
    inputs = {"prompt": "ab", "num_tokens": num_tokens, "temperature": 0.0, "top_k": 0, "seed": 1}
    status, answer = call(
        f"{api}/lm_char:predict", {"signature_name": "generate", "inputs": inputs}
    )
    assert status == 400 and "num_tokens must be at most 2000" in answer["error"]
    long_prompt = {**inputs, "num_tokens": 1, "prompt": "ab" * 6000}
    status, answer = call(
        f"{api}/lm_char:predict", {"signature_name": "generate", "inputs": long_prompt}
    )
    assert status == 400 and "longer than generation.max_prompt_tokens=10000" in answer["error"]
    assert call(f"{api}/lm_char")[0] == 200


SHOP_INPUTS = {"units", "promo", "sku", "region", "forecast_start"}


def shop_history(exported_models, count: int) -> dict[str, list]:
    """Columnar raw history for ``count`` series of the ``shop`` model, sized by its export."""
    info = exported_models / "shop" / "1" / "assets.extra" / "forecast_request.json"
    lookback, horizon = (json.loads(info.read_text())[key] for key in ("lookback", "horizon"))
    return {
        "units": [[100.0 + 10 * i + (week % 4) for week in range(lookback)] for i in range(count)],
        "promo": [[float(week % 9 == 0) for week in range(lookback + horizon)]] * count,
        "sku": [f"SKU{i}" for i in range(count)],
        "region": ["NS"[i % 2] for i in range(count)],
        "forecast_start": ["2023-06-05"] * count,
    }


def test_the_sales_model_lists_its_raw_history_inputs(api):
    status, metadata = call(f"{api}/shop/metadata")
    assert status == 200
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert set(signature["inputs"]) == SHOP_INPUTS
    assert signature["inputs"]["units"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["sku"]["dtype"] == "DT_STRING"
    assert set(signature["outputs"]) == {"forecast"}


def test_the_sales_model_forecasts_from_columnar_and_row_requests(api, exported_models):
    history = shop_history(exported_models, 3)
    status, answer = call(f"{api}/shop:predict", {"inputs": history})
    assert status == 200
    forecast = np.array(answer["outputs"])  # one output: TF Serving leaves out its name
    assert forecast.shape == (3, 8) and np.isfinite(forecast).all()
    serve = tf.saved_model.load(str(exported_models / "shop" / "1")).signatures["serving_default"]
    direct = serve(**{name: tf.constant(values) for name, values in history.items()})["forecast"]
    assert forecast == pytest.approx(direct.numpy(), rel=1e-5)

    instances = [{name: values[i] for name, values in history.items()} for i in range(3)]
    status, answer = call(f"{api}/shop:predict", {"instances": instances})
    assert status == 200
    assert np.array(answer["predictions"]) == pytest.approx(forecast, rel=1e-6)
    short = {**history, "units": [row[:10] for row in history["units"]]}
    status, answer = call(f"{api}/shop:predict", {"inputs": short})
    assert status == 400 and "input units has shape [3, 10]" in answer["error"]


BAD_DATE = "assertion failed: input forecast_start must be real dates written YYYY-MM-DD"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("forecast_start", "2012-13-45", BAD_DATE),
        ("forecast_start", "2023-02-29", BAD_DATE),
        ("forecast_start", "12/03/2022", BAD_DATE),
        ("units", float("nan"), "input units has NaN or infinite values"),
        ("units", float("inf"), "input units has NaN or infinite values"),
    ],
)
def test_the_sales_graph_refuses_bad_dates_and_non_finite_history(
    api, exported_models, field, value, message
):
    history = shop_history(exported_models, 2)
    if field == "forecast_start":
        history[field] = [history[field][0], value]
    else:
        history[field][1][3] = value
    body = json.dumps({"inputs": history}).encode()  # NaN and Infinity as TF Serving reads them
    status, answer = call(f"{api}/shop:predict", body)
    assert status == 400 and message in answer["error"]
    leap_day = {**shop_history(exported_models, 1), "forecast_start": ["2024-02-29"]}
    assert call(f"{api}/shop:predict", {"inputs": leap_day})[0] == 200


def test_an_unexpected_failure_is_a_500_and_the_server_stays_up(api, monkeypatch):
    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(json_response, "predict_response", broken)
    request = {"instances": [POSITIVE]}
    assert call(f"{api}/sentiment:predict", request) == (500, {"error": "RuntimeError: boom"})
    monkeypatch.undo()
    assert call(f"{api}/sentiment:predict", request)[0] == 200


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"{instances: [1]}", "JSON Parse error"),
        (b"[1, 2]", "Is not object"),
        (b"{}", "Missing 'inputs' or 'instances' key"),
        (b'{"instances": [], "inputs": []}', "expecting only one of 'inputs' or 'instances'"),
        (b'{"instances": []}', "No values in 'instances' array"),
        (b'{"instances": "x"}', "Excepting 'instances' to be an list/array"),
        (b'{"signature_name": 3, "instances": ["x"]}', "'signature_name' key must be a string"),
        (b'{"signature_name": "nope", "instances": ["x"]}', 'signature name: "nope" not found'),
        (b'{"instances": [{"txt": "x"}]}', "does not have named input: txt"),
        (b'{"inputs": {"txt": ["x"]}}', "Missing named input: text in 'inputs' object."),
        (b'{"instances": [5]}', "JSON Value: 5 Type: Number is not of expected type: string"),
        (b'{"instances": [{"b64": "@@"}]}', "Unable to base64 decode"),
        (b'{"inputs": [["a", "b"], ["c"]]}', "Encountered list at unexpected size: 1"),
        (b'{"inputs": [["a"], ["b"]]}', "input text has shape [2, 1], but signature"),
        (b'{"instances": ["a", ["b"]]}', "Expecting shape [] but got: [1]"),
    ],
)
def test_bad_predict_requests_are_400_with_tf_serving_messages(api, body, message):
    status, answer = call(f"{api}/sentiment:predict", body)
    assert status == 400
    assert message in answer["error"]


TOY_ROW = {"x": [1, 2, 3], "k": 1, "word": "a"}


@pytest.mark.parametrize(
    "request_body, message",
    [
        ({"instances": [{**TOY_ROW, "k": 1.5}]}, "1.5 Type: Number is not of expected type: int64"),
        ({"instances": [TOY_ROW, {**TOY_ROW, "x": [1]}]}, "Expecting tensor size: 3 but got: 1"),
        ({"instances": [{"x": [1, 2, 3], "k": 1}]}, "must only have keys: k,word,x"),
        ({"instances": [[1, 2, 3]]}, "instances is a plain list, but expecting list of objects"),
        ({"inputs": [[1, 2, 3]]}, "inputs is a plain value/list, but expecting an object"),
        ({"inputs": {"x": [[2**24 + 1, 0, 0]], "k": [1], "word": ["a"]}}, "loss of precision"),
        ({"inputs": {"x": [["1", 0, 0]], "k": [1], "word": ["a"]}}, '"1" Type: String is not'),
    ],
)
def test_bad_typed_inputs_are_400(api, request_body, message):
    status, answer = call(f"{api}/toy:predict", request_body)
    assert status == 400
    assert message in answer["error"]


def test_classify_and_regress_where_a_signature_fits_and_tf_serving_errors_elsewhere(api):
    request = {"signature_name": "classify_x", "examples": [{"x": 0.0}, {"x": 2.0}]}
    assert call(f"{api}/toy:classify", request) == (
        200,
        {"results": [[["no", 0.5], ["yes", 0.5]], [["no", 0.119202912], ["yes", 0.880797088]]]},
    )
    examples = [{"x": 1.0}, {"x": 2.0, "offset": 10.0}]
    request = {"signature_name": "regress_x", "context": {"offset": 1.0}, "examples": examples}
    assert call(f"{api}/toy:regress", request) == (200, {"results": [3.0, 14.0]})

    one_review = {"examples": [{"text": "good"}]}
    assert call(f"{api}/sentiment:classify", one_review) == (
        400,
        {"error": "Expected one or two output Tensors, found 4"},
    )
    assert call(f"{api}/sentiment:regress", one_review) == (
        400,
        {"error": "Expected one output Tensor."},
    )
    named = {"signature_name": "predict", **one_review}
    assert call(f"{api}/sentiment/versions/1:classify", named) == (
        400,
        {"error": "No signature was found with the name: predict"},
    )
    status, answer = call(f"{api}/sentiment:classify", {"instances": ["good"]})
    assert status == 400 and "key 'examples' is expected and was not found" in answer["error"]


def test_the_classifier_answers_the_classify_api_with_its_class_names(api):
    request = {"signature_name": "classify", "examples": [{"text": POSITIVE}, {"text": NEGATIVE}]}
    status, answer = call(f"{api}/sentiment:classify", request)
    assert status == 200
    predicted = call(f"{api}/sentiment:predict", {"instances": [POSITIVE, NEGATIVE]})[1]
    for result, prediction in zip(answer["results"], predicted["predictions"], strict=True):
        assert [name for name, _ in result] == ["negative", "positive"]
        assert [score for _, score in result] == pytest.approx(prediction["scores"], abs=1e-6)


def test_routes_as_tf_serving_matches_them(api, server):
    assert call(server.url + "/v1/models") == (400, {"error": "Missing model name in request."})
    assert call(f"{api}/sentiment:predict")[1]["error"].startswith("Malformed request: GET")
    assert call(f"{api}/sentiment", {"instances": ["x"]})[0] == 400  # POST without a verb
    assert call(f"{api}/sentiment", method="DELETE")[0] == 400
    assert call(server.url + "/metrics")[0] == 404
    assert call(server.url + "/V1/Models/sentiment/VERSIONS/1?pretty=1")[0] == 200
    assert call(f"{api}/sentiment:PREDICT", {"instances": ["x"]})[0] == 400  # the verb is exact


def test_bodies_over_the_limit_are_refused_and_the_server_keeps_serving(tmp_path):
    save_toy(tmp_path / "toy" / "1")
    with LocalModelServer(tmp_path, port=0, max_body_bytes=1000) as small:
        url = small.url + "/v1/models/toy:predict"
        body = {"inputs": {"x": [[1.0, 2.0, 3.0]] * 100, "k": [1] * 100, "word": ["a"] * 100}}
        status, answer = call(url, body)
        assert status == 413 and "exceeds the limit of 1,000 bytes" in answer["error"]
        small_body = {"inputs": {"x": [[1.0, 2.0, 3.0]], "k": [1], "word": ["a"]}}
        assert call(url, small_body)[0] == 200
        connection = http.client.HTTPConnection(*small.http.server_address[:2], timeout=30)
        chunks = iter([json.dumps(small_body).encode()[:10], json.dumps(small_body).encode()[10:]])
        connection.request("POST", "/v1/models/toy:predict", body=chunks, encode_chunked=True)
        response = connection.getresponse()
        assert (response.status, json.load(response)["outputs"]["total"]) == (200, [7.0])


def test_floats_are_written_as_tf_serving_writes_them():
    single = [float(np.float32(value)) for value in (0.1, 1.0, 1e-5, 123456789.0, 0.7123456)]
    texts = [decimal_text(value, single_precision=True) for value in single]
    assert texts == ["0.1", "1.0", "1e-05", "123456792.0", "0.7123456"]
    assert decimal_text(float("nan"), single_precision=False) == "NaN"
    assert decimal_text(float("-inf"), single_precision=True) == "-Infinity"
    assert decimal_text(0.1 + 0.2, single_precision=False) == "0.30000000000000004"
