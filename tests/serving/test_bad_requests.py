"""The bad-input table of serving/README.md, replayed: every row gets the answer the table gives.

The rows are read from the README itself, so the table and the test cannot drift: each row's
method, path and request are sent, its status must come back, and the ``{"error": ...}`` must hold
the row's words and be the whole message MESSAGES records for it. A good request is answered after
every row, as the README promises. The README shows a request whole where it fits; where it cuts
one short (`` …``), or cannot show it (bytes that are not UTF-8), BODIES gives it, and the README's
text must be how that body begins.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re

import pytest

from serving.server import LocalModelServer
from tests.conftest import REPOSITORY, synthetic_review
from tests.serving.conftest import call

pytestmark = pytest.mark.e2e
README = REPOSITORY / "serving" / "README.md"
REVIEW = synthetic_review(1, random.Random(7))
GENERATE = {"prompt": "ab", "num_tokens": 5, "temperature": 0.0, "top_k": 0, "seed": 1}
CUT = " …"  # how the README ends a request it shows in part


def generate(**changes):
    return {"signature_name": "generate", "inputs": {**GENERATE, **changes}}


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the table: ``| 12 | mistake | `POST /path` request | 400, `words` |``."""

    number: int
    mistake: str
    method: str
    path: str
    request: str
    """What follows the route: ``(empty)``, ``(none)``, a body in backticks, or for the sales
    model ``with `field` = `value``` / ``with `units` rows of N weeks``."""
    status: int
    words: str


ROW = re.compile(
    r"\| (?P<number>\d+) \| (?P<mistake>[^|]+?) \| `(?P<method>[A-Z]+) (?P<path>\S+)` "
    r"(?P<request>.+) \| (?P<status>\d{3}), `(?P<words>.+)` \|"
)


