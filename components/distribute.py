"""The tf.distribute strategy behind ``train.distribution``, and sums across a cluster's workers.

``multi_worker`` (MultiWorkerMirroredStrategy) reads the cluster and this process's task from
``TF_CONFIG``; without it the process is a cluster of one. A process holds one such strategy
(its collective ops are set up once, best before any other TensorFlow op runs), so ``strategy``
is cached: the command line creates it at start-up and the Trainer then gets the same object.
"""

from __future__ import annotations

import functools

import tensorflow as tf

DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


@functools.cache
def strategy(distribution: str) -> tf.distribute.Strategy:
    """``none``: the default (no-op) strategy; ``mirrored``: this machine's devices;
    ``multi_worker``: every worker in ``TF_CONFIG``, all-reducing over gRPC with ring
    collectives (NCCL needs GPUs)."""
    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    if distribution == "multi_worker":
        ring = tf.distribute.experimental.CommunicationImplementation.RING
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=ring
            )
        )
    return tf.distribute.get_strategy()


def worker_count(distribution: tf.distribute.Strategy) -> int:
    return distribution.num_replicas_in_sync // len(distribution.extended.worker_devices)


def worker_index(distribution: tf.distribute.Strategy) -> int:
    """This worker's place among the workers (0 outside a cluster)."""
    resolver = getattr(distribution, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0
    # A "chief" task, if the cluster names one, comes first; the "worker" tasks after it.
    with_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_id + (1 if with_chief and resolver.task_type == "worker" else 0)


def sum_over_workers(
    distribution: tf.distribute.Strategy, values: list[tf.Tensor]
) -> list[tf.Tensor]:
    """Each (float) value summed over the workers, the same on every worker afterwards."""
    if not values:  # a task without metrics: an empty all-reduce would fail
        return []
    local_replicas = len(distribution.extended.worker_devices)

    def replica_sum():
        shares = [value / local_replicas for value in values]
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, shares)

    summed = distribution.run(replica_sum)
    return [distribution.experimental_local_results(value)[0] for value in summed]


def from_chief(distribution: tf.distribute.Strategy, values: list[tf.Tensor]) -> list[tf.Tensor]:
    """The chief's values on every worker: what it restored from its checkpoint."""
    chief = distribution.extended.should_checkpoint
    return sum_over_workers(
        distribution, [value if chief else tf.zeros_like(value) for value in values]
    )
