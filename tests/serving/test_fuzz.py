"""Hypothesis-generated requests against the REST API: a client's mistake is never a 5xx, never
a dead or hung server, and a good request is answered after every bad one."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.server import LocalModelServer
from tests.conftest import synthetic_review
from tests.serving.conftest import call

pytestmark = pytest.mark.e2e
GOOD_REVIEW = {"instances": [synthetic_review(1, random.Random(7))]}
MODELS = [
    *("sentiment", "lm_char", "shop", "toy", "nope", "sentiment/versions/1"),
    *("sentiment/versions/99999999999999999999", "toy/labels/stable", "toy/labels/x"),
]
VERBS = ["predict", "classify", "regress", "PREDICT", "explain", ""]
KEYS = ["instances", "inputs", "signature_name", "examples", "context", "text", "x", "b64"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)
# No example database: the tests write nothing into the repository (.hypothesis/).
FUZZ = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture],
}
signature_names = st.sampled_from(["", "serving_default", "generate", "classify", "classify_x"])


@pytest.fixture(scope="module")
def server(exported_models):
    with LocalModelServer(exported_models, port=0, rest_api_timeout_s=20) as running:
        yield running


def answered_as_a_client_error(status: int, answer) -> bool:
    return 200 <= status < 500 and (status < 400 or isinstance(answer.get("error"), str))


@settings(max_examples=50, **FUZZ)
@given(
    model=st.sampled_from(MODELS),
    verb=st.sampled_from(VERBS),
    document=documents,
    signature=signature_names,
)
def test_generated_json_requests_are_answered_without_5xx(server, model, verb, document, signature):
    if signature:
        document = {**document, "signature_name": signature}
    url = f"{server.url}/v1/models/{model}" + (f":{verb}" if verb else "")
    body = json.dumps(document, allow_nan=True).encode()
    status, answer = call(url, body)
    assert answered_as_a_client_error(status, answer), (status, answer)
    assert call(f"{server.url}/v1/models/sentiment:predict", GOOD_REVIEW)[0] == 200


@settings(max_examples=25, **FUZZ)
@given(body=st.binary(max_size=300), model=st.sampled_from(MODELS))
def test_generated_bytes_are_answered_without_5xx(server, body, model):
    status, answer = call(f"{server.url}/v1/models/{model}:predict", body)
    assert answered_as_a_client_error(status, answer), (status, answer)
    assert call(f"{server.url}/v1/models/sentiment:predict", GOOD_REVIEW)[0] == 200
