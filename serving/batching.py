"""Server-side batching (``--enable-batching``): concurrent requests to a signature run as one call.

TF Serving's ``--enable_batching`` in miniature, with its ``BatchingParameters``. Each servable
version owns a :class:`Batcher`; each signature whose inputs all have a leading dimension of any
size gets, on first use, a queue and ``num_batch_threads`` threads. A thread takes the requests at
the front of the queue whose other dimensions match, up to ``max_batch_size`` rows, waiting at most
``batch_timeout_micros`` after the first arrived, concatenates them along axis 0, calls the
signature once and hands each caller its own rows. Requests are validated before they queue; should
a batched call still fail, each of its requests runs alone, so that only a bad one fails. Requests
that cannot join a batch (inputs without one leading size, more rows than a batch) run directly.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2

from components.errors import ConfigError
from serving import tf_serving_protos
from serving.deployment import BATCHING
from serving.status import ServingError

log = logging.getLogger(__name__)
PARAMETERS_FILE = "batching_parameters.txt"
"""What ``serving/deployment.py`` writes beside the models directory, read by default."""
Call = Callable[[str, Mapping[str, tf.Tensor]], dict[str, np.ndarray]]
"""Runs a signature, by name, on its input tensors: the servable's own unbatched call."""


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """The ``BatchingParameters`` fields the local server uses; defaults: deployment.py's."""

    max_batch_size: int = BATCHING["max_batch_size"][1]
    batch_timeout_micros: int = BATCHING["batch_timeout_micros"][1]
    max_enqueued_batches: int = BATCHING["max_enqueued_batches"][1]
    num_batch_threads: int = BATCHING["num_batch_threads"][1]
    """Threads per signature queue (TF Serving shares them between all queues)."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            smallest = 0 if field.name == "batch_timeout_micros" else 1
            if type(value) is not int or value < smallest:
                raise ConfigError(
                    f"batching {field.name}={value!r} must be an integer >= {smallest}"
                )


def read_parameters(path: Path) -> BatchingParameters:
    """A ``--batching_parameters_file`` (text format); fields it leaves out keep our defaults."""
    try:
        message = text_format.Parse(path.read_text(), tf_serving_protos.BatchingParameters())
    except (OSError, text_format.ParseError) as error:
        raise ConfigError(f"cannot read the batching parameters {path}: {error}") from None
    names = [field.name for field in dataclasses.fields(BatchingParameters)]
    values = {name: getattr(message, name).value for name in names if message.HasField(name)}
    return BatchingParameters(**values)


def server_parameters(path: Path | None, models_dir: Path) -> BatchingParameters:
    """``path``'s parameters, else those of the :data:`PARAMETERS_FILE` beside ``models_dir``."""
    default = Path(models_dir).resolve().parent / PARAMETERS_FILE
    path = path or (default if default.is_file() else None)
    parameters = read_parameters(path) if path else BatchingParameters()
    log.info("batching, %s: %s", f"parameters from {path}" if path else "defaults", parameters)
    return parameters


def batchable_signatures(signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]) -> frozenset:
    """Names of the signatures whose every input has a leading dimension of any size."""

    def batch_dimension(info: meta_graph_pb2.TensorInfo) -> bool:
        shape = info.tensor_shape
        return not shape.unknown_rank and len(shape.dim) > 0 and shape.dim[0].size == -1

    return frozenset(
        name
        for name, signature in signature_defs.items()
        if signature.inputs and all(map(batch_dimension, signature.inputs.values()))
    )


@dataclasses.dataclass
class _Task:
    inputs: Mapping[str, tf.Tensor]
    rows: int
    shapes: tuple
    """Each input's name and dimensions after the first: a batch holds tasks that agree on it."""
    enqueued: float
    result: Future = dataclasses.field(default_factory=Future)


