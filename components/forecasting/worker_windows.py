"""A fold's training windows as the workers of a cluster read them (``shards.WorkerBatches``).

Every worker shuffles the (series, origin) pairs by the same seed, cuts the order into global
batches and takes its own block of rows of each, so the global batches are the same for any
number of workers and each window is in one of them once per epoch. The last global batch is
filled up to the batch size with windows weighing 0: every worker then takes as many steps, and
the filling adds nothing to the loss (whose mean is still over the whole batch, so that step
counts its windows a little less than ``fit``'s short last batch would). Inputs, NaN targets and
weights are ``make_dataset``'s.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from components.artifacts import SeriesWindows
from components.errors import ConfigError
from components.forecasting.windows import window_gather
from components.shards import WorkerBatches


@dataclasses.dataclass(frozen=True)
class WorkerWindows(WorkerBatches):
    windows: SeriesWindows
    weighting: str
    """``model.loss_weighting``, as ``make_dataset`` takes it."""

    def worker_batches(
        self, context: tf.distribute.InputContext, global_batch: int, seed: int
    ) -> tf.data.Dataset:
        """This worker's rows of every global batch of the epoch ``seed`` orders."""
        replicas = context.num_replicas_in_sync
        if global_batch % replicas:
            raise ConfigError(
                f"train.batch_size={global_batch} must be a multiple of the {replicas} replicas "
                "(workers times devices): each takes as many windows of every batch"
            )
        pairs, in_epoch = self.epoch_order(global_batch, seed)
        workers = context.num_input_pipelines
        own = np.arange(len(pairs)).reshape(-1, workers, global_batch // workers)
        own = own[:, context.input_pipeline_id].ravel()
        gather = window_gather(self.windows, self.weighting)

        def weighed(batch, counted):
            inputs, target, weight = gather(batch)
            return inputs, target, weight * counted

        rows = tf.data.Dataset.from_tensor_slices((pairs[own], in_epoch[own]))
        return rows.batch(global_batch // replicas).map(weighed).prefetch(2)

    def epoch_order(self, global_batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's pairs in order, filled up to whole global batches by repeating its first
        ones, and 1.0 where a pair counts (0.0 for the filling)."""
        pairs = self.windows.origins("train")
        order = np.random.default_rng(seed).permutation(len(pairs))
        filled = self.steps_per_epoch(global_batch) * global_batch
        counted = (np.arange(filled) < len(pairs)).astype(np.float32)
        return pairs[np.resize(order, filled)], counted

    def steps_per_epoch(self, global_batch: int) -> int:
        return -(-len(self.windows.origins("train")) // global_batch)
