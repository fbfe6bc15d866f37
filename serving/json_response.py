"""Tensors to JSON answers, written the way TF Serving's REST API writes them (``json_tensor.cc``).

A row-format request is answered with ``predictions`` (a list per batch element; objects when the
signature has several outputs, bare values when one), a columnar one with ``outputs``, classify and
regress requests with ``results``. Floats are written as TF Serving writes them, ``0.1`` rather
than the ``0.10000000149011612`` a float32 is as a double; string outputs whose name ends in
``_bytes`` as ``{"b64": ...}``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping

import numpy as np

from serving.status import invalid_argument

ROW, COLUMNAR = "row", "columnar"
"""The request formats; each is answered in kind."""


def predict_response(outputs: Mapping[str, np.ndarray], request_format: str) -> str:
    """The response body: ``{"predictions": ...}`` for ROW requests, ``{"outputs": ...}``."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if request_format == COLUMNAR:
        if len(names) == 1:
            return '{"outputs": ' + _tensor_json(outputs[names[0]], names[0]) + "}"
        fields = (f"{json.dumps(name)}: {_tensor_json(outputs[name], name)}" for name in names)
        return '{"outputs": {' + ", ".join(fields) + "}}"
    batch_size = 0
    for name in names:
        shape = np.shape(outputs[name])
        if not shape:
            raise invalid_argument("Tensor name: ", name, " has no shape information ")
        if shape[0] < 1:
            raise invalid_argument("Tensor name: ", name, " has invalid batch size: ", shape[0])
        if batch_size and shape[0] != batch_size:
            raise invalid_argument(
                "Tensor name: ", name, " has inconsistent batch size: ", shape[0],
                " expecting: ", batch_size,
            )  # fmt: skip
        batch_size = shape[0]
    columns = {name: [_tensor_json(row, name) for row in outputs[name]] for name in names}
    if len(names) == 1:
        rows = columns[names[0]]
    else:
        rows = [
            "{" + ", ".join(f"{json.dumps(name)}: {columns[name][i]}" for name in names) + "}"
            for i in range(batch_size)
        ]
    return '{"predictions": [' + ", ".join(rows) + "]}"


def classification_json(results: list[list[tuple[str, float]]]) -> str:
    """``{"results": [[[label, score], ...] per example]}``."""
    rows = (
        "["
        + ", ".join(f"[{json.dumps(label)}, {_float32_text(score)}]" for label, score in row)
        + "]"
        for row in results
    )
    return '{"results": [' + ", ".join(rows) + "]}"


def regression_json(values: list[float]) -> str:
    """``{"results": [value per example]}``."""
    return '{"results": [' + ", ".join(_float32_text(value) for value in values) + "]}"


def _float32_text(value: float) -> str:
    return decimal_text(value, single_precision=True)


def decimal_text(value: float, single_precision: bool) -> str:
    """A float as TF Serving writes it: 6 significant digits if they round-trip, else all."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    parsed = float(np.float32(text)) if single_precision else float(text)
    if parsed != value:
        text = f"{value:.{9 if single_precision else 17}g}"
    return text if "." in text or "e" in text else text + ".0"


def _tensor_json(array, name: str) -> str:
    array = np.asarray(array)
    write = _writer(array.dtype, name)

    def nested(value) -> str:
        if isinstance(value, list):
            return "[" + ", ".join(nested(item) for item in value) + "]"
        return write(value)

    return nested(array.tolist())


def _writer(dtype: np.dtype, name: str):
    if dtype in (np.float32, np.float16):
        return lambda value: decimal_text(value, single_precision=True)
    if dtype == np.float64:
        return lambda value: decimal_text(value, single_precision=False)
    if dtype == np.bool_:
        return lambda value: "true" if value else "false"
    if dtype.kind in "iu":
        return str
    if dtype.kind in "OSU":
        if name.endswith("_bytes"):  # TF Serving's convention for binary outputs
            return lambda value: json.dumps({"b64": base64.b64encode(value).decode("ascii")})
        return lambda value: json.dumps(_text(value))
    raise invalid_argument(f"Failed to write JSON value for tensor type: {dtype}")


def _text(value) -> str:
    # TF Serving writes the raw bytes; a JSON text must be UTF-8, so invalid bytes become U+FFFD.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
