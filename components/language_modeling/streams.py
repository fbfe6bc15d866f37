"""Batching a token stream for language-model training.

``stateful_windows`` is the classic PTB reader (Zaremba et al. 2014): the stream is cut into
``batch_size`` contiguous parallel streams and read in windows of ``num_steps``, so row ``r`` of
window ``i + 1`` continues exactly where row ``r`` of window ``i`` stopped and a stateful model can
carry its hidden state across windows. ``random_windows`` is the stateless alternative.

On several workers (``WorkerStreams``) each takes a block of consecutive rows of every window:
worker ``w`` of ``N`` rows ``w * B / N`` to ``(w + 1) * B / N - 1``, its own contiguous streams,
so its replicas carry their state as one process does, and the workers' blocks together are the
one-process window.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from components.errors import ConfigError, DataError
from components.shards import WorkerBatches


@dataclasses.dataclass
class StreamWindowConfig:
    num_steps: int = 20
    """Tokens per window: how far back gradients flow (truncated BPTT)."""
    stateful: bool = True
    """Carry the state across windows of a continuous stream; false trains on random windows."""


def stateful_windows(ids: np.ndarray, batch_size: int, num_steps: int) -> tf.data.Dataset:
    """Windows ``(inputs, targets)`` of shape (batch_size, num_steps), targets shifted by one."""
    row_length = len(ids) // batch_size
    windows = (row_length - 1) // num_steps
    if windows < 1:
        raise DataError(
            f"a stream of {len(ids)} tokens is too short for batch_size={batch_size} and "
            f"num_steps={num_steps}; it needs at least {batch_size * (num_steps + 1)} tokens"
        )
    rows = ids[: batch_size * row_length].reshape(batch_size, row_length)
    starts = np.arange(windows) * num_steps
    inputs = np.stack([rows[:, s : s + num_steps] for s in starts])
    targets = np.stack([rows[:, s + 1 : s + num_steps + 1] for s in starts])
    return tf.data.Dataset.from_tensor_slices((inputs, targets))


def random_windows(ids: np.ndarray, batch_size: int, num_steps: int, seed: int) -> tf.data.Dataset:
    """As many windows as the stream holds, at seeded random offsets, reshuffled every epoch."""
    count = (len(ids) - 1) // num_steps
    if count < batch_size:
        raise DataError(
            f"a stream of {len(ids)} tokens holds fewer than batch_size={batch_size} windows "
            f"of num_steps={num_steps}"
        )
    stream = tf.constant(ids)
    offsets = tf.data.Dataset.random(seed=seed).map(lambda r: r % (len(ids) - num_steps - 1))
    windows = offsets.take(count).map(lambda start: stream[start : start + num_steps + 1])
    return windows.map(lambda w: (w[:-1], w[1:])).batch(batch_size, drop_remainder=True)


def window_count(tokens: int, batch_size: int, num_steps: int, stateful: bool) -> int:
    """Batches per epoch, as the two functions above produce them."""
    if stateful:
        return (tokens // batch_size - 1) // num_steps
    return ((tokens - 1) // num_steps) // batch_size


def worker_rows(windows: tf.data.Dataset, batch_size: int, workers: int) -> tf.data.Dataset:
    """Each window of ``batch_size`` rows cut into ``workers`` blocks of consecutive rows, one
    element each, window by window: ``shard(workers, w)`` then holds worker ``w``'s block of
    every window (the multi-worker loop shards the validation windows that way)."""
    if batch_size % workers:
        raise ConfigError(
            f"train.batch_size={batch_size} must be a multiple of the {workers} workers: each "
            "takes as many of the parallel streams"
        )
    return windows.unbatch().batch(batch_size // workers)


@dataclasses.dataclass(frozen=True)
class WorkerStreams(WorkerBatches):
    """A training stream's windows as the workers of a cluster read them."""

    ids: np.ndarray
    num_steps: int
    stateful: bool

    def worker_batches(
        self, context: tf.distribute.InputContext, global_batch: int, seed: int
    ) -> tf.data.Dataset:
        """This worker's rows of every window: its own streams (stateful, in order), or its
        share of each batch of random windows drawn by ``seed`` alike on every worker."""
        workers, replicas = context.num_input_pipelines, context.num_replicas_in_sync
        if global_batch % replicas:
            raise ConfigError(
                f"train.batch_size={global_batch} must be a multiple of the {replicas} replicas"
            )
        windows = (
            stateful_windows(self.ids, global_batch, self.num_steps)
            if self.stateful
            else random_windows(self.ids, global_batch, self.num_steps, seed)
        )
        own = worker_rows(windows, global_batch, workers).shard(workers, context.input_pipeline_id)
        # A worker with several devices hands them its block's rows in order, as it splits streams.
        return own.unbatch().batch(global_batch // replicas).prefetch(2)

    def steps_per_epoch(self, global_batch: int) -> int:
        return window_count(len(self.ids), global_batch, self.num_steps, self.stateful)