def table_rows() -> list[Row]:
    """The rows under the table's header, in order; a line of the table that is not a row in
    this format fails here, naming it, rather than being skipped."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| # | client mistake | request | answer |") + 2  # header, then | --- |
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        match = ROW.fullmatch(line.replace(r"\|", "¦"))  # a | inside a cell is written \|
        assert match, f"serving/README.md: a bad-input row not in the table's format: {line}"
        cells = {key: value.replace("¦", "|") for key, value in match.groupdict().items()}
        numbers = {key: int(cells[key]) for key in ("number", "status")}
        rows.append(Row(**{**cells, **numbers}))
    return rows


ROWS = table_rows()

# Bodies the README shows cut short, or (invalid UTF-8) cannot show.
BODIES = {
    "invalid UTF-8": b'{"instances": ["\xff"]}',
    "nesting 65 deep": b'{"inputs": ' + b"[" * 65 + b"1" + b"]" * 65 + b"}",
    "nesting 5000 deep": b'{"inputs": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}",
    "both instances and inputs": {"instances": [REVIEW], "inputs": [REVIEW]},
    "ragged instances": {
        "instances": [{"x": [1, 2, 3], "k": 1, "word": "a"}, {"x": [1], "k": 1, "word": "a"}]
    },
    "int64 out of range": {"inputs": {"x": [[1, 2, 3]], "k": [2**70], "word": ["a"]}},
    "signature_name not a string": {"signature_name": 3, "instances": [REVIEW]},
    "unknown signature": {"signature_name": "nope", "instances": [REVIEW]},
    **{
        mistake: {"instances": [REVIEW]}
        for mistake in (
            "unknown model",
            "unknown version",
            "version beyond int64",
            "unknown label",
            "unknown verb",
            "verb in capitals",
        )
    },
    "generate: num_tokens 2^31-1": generate(num_tokens=2**31 - 1),
    "generate: num_tokens 10^7": generate(num_tokens=10**7),
    "generate: negative num_tokens": generate(num_tokens=-1),
    "generate: num_tokens beyond int32": generate(num_tokens=2**40),
    "generate: prompt of 12,000 characters": generate(prompt="ab" * 6000),
    "generate: num_tokens as a string": generate(num_tokens="5"),
    "generate: missing seed": {
        "signature_name": "generate",
        "inputs": {key: value for key, value in GENERATE.items() if key != "seed"},
    },
    "generate: batched scalars": {"signature_name": "generate", "instances": [GENERATE]},
    "generate: row format, fewer keys": {
        "signature_name": "generate",
        "instances": [{"prompt": "ab", "num_tokens": 5}],
    },
    "generate: row format, every key": {"signature_name": "generate", "instances": [GENERATE]},
}


def compact(value) -> str:
    """A JSON value as TF Serving quotes it in an error: no spaces."""
    return json.dumps(value, separators=(",", ":"))


REVIEW_JSON = compact([REVIEW])
PROCESS = "Failed to process element: {} of 'instances' list. Error: INVALID_ARGUMENT: {}"


def verify_finite(kind: str) -> re.Pattern:
    """TensorFlow's words when the graph's finiteness check fails (it numbers its functions)."""
    return re.compile(
        re.escape(
            "Graph execution error:\n\nDetected at node VerifyFinite/CheckNumerics defined at "
            "(most recent call last):\n<stack traces unavailable>\ninput units has NaN or "
            f"infinite values : Tensor had {kind} values\n\t [[{{{{node "
            "VerifyFinite/CheckNumerics}}]] [Op:__inference_signature_wrapper_"
        )
        + r"\d+\]"
    )


ROW_FORMAT_GENERATE = (
    "input prompt has shape [1], but signature generate takes [] (-1: any size). Signature "
    "generate takes one request's scalars, not a batch (the 'instances' row format makes a "
    "batch): send the columnar format, "
    + json.dumps({"signature_name": "generate", "inputs": dict(sorted(GENERATE.items()))})
)
REAL_DATES = "assertion failed: input forecast_start must be real dates written YYYY-MM-DD"
# The whole {"error": ...} of each row (a pattern where TensorFlow numbers its functions), so a
# row's words cannot match by accident inside another message ("x" in "expected").
MESSAGES = {
    "empty body": "JSON Parse error: The document is empty",
    "not JSON": "JSON Parse error: Expecting property name enclosed in double quotes at offset: 1",
    "JSON array, not object": "JSON Value: [1] Is not object",
    "invalid UTF-8": (
        "JSON Parse error: 'utf-8' codec can't decode byte 0xff in position 16: invalid start byte"
    ),
    "nesting 65 deep": "JSON Parse error: nesting depth 66 exceeds the limit of 64",
    "nesting 5000 deep": "JSON Parse error: nesting depth 5001 exceeds the limit of 64",
    "neither instances nor inputs": "Missing 'inputs' or 'instances' key",
    "both instances and inputs": (
        f"JSON Value: {compact(BODIES['both instances and inputs'])[:200]}... Not formatted "
        "correctly expecting only one of 'inputs' or 'instances' keys to exist "
    ),
    "instances not a list": (
        """JSON Value: {"instances":"text"} Excepting 'instances' to be an list/array"""
    ),
    "empty instances": """JSON Value: {"instances":[]} No values in 'instances' array""",
    "number where a string goes": PROCESS.format(
        0, "JSON Value: 1.5 Type: Number is not of expected type: string"
    ),
    "ragged instances": (
        "Failed to process element: 1 key: x of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 3 but got: 1"
    ),
    "missing input": "Missing named input: k in 'inputs' object.",
    "int64 out of range": (
        "JSON Value: 1180591620717411303424 Type: Number is not of expected type: int64"
    ),
    "bad base64": PROCESS.format(0, "Unable to base64 decode"),
    "signature_name not a string": (
        f'JSON Value: {{"signature_name":3,"instances":{REVIEW_JSON}}} not formatted correctly. '
        "'signature_name' key must be a string value."
    ),
    "unknown signature": 'Serving signature name: "nope" not found in signature def',
    "unknown model": "Servable not found for request: Latest(nope)",
    "unknown version": "Servable not found for request: Specific(sentiment, 9)",
    "version beyond int64": "Failed to convert version: 99999999999999999999 to numeric.",
    "unknown label": "Unrecognized servable version label: gold",
    "unknown verb": "Malformed request: POST /v1/models/sentiment:explain",
    "verb in capitals": "Malformed request: POST /v1/models/sentiment:PREDICT",
    "GET on predict": "Malformed request: GET /v1/models/sentiment:predict",
    "DELETE a model": "Malformed request: DELETE /v1/models/sentiment",
    "OPTIONS": "Malformed request: OPTIONS /v1/models/sentiment",
    "no model name": "Missing model name in request.",
    "path outside the API": "Not found: /v2/anything (the API is under /v1/models/)",
    "status of an unknown version": "Could not find version 7 of model sentiment",
    "classify without examples": (
        """JSON Value: {"signature_name":"classify"} When method is classify, key 'examples' """
        "is expected and was not found"
    ),
    "classify with examples not a list": (
        """JSON Value: {"signature_name":"classify","examples":{"text":"a"}} Expecting """
        "'examples' value to be an list/array"
    ),
    "classify on a predict signature": "Expected one or two output Tensors, found 4",
    "regress on a classifier": "Expected one output Tensor.",
    "generate: num_tokens 2^31-1": "assertion failed: num_tokens must be at most 2000",
    "generate: num_tokens 10^7": "assertion failed: num_tokens must be at most 2000",
    "generate: negative num_tokens": "assertion failed: num_tokens must be >= 0.  ",
    "generate: num_tokens beyond int32": (
        "JSON Value: 1099511627776 Type: Number is not of expected type: int32"
    ),
    "generate: prompt of 12,000 characters": (
        "assertion failed: the prompt is longer than generation.max_prompt_tokens=10000 tokens"
    ),
    "generate: num_tokens as a string": (
        'JSON Value: "5" Type: String is not of expected type: int32'
    ),
    "generate: missing seed": "Missing named input: seed in 'inputs' object.",
    "generate: batched scalars": ROW_FORMAT_GENERATE,
    "generate: row format, fewer keys": (
        """Failed to process element: 0 of 'instances' list. JSON object: """
        """{"prompt":"ab","num_tokens":5} must only have keys: """
        "num_tokens,prompt,seed,temperature,top_k; missing: seed,temperature,top_k"
    ),
    "generate: row format, every key": ROW_FORMAT_GENERATE,
    "sales: month 13": REAL_DATES,
    "sales: 29 February of 2023": REAL_DATES,
    "sales: date as dd/mm/yyyy": REAL_DATES,
    "sales: NaN in history": verify_finite("NaN"),
    "sales: Infinity in history": verify_finite("Inf"),
    "sales: history too short": (
        "input units has shape [2, 10], but signature serving_default takes [-1,52] (-1: any size)"
    ),
}


def shown(body) -> str:
    """The body as the README's request column writes it (before cutting it short)."""
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return json.dumps(body)


