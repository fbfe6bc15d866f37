"""JSON requests to tensors, the way TF Serving's REST API reads them (``util/json_tensor.cc``).

Predict requests come in the row format (``{"instances": [...]}``: one item per batch element, an
object of named inputs per item when the signature has several) or the columnar format
(``{"inputs": ...}``: each input's whole batch at once). Values are checked against the signature's
dtypes (integers for integer inputs, numbers a float holds exactly for float inputs, strings or
``{"b64": ...}`` for string inputs) and lists must be rectangular; the error messages are TF
Serving's. Answers are written by :mod:`serving.json_response`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping

import numpy as np
from tensorflow.core.framework import types_pb2

from serving.json_response import COLUMNAR, ROW, decimal_text
from serving.status import ServingError, invalid_argument

_INT_RANGES = {
    types_pb2.DT_INT8: (-(2**7), 2**7 - 1),
    types_pb2.DT_UINT8: (0, 2**8 - 1),
    types_pb2.DT_INT16: (-(2**15), 2**15 - 1),
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
# The largest integer a float type holds exactly, and its largest finite value.
_FLOAT_LIMITS = {
    types_pb2.DT_FLOAT: (2**24 - 1, float(np.finfo(np.float32).max)),
    types_pb2.DT_DOUBLE: (2**53 - 1, float(np.finfo(np.float64).max)),
}
_NUMPY_TYPES = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_BOOL: np.bool_,
    types_pb2.DT_STRING: object,
    **{dtype: np.dtype(types_pb2.DataType.Name(dtype)[3:].lower()) for dtype in _INT_RANGES},
}


MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a request may have (TensorFlow's tensors stop at rank
254; a request this deep is malformed, and deeper ones cost recursion in every later step)."""
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def parse_json(body: bytes) -> dict:
    """The request object; TF Serving's parse errors. NaN and Infinity are accepted, as there."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    # Depth cannot pass the limit with fewer brackets than that: the common case skips the count.
    brackets = body.count(b"[") + body.count(b"{")
    if brackets > MAX_DEPTH and (depth := nesting_depth(body)) > MAX_DEPTH:
        raise invalid_argument(
            f"JSON Parse error: nesting depth {depth} exceeds the limit of {MAX_DEPTH}"
        )
    try:
        document = json.loads(body)
    except json.JSONDecodeError as error:
        raise invalid_argument(f"JSON Parse error: {error.msg} at offset: {error.pos}") from None
    except (UnicodeDecodeError, RecursionError) as error:
        raise invalid_argument(f"JSON Parse error: {error}") from None
    if not isinstance(document, dict):
        raise invalid_argument("JSON Value: ", value_text(document), " Is not object")
    return document


def nesting_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text, counted on its bytes (strings removed),
    before parsing: a vectorized pass, so it costs little even for a body at the size limit."""
    symbols = np.frombuffer(_STRING.sub(b"", body), dtype=np.uint8)
    brackets = symbols[(symbols == 91) | (symbols == 93) | (symbols == 123) | (symbols == 125)]
    steps = np.where((brackets == 91) | (brackets == 123), 1, -1)  # "[" or "{" opens
    return int(np.cumsum(steps).max(initial=0))


def signature_name(document: dict) -> str:
    """The optional ``signature_name``; empty means ``serving_default``."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument(
            "JSON Value: ",
            value_text(document),
            " not formatted correctly. 'signature_name' key must be a string value.",
        )
    return name


def predict_inputs(
    document: dict, input_dtypes: Mapping[str, int], signature: str
) -> tuple[dict[str, np.ndarray], str]:
    """``(arrays by input name, ROW or COLUMNAR)``; ``input_dtypes``: the signature's DT_* enums."""
    if not input_dtypes:
        raise invalid_argument("Failed to get input map for signature: ", signature or "DEFAULT")
    if "instances" in document:
        if "inputs" in document:
            raise _format_error(
                document,
                "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to "
                "exist ",
            )
        instances = document["instances"]
        if not isinstance(instances, list):
            raise _format_error(document, "Excepting 'instances' to be an list/array")
        if not instances:
            raise _format_error(document, "No values in 'instances' array")
        return _from_instances(instances, input_dtypes), ROW
    if "inputs" in document:
        return _from_inputs(document["inputs"], input_dtypes), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def value_text(value) -> str:
    """A JSON value for an error message, cut short when long."""
    if isinstance(value, float):
        return decimal_text(value, single_precision=False)
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 200 else text[:200] + "..."


