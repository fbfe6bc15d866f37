"""TF Serving's REST API (``/v1/models/...``) over a :class:`ModelStore`, apart from HTTP itself.

:meth:`RestApi.handle` routes with TF Serving's own URL patterns (``http_rest_api_util.cc``,
case-insensitive): ``GET`` model status and ``/metadata`` (by version or label), ``POST``
``:predict``, ``:classify`` and ``:regress``. Answers are TF Serving's JSON; every failure becomes
``{"error": "..."}`` with the HTTP status of its TF error code, so nothing a client sends escapes
as an exception. As TF Serving's ``--rest_api_timeout_in_ms``, a request not answered within
``timeout_s`` gets ``DEADLINE_EXCEEDED`` (504); its model call is abandoned (TensorFlow cannot stop
a running call), and the exported graphs bound what one call may do.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import unquote

from google.protobuf import json_format
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from serving import classify_regress, json_request, json_response
from serving.deadlines import Deadlines
from serving.metrics import ServingMetrics
from serving.model_store import ModelStore
from serving.status import HTTP_STATUS, ServingError, from_exception, invalid_argument

log = logging.getLogger(__name__)
_VERSION_OR_LABEL = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
PREDICT_PATH = re.compile(
    rf"/v1/models/([^/:]+){_VERSION_OR_LABEL}:(classify|regress|predict)", re.IGNORECASE
)
STATUS_PATH = re.compile(rf"/v1/models(?:/([^/:]+))?{_VERSION_OR_LABEL}(?:/(metadata))?", re.I)
API_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_STATES = get_model_status_pb2.ModelVersionStatus.State
_PRINT_OPTIONS = {"always_print_fields_with_no_presence": True, "indent": 1}
REST_API_TIMEOUT_S = 30.0


class Answer(NamedTuple):
    status: int
    """The HTTP status."""
    body: str
    """TF Serving's JSON answer, or ``{"error": ...}``."""
    model_s: float | None = None
    """Seconds the request's own signature calls took (none with batching or for status calls):
    the HTTP layer sends it as ``Server-Timing: model;dur=<ms>``, so a client can tell the model's
    time from the server's."""


