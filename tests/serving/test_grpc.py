"""The gRPC API: TF Serving's PredictionService and ModelService stubs against the local server."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.server import LocalModelServer


@pytest.fixture(scope="module")
def channel(exported_models):
    with LocalModelServer(exported_models, port=0, grpc_port=0) as server:
        assert server.grpc_address is not None
        with grpc.insecure_channel(server.grpc_address) as opened:
            yield opened


@pytest.fixture
def predictions(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def test_predict_answers_tensors_with_the_version_that_answered(predictions):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sentiment"
    request.model_spec.version_label = "stable"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["wonderful brilliant", "awful dull"]))
    request.output_filter.append("label_name")
    response = predictions.Predict(request, timeout=30)
    assert list(response.outputs) == ["label_name"]
    assert tf.make_ndarray(response.outputs["label_name"]).tolist() == [b"positive", b"negative"]
    assert (response.model_spec.version.value, response.model_spec.signature_name) == (
        1,
        "serving_default",
    )


def test_scalar_inputs_of_the_generate_signature(predictions):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "lm_char"
    request.model_spec.signature_name = "generate"
    for key, value, dtype in [
        ("prompt", "abc", tf.string),
        ("num_tokens", 5, tf.int32),
        ("temperature", 0.0, tf.float32),
        ("top_k", 0, tf.int32),
        ("seed", 1, tf.int64),
    ]:
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype))
    text = tf.make_ndarray(predictions.Predict(request, timeout=30).outputs["text"])
    assert text.item().decode().startswith("abc") and len(text.item()) == 8


@pytest.mark.parametrize(
    "model, inputs, code, message",
    [
        ("nope", {"text": ["a"]}, grpc.StatusCode.NOT_FOUND, "Servable not found"),
        ("sentiment", {"txt": ["a"]}, grpc.StatusCode.INVALID_ARGUMENT, "Sent extra: {txt}"),
        ("sentiment", {"text": [1.0]}, grpc.StatusCode.INVALID_ARGUMENT, "to be string but double"),
        ("sentiment", {"text": [["a"]]}, grpc.StatusCode.INVALID_ARGUMENT, "has shape [1, 1]"),
    ],
)
def test_predict_errors_carry_tf_serving_status_codes(predictions, model, inputs, code, message):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(np.array(value)))
    with pytest.raises(grpc.RpcError) as raised:
        predictions.Predict(request, timeout=30)
    assert raised.value.code() == code
    assert message in raised.value.details()


@pytest.mark.parametrize(
    "content, dims, message",
    [
        (b"\x01\x02\x03", [], "cannot be decoded: buffer size must be a multiple of element size"),
        (b"", [10**12], "declares 1,000,000,000,000 elements; at most 16,777,216"),
    ],
)
def test_garbage_or_huge_tensors_are_invalid_arguments(predictions, content, dims, message):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "lm_char", "generate"
    for key, value, dtype in [
        ("prompt", "abc", tf.string),
        ("temperature", 0.0, tf.float32),
        ("top_k", 0, tf.int32),
        ("seed", 1, tf.int64),
    ]:
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype))
    request.inputs["num_tokens"].dtype = tf.int32.as_datatype_enum
    request.inputs["num_tokens"].tensor_content = content
    for size in dims:
        request.inputs["num_tokens"].tensor_shape.dim.add(size=size)
    with pytest.raises(grpc.RpcError) as error:
        predictions.Predict(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_metadata_and_status(channel, predictions):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "lm_char"
    response = predictions.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert {"serving_default", "generate"} <= set(signatures.signature_def)

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "toy"
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ]


def test_classify_and_regress_with_tf_examples(predictions):
    def example(x: float) -> example_pb2.Example:
        result = example_pb2.Example()
        result.features.feature["x"].float_list.value.append(x)
        return result

    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "classify_x"
    request.input.example_list.examples.extend([example(0.0)])
    classes = predictions.Classify(request, timeout=30).result.classifications[0].classes
    assert [(c.label, c.score) for c in classes] == [("no", 0.5), ("yes", 0.5)]

    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "toy", "regress_x"
    context = request.input.example_list_with_context
    context.context.features.feature["offset"].float_list.value.append(1.0)
    context.examples.extend([example(1.0), example(2.0)])
    regressions = predictions.Regress(request, timeout=30).result.regressions
    assert [r.value for r in regressions] == [3.0, 5.0]
