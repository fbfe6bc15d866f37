"""Errors of the local model server, carrying TF Serving's status codes and their HTTP statuses.

TF Serving answers every failed REST call with ``{"error": "<message>"}`` and an HTTP status derived
from the ``tensorflow::error::Code`` of the failure (``model_servers/http_server.cc``); the same
codes go into the ``status.error_code`` of a version that failed to load.
"""

from __future__ import annotations

import re

import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2

HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request the server cannot answer; ``code`` is a TF status code name (``NOT_FOUND``...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def invalid_argument(*parts: object) -> ServingError:
    return ServingError("INVALID_ARGUMENT", "".join(str(part) for part in parts))


def not_found(*parts: object) -> ServingError:
    return ServingError("NOT_FOUND", "".join(str(part) for part in parts))


def from_exception(error: BaseException) -> ServingError:
    """A TensorFlow error keeps its own code (a bad input is INVALID_ARGUMENT); others: UNKNOWN."""
    if isinstance(error, ServingError):
        return error
    if isinstance(error, tf.errors.OpError):
        return ServingError(error_codes_pb2.Code.Name(error.error_code), _op_message(error.message))
    return ServingError("UNKNOWN", f"{type(error).__name__}: {error}")


_ASSERTION = re.compile(r"assertion failed: \[(.*?)\]", re.DOTALL)


def _op_message(message: str) -> str:
    """A failed in-graph check's own words (``assertion failed: [num_tokens must be ...]``) rather
    than the Python stack TensorFlow wraps it in; any other message as it is."""
    found = _ASSERTION.search(message)
    return f"assertion failed: {found.group(1)}" if found else message
