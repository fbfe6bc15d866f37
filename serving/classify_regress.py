"""TF Serving's ``classify`` and ``regress`` methods: tf.Examples in, class scores or values out.

A request lists examples as JSON objects (``{"examples": [{"age": 30, "city": "Oslo"}], "context":
{...}}``); each becomes a serialized ``tf.Example`` (the context's features added) fed to the
signature's single string input ``inputs``. A classification signature answers ``classes`` and/or
``scores`` ([batch, classes]), a regression signature ``outputs`` ([batch] or [batch, 1]). As in
TF Serving with its method-name check off (the default), a signature of that shape qualifies
whatever its method name, and any other is refused with TF Serving's message.
"""

from __future__ import annotations

import numpy as np
from google.protobuf import text_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from serving.json_request import decode_base64, is_base64_object, json_type, value_text
from serving.status import invalid_argument

_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}
_FLOAT32_LARGEST = float(np.finfo(np.float32).max)


def examples_from_json(document: dict) -> list[bytes]:
    """The serialized tf.Examples of a classify/regress request body."""
    context = b""
    if "context" in document:
        context = _example(document["context"]).SerializeToString()
    if "examples" not in document:
        raise _format_error(
            document, "When method is classify, key 'examples' is expected and was not found"
        )
    examples = document["examples"]
    if not isinstance(examples, list):
        raise _format_error(document, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(document, "'examples' value is an empty array")
    # Serialized messages concatenate into their merge: an example's features beat the context's.
    return [context + _example(example).SerializeToString() for example in examples]


def examples_from_input(request_input: input_pb2.Input) -> list[bytes]:
    """The serialized tf.Examples of a recorded (gRPC) request's ``Input``."""
    if request_input.WhichOneof("kind") == "example_list":
        return [example.SerializeToString() for example in request_input.example_list.examples]
    with_context = request_input.example_list_with_context
    context = with_context.context.SerializeToString()
    return [context + example.SerializeToString() for example in with_context.examples]


def classify(servable, signature_name: str, examples: list[bytes]) -> list[list[tuple[str, float]]]:
    """``(label, score)`` of every class, per example; ``""`` or 0 where the signature has none."""
    name, signature = _signature(servable, signature_name)
    outputs = set(signature.outputs)
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(outputs)}")
    if "inputs" not in signature.inputs:
        raise invalid_argument("No classification inputs found in SignatureDef: ", _text(signature))
    if not outputs & {"classes", "scores"}:
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" or '
            f'"scores". Signature was: {_text(signature)}'
        )
    result = servable.run(name, {"inputs": _string_array(examples)})
    classes, scores = result.get("classes"), result.get("scores")
    for tensor, kind, dtypes in ((classes, "classes", "OSU"), (scores, "scores", "f")):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got {list(tensor.shape)}"
            )
        if tensor.dtype.kind not in dtypes:
            expected = "DT_STRING" if kind == "classes" else "DT_FLOAT"
            raise invalid_argument(f"Expected {kind} Tensor of {expected}. Got: {tensor.dtype}")
        if len(tensor) != len(examples):
            raise invalid_argument(
                f"Expected {kind} output batch size of {len(examples)}. Got: {len(tensor)}"
            )
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    count = (classes if classes is not None else scores).shape[1]
    return [
        [
            (
                classes[i, c].decode("utf-8", "replace") if classes is not None else "",
                float(scores[i, c]) if scores is not None else 0.0,
            )
            for c in range(count)
        ]
        for i in range(len(examples))
    ]


def regress(servable, signature_name: str, examples: list[bytes]) -> list[float]:
    """One value per example."""
    name, signature = _signature(servable, signature_name)
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise invalid_argument("No regression inputs found in SignatureDef: ", _text(signature))
    if "outputs" not in signature.outputs:
        raise invalid_argument("No regression outputs found in SignatureDef: ", _text(signature))
    values = servable.run(name, {"inputs": _string_array(examples)})["outputs"]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got ",
            list(values.shape),
        )
    if len(values) != len(examples):
        raise invalid_argument(
            "Input batch size did not match output batch size: ",
            f"{len(examples)} vs. {len(values)}",
        )
    if values.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {values.dtype}")
    return [float(value) for value in values.reshape(-1)]


def _signature(servable, signature_name: str):
    name = signature_name or "serving_default"
    if name not in servable.signature_defs or name not in servable.module.signatures:
        raise invalid_argument("No signature was found with the name: ", name)
    return name, servable.signature_defs[name]


def _example(value) -> example_pb2.Example:
    if not isinstance(value, dict):
        raise invalid_argument("Example must be JSON object but got JSON ", json_type(value))
    example = example_pb2.Example()
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_to_feature(item, name, feature)
        example.features.feature[name].CopyFrom(feature)
    return example


def _add_to_feature(value, name: str, feature: feature_pb2.Feature) -> None:
    if (
        value is None
        or isinstance(value, list)
        or (isinstance(value, dict) and not is_base64_object(value))
    ):
        raise invalid_argument(
            "Feature: ", name, " has element with unexpected JSON type: ", json_type(value)
        )
    if isinstance(value, bool):
        _values(feature, "int64_list", name).append(int(value))
    elif isinstance(value, dict):
        _values(feature, "bytes_list", name).append(decode_base64(value))
    elif isinstance(value, str):
        _values(feature, "bytes_list", name).append(value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, float) or value < -(2**63):
        values = _values(feature, "float_list", name)
        if abs(value) > _FLOAT32_LARGEST and np.isfinite(value):
            raise invalid_argument(
                "Cannot convert JSON value: ", value_text(value), " to float without loss of "
                "precision.",
            )  # fmt: skip
        values.append(value)
    elif value > 2**63 - 1:
        raise invalid_argument("Feature: ", name, " has uint64 element. Only int64 is supported.")
    else:
        _values(feature, "int64_list", name).append(value)


def _values(feature: feature_pb2.Feature, kind: str, name: str):
    """The value list of ``kind``; a feature's elements must all be of one kind."""
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        raise invalid_argument(
            "Unexpected element type in feature: ", name, " expecting type: ", _KIND_NAMES[current]
        )
    return getattr(feature, kind).value


def _string_array(values: list[bytes]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _text(signature) -> str:
    return text_format.MessageToString(signature, as_one_line=True)


def _format_error(document, message: str):
    return invalid_argument("JSON Value: ", value_text(document), " ", message)