def request_body(row: Row, exported_models) -> bytes | None:
    """The bytes to send for ``row``: the README's own text where it shows the body whole."""
    if row.request == "(none)":
        return None
    if row.request == "(empty)":
        return b""
    if row.request.startswith("with `"):
        return json.dumps({"inputs": sales_history(row.request, exported_models)}).encode()
    assert row.request.startswith("`") and row.request.endswith("`"), row
    text = row.request[1:-1]
    if row.mistake not in BODIES:
        assert not text.endswith(CUT), f"row {row.number} is cut short: give its body in BODIES"
        return text.encode()
    body = BODIES[row.mistake]
    if text.endswith(CUT):
        assert shown(body).startswith(text.removesuffix(CUT)), f"row {row.number}: {shown(body)}"
    else:
        assert shown(body) == text, f"row {row.number}: {shown(body)}"
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def sales_history(request: str, exported_models) -> dict[str, list]:
    """The shop model's history for two series, with the README's one change made."""
    from tests.serving.test_server import shop_history

    history = shop_history(exported_models, 2)
    if match := re.fullmatch(r"with `(\w+)` rows of (\d+) weeks", request):
        field, weeks = match[1], int(match[2])
        history[field] = [series[:weeks] for series in history[field]]
        return history
    match = re.fullmatch(r"with `(\w+)` = `(.+)`", request)
    assert match, f"a sales row in no known form: {request}"
    field, value = match[1], match[2]
    if field == "forecast_start":
        history[field] = [history[field][0], value]
    else:  # a number in the second series' history
        history[field][1][3] = float(value)
    return history


GOOD_REQUESTS = {
    "sentiment": {"instances": [REVIEW]},
    "lm_char": generate(),
    "toy": {"inputs": {"x": [[1, 2, 3]], "k": [0], "word": ["a"]}},
}


def good_request(model: str, exported_models) -> dict:
    if model == "shop":
        from tests.serving.test_server import shop_history

        return {"inputs": shop_history(exported_models, 2)}
    return GOOD_REQUESTS[model]


@pytest.fixture(scope="module")
def server(exported_models):
    with LocalModelServer(exported_models, port=0) as running:
        yield running


@pytest.mark.parametrize("row", ROWS, ids=[row.mistake for row in ROWS])
def test_bad_request(server, exported_models, row):
    body = request_body(row, exported_models)
    got, answer = call(server.url + row.path, body, method=row.method)
    assert got == row.status, answer
    assert row.words in answer["error"]
    assert row.mistake in MESSAGES, f"row {row.number}: give its whole error in MESSAGES: {answer}"
    message = MESSAGES[row.mistake]
    if isinstance(message, re.Pattern):
        assert message.fullmatch(answer["error"]), answer
    else:
        assert answer["error"] == message
    # The server still answers: the model the row asked (when it serves it) and the sentiment one.
    asked = re.match(r"/v1/models/(\w+)", row.path)
    for model in {"sentiment", *(asked.groups() if asked else ())} & {*GOOD_REQUESTS, "shop"}:
        url = f"{server.url}/v1/models/{model}:predict"
        status, answer = call(url, good_request(model, exported_models))
        assert status == 200, (model, answer)


def test_the_table_is_numbered_in_order_and_every_body_and_message_is_one_of_its_rows():
    assert [row.number for row in ROWS] == list(range(1, len(ROWS) + 1))
    assert len(ROWS) >= 47
    mistakes = [row.mistake for row in ROWS]
    assert len(set(mistakes)) == len(mistakes)
    assert set(BODIES) <= set(mistakes) and set(MESSAGES) <= set(mistakes)
