"""A training split as equal TFRecord shards, so that each worker of a cluster reads only its files.

The stage that feeds training writes them (``write``); the Trainer reads them when it trains on
several workers (``TrainShards.epochs_of_batches``). Global batch ``k`` holds block ``k`` of every
shard, ``batch_size / shards`` examples each, whatever the number of workers: one worker or eight
see the same examples in every step, so the worker count changes the speed, not the result.
``WorkerBatches`` is what the multi-worker loop reads; the other families' train splits (a
language model's streams, forecasting windows) offer it too.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import json
import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from components.errors import ConfigError

log = logging.getLogger(__name__)

SHARDS_FILE = "shards.json"


class WorkerBatches(abc.ABC):
    """A train split as the workers of a cluster read it: in every step the replicas' batches
    together make one global batch, the same for any number of workers, and each example of an
    epoch is in one of them."""

    @abc.abstractmethod
    def worker_batches(
        self, context: tf.distribute.InputContext, global_batch: int, seed: int
    ) -> tf.data.Dataset:
        """This input pipeline's per-replica batches of one epoch; ``seed`` orders the epoch."""

    @abc.abstractmethod
    def steps_per_epoch(self, global_batch: int) -> int:
        """Batches in every epoch ``worker_batches`` gives, on every input pipeline."""

    def epochs_of_batches(
        self, context: tf.distribute.InputContext, global_batch: int, seed: int, epochs: range
    ) -> tf.data.Dataset:
        """``worker_batches`` of each epoch ``e`` of ``epochs`` (seed ``seed + e``) in turn, for
        one iterator to serve a whole run. Take ``steps_per_epoch`` batches an epoch."""
        if not epochs:
            raise ValueError("epochs_of_batches needs at least one epoch")
        # Python seeds, one dataset per epoch: a tensor seed (flat_map over epoch numbers) cannot
        # be combined with a global seed of 0 (tf.random.set_seed(0)).
        run = functools.reduce(
            tf.data.Dataset.concatenate,
            [self.worker_batches(context, global_batch, seed + epoch) for epoch in epochs],
        )
        # Endless, so that its length is "infinite" rather than "unknown": a distributed iterator
        # then needs no all-reduced "has data" flag each step. The loop stops within ``epochs``.
        return run.repeat().prefetch(2)


@dataclasses.dataclass(frozen=True)
class TrainShards(WorkerBatches):
    """``(features, label)`` examples in ``files``, ``examples_per_shard`` in each."""

    files: tuple[str, ...]
    examples_per_shard: int
    feature_length: int

    def worker_batches(
        self, context: tf.distribute.InputContext, global_batch: int, seed: int
    ) -> tf.data.Dataset:
        """This input pipeline's files, read in blocks so that the replicas' batches of one step
        together make the same global batch for any number of workers; shuffled within each
        shard by ``seed`` (a new seed each epoch reshuffles)."""
        shards, pipelines = len(self.files), context.num_input_pipelines
        if global_batch % shards or shards % pipelines:
            raise ConfigError(
                f"train.batch_size={global_batch} must be a multiple of the {shards} training "
                f"shards, and the shards a multiple of the {pipelines} workers"
            )
        # File-level sharding, done here rather than by tf.data's auto-shard policy FILE: the
        # files a worker reads, and so the examples of each step, are then plain to see.
        own_files = self.files[context.input_pipeline_id :: pipelines]
        examples = tf.data.Dataset.from_tensor_slices(list(own_files)).interleave(
            lambda file: (
                tf.data.TFRecordDataset(file)
                .shuffle(self.examples_per_shard, seed=seed)
                .map(self._parse)
            ),
            cycle_length=len(own_files),
            block_length=global_batch // shards,
        )
        return examples.batch(context.get_per_replica_batch_size(global_batch)).prefetch(2)

    def steps_per_epoch(self, global_batch: int) -> int:
        return -(-self.examples_per_shard // (global_batch // len(self.files)))

    def _parse(self, record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_single_example(
            record,
            {
                "features": tf.io.FixedLenFeature([self.feature_length], tf.int64),
                "label": tf.io.FixedLenFeature([], tf.int64),
            },
        )
        return example["features"], example["label"]


def write(features: np.ndarray, labels: np.ndarray, shards: int, seed: int, out_dir: Path) -> None:
    """``shards`` equal files of the examples in a seeded random order; the few (under
    ``shards``) that do not divide evenly are left out, since every worker must take as many
    steps as the others. Fewer examples than shards: nothing is written (see ``read``)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    per_shard = len(labels) // shards
    if per_shard == 0:
        log.warning("%d training examples cannot fill %d shards: none written", len(labels), shards)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for shard in range(shards):
        name = f"train-{shard:05d}-of-{shards:05d}.tfrecord"
        with tf.io.TFRecordWriter(str(out_dir / name)) as writer:
            for index in order[shard * per_shard : (shard + 1) * per_shard]:
                writer.write(_example(features[index], labels[index]))
        names.append(name)
    left_out = len(labels) - per_shard * shards
    if left_out:
        log.info("left %d training examples out of the shards to keep them equal", left_out)
    layout = {"files": names, "examples_per_shard": per_shard, "feature_length": features.shape[1]}
    (out_dir / SHARDS_FILE).write_text(json.dumps(layout, indent=2))


def read(shards_dir: Path) -> TrainShards | None:
    """The shards ``write`` left in ``shards_dir``; None if it wrote none."""
    if not (shards_dir / SHARDS_FILE).is_file():
        return None
    layout = json.loads((shards_dir / SHARDS_FILE).read_text())
    return TrainShards(
        tuple(str(shards_dir / name) for name in layout["files"]),
        layout["examples_per_shard"],
        layout["feature_length"],
    )


def _example(features: np.ndarray, label: int) -> bytes:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "features": tf.train.Feature(int64_list=tf.train.Int64List(value=features)),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
        )
    ).SerializeToString()
