"""The bad-input table of serving/README.md, replayed: every case gets the answer the table gives.

Each row is a client mistake (REST routes and bodies, JSON shapes, generate arguments, sales
inputs) with the HTTP status and the words its ``{"error": ...}`` answer contains. After the
table the server still answers good requests: none of them crashed it, hung or got a 5xx.
"""

from __future__ import annotations

import json
import random

import pytest

from serving.server import LocalModelServer
from tests.conftest import synthetic_review
from tests.serving.conftest import call

pytestmark = pytest.mark.e2e
REVIEW = synthetic_review(1, random.Random(7))
GENERATE = {"prompt": "ab", "num_tokens": 5, "temperature": 0.0, "top_k": 0, "seed": 1}
PREDICT = "/v1/models/{}:predict"


def generate(**changes):
    return {"signature_name": "generate", "inputs": {**GENERATE, **changes}}


# (what is wrong, method, path, body (object, or raw bytes), status, words in the error)
CASES = [
    ("empty body", "POST", PREDICT.format("sentiment"), b"", 400, "The document is empty"),
    ("not JSON", "POST", PREDICT.format("sentiment"), b"{instances", 400, "JSON Parse error"),
    ("JSON array, not object", "POST", PREDICT.format("sentiment"), [1], 400, "Is not object"),
    (
        "invalid UTF-8",
        "POST",
        PREDICT.format("sentiment"),
        b'{"instances": ["\xff"]}',
        400,
        "JSON Parse error",
    ),
    (
        "nesting 65 deep",
        "POST",
        PREDICT.format("toy"),
        b'{"inputs": ' + b"[" * 65 + b"1" + b"]" * 65 + b"}",
        400,
        "nesting depth 66 exceeds",
    ),
    (
        "nesting 5000 deep",
        "POST",
        PREDICT.format("toy"),
        b'{"inputs": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}",
        400,
        "exceeds the limit of 64",
    ),
    (
        "neither instances nor inputs",
        "POST",
        PREDICT.format("sentiment"),
        {"x": 1},
        400,
        "Missing 'inputs' or 'instances' key",
    ),
    (
        "both instances and inputs",
        "POST",
        PREDICT.format("sentiment"),
        {"instances": [REVIEW], "inputs": [REVIEW]},
        400,
        "Not formatted correctly expecting only",
    ),
    (
        "instances not a list",
        "POST",
        PREDICT.format("sentiment"),
        {"instances": "text"},
        400,
        "Excepting 'instances' to be an list/array",
    ),
    (
        "empty instances",
        "POST",
        PREDICT.format("sentiment"),
        {"instances": []},
        400,
        "No values in 'instances' array",
    ),
    (
        "number where a string goes",
        "POST",
        PREDICT.format("sentiment"),
        {"instances": [1.5]},
        400,
        "string",
    ),
    (
        "ragged instances",
        "POST",
        PREDICT.format("toy"),
        {"instances": [{"x": [1, 2, 3], "k": 1, "word": "a"}, {"x": [1], "k": 1, "word": "a"}]},
        400,
        "x",
    ),
    (
        "missing input",
        "POST",
        PREDICT.format("toy"),
        {"inputs": {"x": [[1, 2, 3]]}},
        400,
        "Missing named input: k",
    ),
    (
        "int64 out of range",
        "POST",
        PREDICT.format("toy"),
        {"inputs": {"x": [[1, 2, 3]], "k": [2**70], "word": ["a"]}},
        400,
        "is not of expected type: int64",
    ),
    (
        "bad base64",
        "POST",
        PREDICT.format("sentiment"),
        {"instances": [{"b64": "!!"}]},
        400,
        "base64",
    ),
    (
        "signature_name not a string",
        "POST",
        PREDICT.format("sentiment"),
        {"signature_name": 3, "instances": [REVIEW]},
        400,
        "'signature_name' key must be a string",
    ),
    (
        "unknown signature",
        "POST",
        PREDICT.format("sentiment"),
        {"signature_name": "nope", "instances": [REVIEW]},
        400,
        'Serving signature name: "nope" not found',
    ),
    (
        "unknown model",
        "POST",
        PREDICT.format("nope"),
        {"instances": [REVIEW]},
        404,
        "Servable not found",
    ),
    (
        "unknown version",
        "POST",
        "/v1/models/sentiment/versions/9:predict",
        {"instances": [REVIEW]},
        404,
        "Specific(sentiment, 9)",
    ),
    (
        "version beyond int64",
        "POST",
        "/v1/models/sentiment/versions/99999999999999999999:predict",
        {"instances": [REVIEW]},
        400,
        "Failed to convert version",
    ),
    (
        "unknown label",
        "POST",
        "/v1/models/sentiment/labels/gold:predict",
        {"instances": [REVIEW]},
        400,
        "Unrecognized servable version label",
    ),
    (
        "unknown verb",
        "POST",
        "/v1/models/sentiment:explain",
        {"instances": [REVIEW]},
        400,
        "Malformed request",
    ),
    (
        "verb in capitals",
        "POST",
        "/v1/models/sentiment:PREDICT",
        {"instances": [REVIEW]},
        400,
        "Malformed request",
    ),
    ("GET on predict", "GET", PREDICT.format("sentiment"), None, 400, "Malformed request: GET"),
    ("DELETE a model", "DELETE", "/v1/models/sentiment", None, 400, "Malformed request"),
    ("OPTIONS", "OPTIONS", "/v1/models/sentiment", None, 400, "Malformed request: OPTIONS"),
    ("no model name", "GET", "/v1/models", None, 400, "Missing model name"),
    ("path outside the API", "GET", "/v2/anything", None, 404, "Not found"),
    (
        "status of an unknown version",
        "GET",
        "/v1/models/sentiment/versions/7",
        None,
        404,
        "Could not find version 7",
    ),
    (
        "classify without examples",
        "POST",
        "/v1/models/sentiment:classify",
        {"signature_name": "classify"},
        400,
        "key 'examples' is expected",
    ),
    (
        "classify with examples not a list",
        "POST",
        "/v1/models/sentiment:classify",
        {"signature_name": "classify", "examples": {"text": "a"}},
        400,
        "to be an list/array",
    ),
    (
        "classify on a predict signature",
        "POST",
        "/v1/models/sentiment:classify",
        {"examples": [{"text": "a"}]},
        400,
        "Expected one or two output Tensors",
    ),
    (
        "regress on a classifier",
        "POST",
        "/v1/models/sentiment:regress",
        {"signature_name": "classify", "examples": [{"text": "a"}]},
        400,
        "Expected one output",
    ),
    (
        "generate: num_tokens 2^31-1",
        "POST",
        PREDICT.format("lm_char"),
        generate(num_tokens=2**31 - 1),
        400,
        "num_tokens must be at most 2000",
    ),
    (
        "generate: num_tokens 10^7",
        "POST",
        PREDICT.format("lm_char"),
        generate(num_tokens=10**7),
        400,
        "num_tokens must be at most 2000",
    ),
    (
        "generate: negative num_tokens",
        "POST",
        PREDICT.format("lm_char"),
        generate(num_tokens=-1),
        400,
        "num_tokens must be >= 0",
    ),
    (
        "generate: num_tokens beyond int32",
        "POST",
        PREDICT.format("lm_char"),
        generate(num_tokens=2**40),
        400,
        "is not of expected type: int32",
    ),
    (
        "generate: prompt of 12,000 characters",
        "POST",
        PREDICT.format("lm_char"),
        generate(prompt="ab" * 6000),
        400,
        "longer than generation.max_prompt_tokens=10000",
    ),
    (
        "generate: num_tokens as a string",
        "POST",
        PREDICT.format("lm_char"),
        generate(num_tokens="5"),
        400,
        "Type: String is not of expected type: int32",
    ),
    (
        "generate: missing seed",
        "POST",
        PREDICT.format("lm_char"),
        {
            "signature_name": "generate",
            "inputs": {k: v for k, v in GENERATE.items() if k != "seed"},
        },
        400,
        "Missing named input: seed",
    ),
    (
        "generate: batched scalars",
        "POST",
        PREDICT.format("lm_char"),
        {"signature_name": "generate", "instances": [GENERATE]},
        400,
        "takes []",
    ),
]
# The sales cases need the shop model's history shapes: built in the test from its export.
SALES_CASES = [
    ("sales: month 13", "forecast_start", "2012-13-45", "must be real dates written YYYY-MM-DD"),
    ("sales: 29 February of 2023", "forecast_start", "2023-02-29", "must be real dates"),
    ("sales: date as dd/mm/yyyy", "forecast_start", "12/03/2022", "must be real dates"),
    ("sales: NaN in history", "units", float("nan"), "input units has NaN or infinite values"),
    ("sales: Infinity in history", "units", float("inf"), "input units has NaN or infinite"),
    ("sales: history too short", "units", "short", "input units has shape"),
]


