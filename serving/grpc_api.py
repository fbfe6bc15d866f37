"""TF Serving's gRPC API over the same :class:`ModelStore` as the REST API.

``tensorflow.serving.PredictionService`` (``Predict``, ``GetModelMetadata``, ``Classify``,
``Regress``; ``MultiInference`` answers UNIMPLEMENTED) and ``ModelService.GetModelStatus``, with TF
Serving's status codes and messages, so a client built on ``prediction_service_pb2_grpc`` works
unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import classify_regress
from serving.json_request import dtype_text
from serving.metrics import ServingMetrics
from serving.model_store import ModelStore
from serving.rest_api import model_status
from serving.servables import DEFAULT_SIGNATURE
from serving.status import ServingError, from_exception, invalid_argument

log = logging.getLogger(__name__)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, store: ModelStore, metrics: ServingMetrics | None = None):
        self.store = store
        self.metrics = metrics

    def Predict(self, request, context):
        return self._inference("predict", context, self._predict, request)

    def GetModelMetadata(self, request, context):
        return _answer(context, self._metadata, request)

    def Classify(self, request, context):
        return self._inference("classify", context, self._classify, request)

    def Regress(self, request, context):
        return self._inference("regress", context, self._regress, request)

    def _inference(self, api: str, context, handler, request):
        """Answer, counting and timing the call as the REST API does."""
        started = time.perf_counter()

        def record(code: str) -> None:
            if self.metrics is not None:
                seconds = time.perf_counter() - started
                self.metrics.observe_request(request.model_spec.name, api, "GRPC", code, seconds)

        return _answer(context, handler, request, record)

    def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        servable = self.store.servable(*_version(request.model_spec))
        name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if name not in servable.signature_defs or name not in servable.module.signatures:
            raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        signature = servable.signature_defs[name]
        sent, expected = set(request.inputs), set(signature.inputs)
        if sent != expected:
            raise invalid_argument(
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
                f"Missing but required: {{{','.join(sorted(expected - sent))}}}."
            )
        for position, key in enumerate(sorted(sent)):
            got, wanted = request.inputs[key].dtype, signature.inputs[key].dtype
            if got != wanted:
                raise invalid_argument(
                    f"Expects arg[{position}] to be {dtype_text(wanted)} but {dtype_text(got)} "
                    "is provided"
                )
        unknown = [alias for alias in request.output_filter if alias not in signature.outputs]
        if unknown:
            raise invalid_argument(
                f"output tensor alias not found in signature: {unknown[0]} Outputs expected to be "
                f"in the set {{{','.join(sorted(signature.outputs))}}}."
            )
        inputs = {key: _array(key, tensor) for key, tensor in request.inputs.items()}
        outputs = servable.run(name, inputs)
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, request.model_spec.name, servable.version, name)
        for key in request.output_filter or outputs:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    def _metadata(self, request):
        if not request.metadata_field:
            raise invalid_argument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != "signature_def":
                raise invalid_argument(f"Metadata field {field} is not supported")
        servable = self.store.servable(*_version(request.model_spec))
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signatures.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, request.model_spec.name, servable.version, "")
        response.metadata["signature_def"].Pack(signatures)
        return response

    def _classify(self, request):
        servable = self.store.servable(*_version(request.model_spec))
        examples = classify_regress.examples_from_input(request.input)
        results = classify_regress.classify(servable, request.model_spec.signature_name, examples)
        response = classification_pb2.ClassificationResponse()
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        _fill_spec(response.model_spec, request.model_spec.name, servable.version, signature)
        for classes in results:
            classifications = response.result.classifications.add()
            for label, score in classes:
                classifications.classes.add(label=label, score=score)
        return response

    def _regress(self, request):
        servable = self.store.servable(*_version(request.model_spec))
        examples = classify_regress.examples_from_input(request.input)
        values = classify_regress.regress(servable, request.model_spec.signature_name, examples)
        response = regression_pb2.RegressionResponse()
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        _fill_spec(response.model_spec, request.model_spec.name, servable.version, signature)
        for value in values:
            response.result.regressions.add(value=value)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, store: ModelStore):
        self.store = store

    def GetModelStatus(self, request, context):
        return _answer(
            context, lambda r: model_status(self.store, *_version(r.model_spec)), request
        )


def start(
    store: ModelStore,
    address: str,
    max_message_bytes: int,
    metrics: ServingMetrics | None = None,
) -> tuple[grpc.Server, int]:
    """Serve both services on ``address`` (``host:port``, port 0: any); returns the bound port."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(store, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(store), server)
    port = server.add_insecure_port(address)
    server.start()
    return server, port


MAX_TENSOR_ELEMENTS = 2**24
"""Largest input a request may declare: a TensorProto with one value and a huge shape is filled
out to that shape, so the shape, not the message size, says what decoding allocates."""


def _array(key: str, tensor) -> np.ndarray:
    """A request's TensorProto as an array; one that does not decode is the client's error."""
    elements = int(np.prod([max(dim.size, 0) for dim in tensor.tensor_shape.dim], dtype=float))
    if elements > MAX_TENSOR_ELEMENTS:
        raise invalid_argument(
            f"input tensor {key!r} declares {elements:,.0f} elements; at most "
            f"{MAX_TENSOR_ELEMENTS:,} are accepted"
        )
    try:
        return tf.make_ndarray(tensor)
    except (ValueError, TypeError) as error:
        raise invalid_argument(f"input tensor {key!r} cannot be decoded: {error}") from None


def _version(model_spec) -> tuple[str, int | None, str | None]:
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    return model_spec.name, version, model_spec.version_label if choice == "version_label" else None


def _fill_spec(model_spec, name: str, version: int, signature_name: str) -> None:
    model_spec.name = name
    model_spec.version.value = version
    model_spec.signature_name = signature_name


def _answer(
    context: grpc.ServicerContext,
    handler,
    request,
    record: Callable[[str], None] = lambda code: None,
):
    """``handler(request)``, or the failure as a gRPC status; ``record`` gets the status code."""
    try:
        response = handler(request)
    except Exception as exception:  # every failure is a status for the client, never a crash
        error = from_exception(exception)
        if error.http_status >= 500:
            log.exception("gRPC %s failed", type(request).__name__)
        record(error.code)
        context.abort(getattr(grpc.StatusCode, error.code, grpc.StatusCode.UNKNOWN), error.message)
    record("OK")
    return response