class RestApi:
    def __init__(
        self,
        store: ModelStore,
        metrics: ServingMetrics | None = None,
        timeout_s: float = REST_API_TIMEOUT_S,
    ):
        self.store = store
        self.metrics = metrics
        """Where predict, classify and regress calls are counted and timed."""
        self.timeout_s = timeout_s
        self._deadlines = Deadlines(timeout_s)

    def handle(
        self,
        method: str,
        path: str,
        body: bytes,
        on_timeout: Callable[[Answer], None] | None = None,
    ) -> Answer | None:
        """The answer to one request (``path`` without the query string), worked out on the
        calling thread. With ``on_timeout``, a request still running after ``timeout_s`` gets its
        504 answer through it, from the watchdog thread, and this returns None once the abandoned
        work ends: the caller must then send nothing more."""
        if not API_PATH.fullmatch(path):
            return Answer(404, _error_json(f"Not found: {path} (the API is under /v1/models/)"))
        started = time.perf_counter()
        ticket = None
        if on_timeout is not None:
            ticket = self._deadlines.start(
                lambda: self._time_out(method, path, started, on_timeout)
            )
        code, text, model_s = self._timed_answer(method, path, body)
        if ticket is not None and not ticket.finish():
            return None
        self._observe(method, path, code, started)
        return Answer(HTTP_STATUS.get(code, 500), text, model_s)

    def close(self) -> None:
        self._deadlines.close()

    def _time_out(self, method: str, path: str, started: float, on_timeout) -> None:
        log.warning("%s %s: no answer within %.0f ms", method, path, 1000 * self.timeout_s)
        self._observe(method, path, "DEADLINE_EXCEEDED", started)
        message = f"Request timed out after {1000 * self.timeout_s:.0f} ms"
        on_timeout(Answer(HTTP_STATUS["DEADLINE_EXCEEDED"], _error_json(message)))

    def _observe(self, method: str, path: str, code: str, started: float) -> None:
        inference = PREDICT_PATH.fullmatch(path) if method == "POST" else None
        if self.metrics is not None and inference:
            name, api = unquote(inference[1]), inference[4].lower()
            self.metrics.observe_request(name, api, "REST", code, time.perf_counter() - started)

    def _timed_answer(self, method: str, path: str, body: bytes) -> tuple[str, str, float | None]:
        """``_answer`` and the time its signature calls took on this thread, where measured."""
        if self.metrics is None:
            return *self._answer(method, path, body), None
        self.metrics.take_thread_runtime()  # start from zero on this thread
        code, text = self._answer(method, path, body)
        return code, text, self.metrics.take_thread_runtime() or None

    def _answer(self, method: str, path: str, body: bytes) -> tuple[str, str]:
        """``(TF status code name, JSON body)``."""
        try:
            return "OK", self._dispatch(method, path, body)
        except ServingError as error:
            return error.code, _error_json(error.message)
        except Exception as exception:  # TensorFlow refusing an input, or a bug: answer, stay up
            error = from_exception(exception)
            if error.http_status >= 500:
                log.exception("%s %s failed", method, path)
            return error.code, _error_json(error.message)

    def _dispatch(self, method: str, path: str, body: bytes) -> str:
        malformed = invalid_argument(f"Malformed request: {method} {path}")
        if method == "POST" and (match := PREDICT_PATH.fullmatch(path)):
            name, version, label, verb = match.groups()
            model = _model_spec(name, version, label)
            if verb == "predict":
                return self._predict(*model, body)
            if verb in ("classify", "regress"):
                return self._classify_or_regress(verb, *model, body)
            raise malformed  # TF Serving matches the path case-insensitively, the verb exactly
        if method == "GET" and (match := STATUS_PATH.fullmatch(path)):
            name, version, label, metadata = match.groups()
            if not name:
                raise invalid_argument("Missing model name in request.")
            model = _model_spec(name, version, label)
            return self._metadata(*model) if metadata == "metadata" else self._status(*model)
        raise malformed

    def _predict(self, name: str, version: int | None, label: str | None, body: bytes) -> str:
        document = json_request.parse_json(body)
        signature = json_request.signature_name(document)
        servable = self.store.servable(name, version, label)
        inputs, request_format = json_request.predict_inputs(
            document, servable.input_dtypes(signature), signature
        )
        return json_response.predict_response(servable.run(signature, inputs), request_format)

    def _classify_or_regress(self, verb, name, version, label, body: bytes) -> str:
        document = json_request.parse_json(body)
        signature = json_request.signature_name(document)
        examples = classify_regress.examples_from_json(document)
        servable = self.store.servable(name, version, label)
        if verb == "classify":
            results = classify_regress.classify(servable, signature, examples)
            return json_response.classification_json(results)
        return json_response.regression_json(
            classify_regress.regress(servable, signature, examples)
        )

    def _status(self, name: str, version: int | None, label: str | None) -> str:
        response = model_status(self.store, name, version, label)
        return json_format.MessageToJson(response, **_PRINT_OPTIONS)

    def _metadata(self, name: str, version: int | None, label: str | None) -> str:
        servable = self.store.servable(name, version, label)
        model_spec = model_pb2.ModelSpec(name=name)
        model_spec.version.value = servable.version
        model_spec_json = json_format.MessageToJson(
            model_spec, preserving_proto_field_name=True, **_PRINT_OPTIONS
        )
        # The shape TF Serving writes: it renders the two parts apart and joins them by hand.
        return (
            f'{{\n"model_spec":{model_spec_json},\n"metadata": {{"signature_def": '
            f"{servable.signature_defs_json}}}\n}}\n"
        )


def model_status(
    store: ModelStore, name: str, version: int | None, label: str | None
) -> get_model_status_pb2.GetModelStatusResponse:
    """The ``GetModelStatusResponse`` of a model, or of one of its versions."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state in store.states(name, version, label):
        entry = response.model_version_status.add(version=number, state=_STATES.Value(state.state))
        entry.status.error_code = error_codes_pb2.Code.Value(state.error_code)
        entry.status.error_message = state.error_message
    return response


def _model_spec(name: str, version: str | None, label: str | None):
    number = None
    if version is not None:
        number = int(version)
        if number >= 2**63:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.")
    return unquote(name), number, unquote(label) if label is not None else None


def _error_json(message: str) -> str:
    return json.dumps({"error": message})