def json_type(value) -> str:
    if value is None or isinstance(value, bool):
        return {None: "Null", False: "False", True: "True"}[value]
    kinds = ((dict, "Object"), (list, "Array"), (str, "String"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "Number")


def is_base64_object(value) -> bool:
    """``{"b64": "<base64>"}``: an object with that single string key."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def decode_base64(value) -> bytes:
    if not is_base64_object(value):
        raise invalid_argument(
            "JSON Value: ", value_text(value), " not formatted correctly for base64 data"
        )
    encoded = value["b64"]
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def dtype_text(dtype: int) -> str:
    """TensorFlow's ``DataTypeString``: ``float``, ``int32``, ``string``..."""
    return types_pb2.DataType.Name(dtype)[3:].lower()


def _from_instances(instances: list, input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
    if not isinstance(instances[0], dict) and len(input_dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    named = _is_named_item(instances[0])
    batches: dict[str, _Batch] = {}
    for index, item in enumerate(instances):
        if named != _is_named_item(item):
            expected, got = ("object", "list") if named else ("value/list", "object")
            raise invalid_argument(
                f"Expecting {expected} but got {got} at item {index} of input list"
            )
        if not named:
            name = next(iter(input_dtypes))
            _add_instance(item, name, input_dtypes, batches, f"{index} of")
            continue
        for name, value in item.items():
            _add_instance(value, name, input_dtypes, batches, f"{index} key: {name} of")
        if set(item) != set(input_dtypes):
            # TF Serving's words, then which inputs are missing: the object has fewer keys, and
            # "must only have keys" alone reads as if it had too many.
            missing = ",".join(sorted(set(input_dtypes) - set(item)))
            raise invalid_argument(
                "Failed to process element: ", index, " of 'instances' list. JSON object: ",
                value_text(item), " must only have keys: ", ",".join(sorted(input_dtypes)),
                "; missing: ", missing,
            )  # fmt: skip
    return {name: batch.array(len(instances)) for name, batch in batches.items()}


def _add_instance(value, name, input_dtypes, batches: dict, where: str) -> None:
    try:
        if name not in input_dtypes:
            raise invalid_argument("JSON object: does not have named input: ", name)
        shape, values = _dense_values(value, input_dtypes[name])
        batch = batches.setdefault(name, _Batch(input_dtypes[name], shape, len(values)))
        if len(values) != batch.size:
            raise invalid_argument("Expecting tensor size: ", batch.size, " but got: ", len(values))
        if shape != batch.shape:
            raise invalid_argument(
                "Expecting shape ", _shape_text(batch.shape), " but got: ", _shape_text(shape)
            )
        batch.values.extend(values)
    except ServingError as error:
        raise invalid_argument(
            f"Failed to process element: {where} 'instances' list. Error: {error}"
        ) from None


class _Batch:
    """The values of one named input, gathered item by item across ``instances``."""

    def __init__(self, dtype: int, shape: list[int], size: int):
        self.dtype, self.shape, self.size, self.values = dtype, shape, size, []

    def array(self, count: int) -> np.ndarray:
        return _array(self.values, [count, *self.shape], self.dtype)


def _from_inputs(value, input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or is_base64_object(value):
        if len(input_dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        name, dtype = next(iter(input_dtypes.items()))
        shape, values = _dense_values(value, dtype)
        return {name: _array(values, shape, dtype)}
    arrays = {}
    for name, dtype in input_dtypes.items():
        if name not in value:
            raise invalid_argument("Missing named input: ", name, " in 'inputs' object.")
        shape, values = _dense_values(value[name], dtype)
        arrays[name] = _array(values, shape, dtype)
    return arrays


def _dense_values(value, dtype: int) -> tuple[list[int], list]:
    """The shape implied by the first element at each level, and the values, checked against it."""
    shape, probe = [], value
    while isinstance(probe, list):
        shape.append(len(probe))
        probe = probe[0] if probe else None
    values: list = []
    _fill(value, 0, shape, dtype, values)
    return shape, values


def _fill(value, level: int, shape: list[int], dtype: int, values: list) -> None:
    if not isinstance(value, list):
        if level != len(shape):
            raise invalid_argument(
                "JSON Value: ", value_text(value), " found at incorrect level: ", level + 1,
                " in the JSON DOM. Expected at level: ", len(shape),
            )  # fmt: skip
        values.append(_scalar(value, dtype))
        return
    if level >= len(shape):
        raise invalid_argument(
            "Encountered list at unexpected level: ", level, " expected < ", len(shape)
        )
    if len(value) != shape[level]:
        raise invalid_argument(
            "Encountered list at unexpected size: ", len(value), " at level: ", level,
            " expected size: ", shape[level],
        )  # fmt: skip
    for item in value:
        _fill(item, level + 1, shape, dtype, values)


def _scalar(value, dtype: int):
    if isinstance(value, dict):
        if dtype != types_pb2.DT_STRING:
            raise _type_error(value, dtype)
        return decode_base64(value)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if dtype in _FLOAT_LIMITS:
        if not is_number:
            raise _type_error(value, dtype)
        largest_integer, largest = _FLOAT_LIMITS[dtype]
        exact = abs(value) <= largest_integer if isinstance(value, int) else abs(value) <= largest
        if not (exact or math.isinf(value) or math.isnan(value)):
            raise invalid_argument(
                "Cannot convert JSON value: ", value_text(value), " to ", dtype_text(dtype),
                " without loss of precision.",
            )  # fmt: skip
        return value
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if not (is_number and isinstance(value, int) and low <= value <= high):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8", "surrogatepass")
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    message = f"Conversion of JSON Value: {value_text(value)} to type: {dtype_text(dtype)}"
    raise ServingError("UNIMPLEMENTED", message)


def _array(values: list, shape: list[int], dtype: int) -> np.ndarray:
    if dtype == types_pb2.DT_STRING:
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    return np.array(values, dtype=_NUMPY_TYPES[dtype]).reshape(shape)


def _is_named_item(value) -> bool:
    return isinstance(value, dict) and not is_base64_object(value)


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


def _type_error(value, dtype: int) -> ServingError:
    return invalid_argument(
        "JSON Value: ", value_text(value), " Type: ", json_type(value),
        " is not of expected type: ", dtype_text(dtype),
    )  # fmt: skip


def _format_error(document, message: str) -> ServingError:
    return invalid_argument("JSON Value: ", value_text(document), " ", message)