@pytest.fixture(scope="module")
def server(exported_models):
    with LocalModelServer(exported_models, port=0) as running:
        yield running


@pytest.mark.parametrize(("case", "method", "path", "body", "status", "words"), CASES,
                         ids=[case[0] for case in CASES])  # fmt: skip
def test_bad_request(server, case, method, path, body, status, words):
    payload = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    got, answer = call(server.url + path, payload, method=method)
    assert (got, words in answer["error"]) == (status, True), answer


@pytest.mark.parametrize(("case", "field", "value", "words"), SALES_CASES,
                         ids=[case[0] for case in SALES_CASES])  # fmt: skip
def test_bad_sales_request(server, exported_models, case, field, value, words):
    from tests.serving.test_server import shop_history

    history = shop_history(exported_models, 2)
    if value == "short":
        history[field] = [row[:10] for row in history[field]]
    elif field == "forecast_start":
        history[field] = [history[field][0], value]
    else:
        history[field][1][3] = value
    got, answer = call(
        server.url + PREDICT.format("shop"), json.dumps({"inputs": history}).encode()
    )
    assert (got, words in answer["error"]) == (400, True), answer


def test_the_server_answers_after_the_whole_table(server):
    """Runs after the cases above (pytest keeps file order): none left the server unable."""
    assert call(server.url + PREDICT.format("sentiment"), {"instances": [REVIEW]})[0] == 200
    assert call(server.url + PREDICT.format("lm_char"), generate())[0] == 200


def test_the_table_has_at_least_forty_cases():
    assert len(CASES) + len(SALES_CASES) >= 40
