"""One loaded model version (a *servable*, in TF Serving's words): its SavedModel and signatures.

Loading reads the ``serve`` MetaGraphDef of ``saved_model.pb`` (its signature defs are what the
metadata endpoint returns, rendered as TF Serving renders them), loads the SavedModel and replays
``assets.extra/tf_serving_warmup_requests`` when there is one, so a version is announced only once
it has answered. A servable is immutable; the model store swaps whole servables. With batching on,
each servable has its own :class:`~serving.batching.Batcher`, closed when the store unloads it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_log_pb2

from serving import classify_regress
from serving.batching import Batcher, BatchingParameters, batchable_signatures
from serving.metrics import ServingMetrics
from serving.status import ServingError, invalid_argument, not_found

log = logging.getLogger(__name__)
DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses a warmup file with more


@dataclasses.dataclass(frozen=True)
class Servable:
    name: str
    version: int
    path: Path
    module: object
    """What ``tf.saved_model.load`` returned: it owns the signatures' concrete functions."""
    signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]
    signature_defs_json: str
    """The ``SignatureDefMap`` as JSON, for the metadata endpoint."""
    batcher: Batcher | None = None
    """With batching on: the queues that run concurrent requests as one call."""
    metrics: ServingMetrics | None = None
    """Where each signature call's runtime is recorded."""

    def signature(self, name: str) -> meta_graph_pb2.SignatureDef:
        """The signature def called ``name`` (empty: ``serving_default``) that can be run."""
        name = name or DEFAULT_SIGNATURE
        if name not in self.signature_defs or name not in self.module.signatures:
            raise invalid_argument(f'Serving signature name: "{name}" not found in signature def')
        return self.signature_defs[name]

    def input_dtypes(self, signature_name: str) -> dict[str, int]:
        """Input name -> DT_* enum, sorted by name as TF Serving's map iterates them."""
        inputs = self.signature(signature_name).inputs
        return {name: inputs[name].dtype for name in sorted(inputs)}

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Call the signature; shapes are checked first so a mismatch is a clear 400 (and a bad
        request never joins a batch)."""
        name = signature_name or DEFAULT_SIGNATURE
        signature = self.signature(name)
        tensors = {}
        for key, array in inputs.items():
            info = signature.inputs[key]
            expected = tf.TensorShape(info.tensor_shape)
            if not expected.is_compatible_with(np.shape(array)):
                raise invalid_argument(
                    f"input {key} has shape {list(np.shape(array))}, but signature {name} takes "
                    f"{_shape_text(expected)} (-1: any size)"
                    + _scalar_hint(name, signature, inputs, expected, array)
                )
            tensors[key] = tf.constant(array, dtype=tf.as_dtype(info.dtype))
        if self.batcher is not None:
            return self.batcher.run(name, tensors)
        return self.call(name, tensors)

    def call(self, signature_name: str, tensors: Mapping[str, tf.Tensor]) -> dict[str, np.ndarray]:
        """One signature call (one request, or one batch of them), its runtime recorded."""
        started = time.perf_counter()
        outputs = _call(self.module, signature_name, tensors)
        if self.metrics is not None:
            # The API is the signature's method: tensorflow/serving/predict, classify or regress.
            api = self.signature_defs[signature_name].method_name.rsplit("/", 1)[-1]
            self.metrics.observe_runtime(self.name, api, time.perf_counter() - started)
        return outputs

    def close(self) -> None:
        """Stop batching once the queued requests have run; requests still holding it run alone."""
        if self.batcher is not None:
            self.batcher.close()


def load(
    name: str,
    version: int,
    path: Path,
    batching: BatchingParameters | None = None,
    metrics: ServingMetrics | None = None,
) -> Servable:
    """Load and warm up one version directory; raises what its status will report."""
    meta_graph = _serving_meta_graph(path)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in meta_graph.signature_def.items():
        signature_map.signature_def[key].CopyFrom(signature)
    servable = Servable(
        name=name,
        version=version,
        path=path,
        module=tf.saved_model.load(str(path), tags=["serve"]),
        signature_defs=dict(meta_graph.signature_def),
        signature_defs_json=json_format.MessageToJson(
            signature_map,
            always_print_fields_with_no_presence=True,
            preserving_proto_field_name=True,
        ),
    )
    _warm_up(servable)  # unbatched: a warmup request waiting for others to batch with is wasted
    servable = dataclasses.replace(servable, metrics=metrics)  # warmup calls are not traffic
    if batching is None:
        return servable
    batchable = batchable_signatures(servable.signature_defs)
    batcher = Batcher(servable.call, batching, batchable, name=f"{name} {version}")
    return dataclasses.replace(servable, batcher=batcher)


def _call(module, signature_name: str, tensors: Mapping[str, tf.Tensor]) -> dict[str, np.ndarray]:
    try:
        outputs = module.signatures[signature_name](**tensors)
    except (TypeError, ValueError) as error:
        raise invalid_argument(f"signature {signature_name}: {error}") from None
    return {key: value.numpy() for key, value in outputs.items()}


def _serving_meta_graph(path: Path) -> meta_graph_pb2.MetaGraphDef:
    proto = path / "saved_model.pb"
    if not proto.is_file():
        raise not_found(
            "Could not find SavedModel .pb or .pbtxt at supplied export directory path: ", path
        )
    try:
        saved_model = saved_model_pb2.SavedModel.FromString(proto.read_bytes())
    except DecodeError as error:
        raise ServingError("DATA_LOSS", f"Could not parse {proto}: {error}") from None
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph
    raise not_found(f"Could not find meta graph def matching supplied tags: {{ serve }} in {path}")


def _warm_up(servable: Servable) -> None:
    """Replay the recorded predict requests, as TF Serving does before a version is available."""
    path = servable.path / WARMUP_FILE
    if not path.is_file():
        return
    records = list(tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS + 1))
    if len(records) > MAX_WARMUP_RECORDS:
        raise invalid_argument(
            f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
        )
    for record in records:
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = entry.WhichOneof("log_type")
        if kind == "predict_log":
            request = entry.predict_log.request
            inputs = {key: tf.make_ndarray(tensor) for key, tensor in request.inputs.items()}
            servable.run(request.model_spec.signature_name, inputs)
        elif kind in ("classify_log", "regress_log"):
            request = getattr(entry, kind).request
            examples = classify_regress.examples_from_input(request.input)
            method = getattr(classify_regress, kind.removesuffix("_log"))
            method(servable, request.model_spec.signature_name, examples)
        else:
            raise ServingError("UNIMPLEMENTED", f"{path}: warmup of a {kind} is not supported here")
    log.info(
        "%s version %d: replayed %d warmup requests", servable.name, servable.version, len(records)
    )


def _scalar_hint(name: str, signature, inputs: Mapping, expected, array) -> str:
    """For a signature of scalars (``generate``) sent a batch, as the row format always makes
    one: say that it takes one request's values and show the columnar request to send, with the
    request's own values where each input had exactly one."""
    if expected.rank != 0 or np.ndim(array) == 0:
        return ""
    example = {
        key: _json_value(inputs[key]) if key in inputs and np.size(inputs[key]) == 1 else "..."
        for key in sorted(signature.inputs)
    }
    request = json.dumps({"signature_name": name, "inputs": example})
    return (
        f". Signature {name} takes one request's scalars, not a batch (the 'instances' row "
        f"format makes a batch): send the columnar format, {request}"
    )


def _json_value(array) -> object:
    value = np.asarray(array).reshape(()).item()
    if isinstance(value, float):
        return float(f"{value:.7g}")  # a float32 0.8 reads 0.800000011920929 otherwise
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _shape_text(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return "any shape"
    return "[" + ",".join(str(-1 if size is None else size) for size in shape.as_list()) + "]"