class Batcher:
    """The batch queues of one servable version, one per batchable signature, made on first use."""

    def __init__(self, call: Call, parameters: BatchingParameters, batchable: frozenset, name: str):
        self._call = call
        self._parameters = parameters
        self._batchable = batchable
        self._name = name
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Lock()
        self._closed = False

    def run(self, signature_name: str, inputs: Mapping[str, tf.Tensor]) -> dict[str, np.ndarray]:
        """The signature's outputs for ``inputs``: from a batch when they can join one."""
        task = self._task(inputs)
        queue = self._queue(signature_name) if task is not None else None
        if queue is None or not queue.submit(task):
            return self._call(signature_name, inputs)
        return task.result.result()

    def close(self) -> None:
        """Take no more requests; the queued ones still run, then the threads stop."""
        with self._lock:
            self._closed = True
            queues = list(self._queues.values())
        for queue in queues:
            queue.close()

    def _task(self, inputs: Mapping[str, tf.Tensor]) -> _Task | None:
        sizes = {tensor.shape[0] if tensor.shape.rank else None for tensor in inputs.values()}
        rows = sizes.pop() if len(sizes) == 1 else None
        if rows is None or not 0 < rows <= self._parameters.max_batch_size:
            return None
        shapes = tuple((key, tuple(inputs[key].shape[1:])) for key in sorted(inputs))
        return _Task(inputs, rows, shapes, time.monotonic())

    def _queue(self, signature_name: str) -> _Queue | None:
        if signature_name not in self._batchable:
            return None
        with self._lock:
            if self._closed:
                return None
            if signature_name not in self._queues:
                thread_name = f"batching {self._name} {signature_name}"
                queue = _Queue(signature_name, self._call, self._parameters, thread_name)
                self._queues[signature_name] = queue
            return self._queues[signature_name]


class _Queue:
    """One signature's requests waiting for a batch, and the threads that form and run batches."""

    def __init__(self, signature_name: str, call: Call, parameters: BatchingParameters, name: str):
        self._signature_name = signature_name
        self._call = call
        self._parameters = parameters
        self._tasks: collections.deque[_Task] = collections.deque()
        self._rows = 0
        self._changed = threading.Condition()
        self._forming = threading.Lock()  # one thread forms the next batch while others run theirs
        self._closed = False
        for index in range(parameters.num_batch_threads):
            threading.Thread(target=self._work, name=f"{name} #{index}", daemon=True).start()

    def submit(self, task: _Task) -> bool:
        """Queue ``task``; False once closed. A full queue is TF Serving's UNAVAILABLE (503)."""
        size, limit = self._parameters.max_batch_size, self._parameters.max_enqueued_batches
        with self._changed:
            if self._closed:
                return False
            if math.ceil((self._rows + task.rows) / size) > limit:
                raise ServingError(
                    "UNAVAILABLE",
                    "The batch scheduling queue to which this task was submitted is full; "
                    f"currently {math.ceil(self._rows / size)} batches enqueued and "
                    f"max_enqueued_batches is {limit}",
                )
            self._tasks.append(task)
            self._rows += task.rows
            self._changed.notify()
        return True

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _next_batch(self) -> list[_Task] | None:
        """Full, or as full as it got in the timeout; None once closed and drained."""
        with self._forming, self._changed:
            while not self._tasks:
                if self._closed:
                    return None
                self._changed.wait()
            deadline = self._tasks[0].enqueued + self._parameters.batch_timeout_micros / 1e6
            count, full = self._front()
            while not (full or self._closed) and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
                count, full = self._front()
            batch = [self._tasks.popleft() for _ in range(count)]
            self._rows -= sum(task.rows for task in batch)
            return batch

    def _front(self) -> tuple[int, bool]:
        """How many tasks at the front make the next batch, and whether it can grow no more."""
        first, rows = self._tasks[0], 0
        for count, task in enumerate(self._tasks):
            if task.shapes != first.shapes or rows + task.rows > self._parameters.max_batch_size:
                return count, True
            rows += task.rows
        return len(self._tasks), rows == self._parameters.max_batch_size

    def _run(self, batch: list[_Task]) -> None:
        if len(batch) > 1:
            try:
                inputs = {
                    key: tf.concat([task.inputs[key] for task in batch], axis=0)
                    for key in batch[0].inputs
                }
                outputs = _split(self._call(self._signature_name, inputs), batch)
            except Exception as error:  # what validation cannot see, e.g. a value the graph refuses
                log.warning(
                    "a batch of %d requests to %s failed, running them one by one: %s",
                    len(batch),
                    self._signature_name,
                    error,
                )
            else:
                for task, rows in zip(batch, outputs, strict=True):
                    task.result.set_result(rows)
                return
        for task in batch:
            try:
                task.result.set_result(self._call(self._signature_name, task.inputs))
            except Exception as error:  # the caller's error, raised on its own thread
                task.result.set_exception(error)


def _split(outputs: dict[str, np.ndarray], batch: list[_Task]) -> list[dict[str, np.ndarray]]:
    """Each task's rows of every output."""
    total = sum(task.rows for task in batch)
    for key, value in outputs.items():
        if np.ndim(value) == 0 or len(value) != total:
            raise ValueError(f"output {key} of shape {np.shape(value)} has no row per input row")
    bounds = np.cumsum([0] + [task.rows for task in batch]).tolist()
    return [
        {key: value[start:stop] for key, value in outputs.items()}
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
    ]
