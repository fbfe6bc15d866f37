"""TF Serving's batching and monitoring config messages, for writing and checking their text files.

``tensorflow-serving-api`` ships the model server config protos but not ``BatchingParameters``
(``servables/tensorflow/session_bundle_config.proto``) nor ``MonitoringConfig``
(``config/monitoring_config.proto``). Where the installed package has them they are used as they
are; otherwise this module declares the fields we write, with the upstream names, numbers and types,
in a private descriptor pool, so ``text_format`` still rejects a misspelt or mistyped field.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_FIELD = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow.serving"


def _declared_messages() -> tuple[type, type]:
    """``(BatchingParameters, MonitoringConfig)`` built from the upstream field declarations."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.AddSerializedFile(wrappers.SerializeToString())

    file = descriptor_pb2.FileDescriptorProto(
        name="recurrent_pipelines/tf_serving_configs.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    batching = file.message_type.add(name="BatchingParameters")
    int64_fields = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches")
    for number, name in enumerate((*int64_fields, "num_batch_threads"), start=1):
        _add_field(batching, name, number, _FIELD.TYPE_MESSAGE, ".google.protobuf.Int64Value")
    prometheus = file.message_type.add(name="PrometheusConfig")
    _add_field(prometheus, "enable", 1, _FIELD.TYPE_BOOL)
    _add_field(prometheus, "path", 2, _FIELD.TYPE_STRING)
    monitoring = file.message_type.add(name="MonitoringConfig")
    _add_field(
        monitoring, "prometheus_config", 1, _FIELD.TYPE_MESSAGE, f".{_PACKAGE}.PrometheusConfig"
    )
    pool.AddSerializedFile(file.SerializeToString())
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in ("BatchingParameters", "MonitoringConfig")
    )


def _add_field(message, name: str, number: int, kind: int, type_name: str | None = None) -> None:
    field = message.field.add(name=name, number=number, type=kind, label=_FIELD.LABEL_OPTIONAL)
    if type_name:  # set only for message fields: descriptor.proto treats "" as set too
        field.type_name = type_name


try:
    from tensorflow_serving.config.monitoring_config_pb2 import MonitoringConfig
    from tensorflow_serving.servables.tensorflow.session_bundle_config_pb2 import (
        BatchingParameters,
    )
except ImportError:
    BatchingParameters, MonitoringConfig = _declared_messages()
