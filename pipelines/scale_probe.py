"""``make bench-scale``'s per-step split: where a worker's step goes when two train together.

Each worker of a cluster (its ``TF_CONFIG``) runs the multi-worker loop on the shipped sentiment
model, on random token ids at the bench's sequence length, and times three things in turn, the
workers lined up by an all-reduce before each:

- the step as trained (``custom_loop.TrainLoop``);
- the same step with its one all-reduce replaced by the identity: the compute alone, each worker
  on its own gradients, nobody waiting for anybody;
- the all-reduce alone, of tensors shaped as the gradients.

What the trained step takes beyond the other two is waiting: for the slower worker, and for the
collective's rounds through the network stack. ``run_pair`` starts two such workers, one per core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from components import custom_loop, distribute, shards
from components.text_classification.model import build_text_classifier
from pipelines import workers
from pipelines.registry import resolve_config

BLOCKS = 4
"""Global batches in the random data (the run repeats them): steps read different examples."""


def run_pair(batch_size: int, steps: int, settings: list[str], out_dir: Path) -> list[dict]:
    """Two probe workers on loopback ports, one per core; each one's timings."""
    processes = []
    for index, tf_config in enumerate(workers.local_cluster(2)):
        command = [sys.executable, "-m", "pipelines.scale_probe", "--batch-size", str(batch_size)]
        command += ["--steps", str(steps), "--output", str(out_dir / f"probe-{index}.json")]
        command += [item for setting in settings for item in ("--set", setting)]
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        processes.append(subprocess.Popen(workers.on_core(command, index, pin=True), env=env))
    try:
        if any([process.wait() for process in processes]):
            raise RuntimeError("a probe worker failed; its output is above")
    finally:
        workers.stop(processes)
    return [json.loads((out_dir / f"probe-{index}.json").read_text()) for index in (0, 1)]


class ComputeOnly(custom_loop.TrainLoop):
    """The loop with the identity for its all-reduce: each worker applies its own gradients."""

    def sum_gradients(self, gradients: list[tf.Tensor]) -> list[tf.Tensor]:
        return gradients


def probe(batch_size: int, steps: int, settings: list[str]) -> dict[str, float]:
    """This worker's seconds per step: trained, compute alone, all-reduce alone."""
    strategy = distribute.strategy("multi_worker")  # before any other TensorFlow op
    config = resolve_config("sentiment", None, None, settings)
    vocabulary, length = config.preprocess.vocabulary_size, config.preprocess.sequence_length
    rng = np.random.default_rng(0)
    examples = batch_size * BLOCKS
    features = rng.integers(1, vocabulary, size=(examples, length))
    with tempfile.TemporaryDirectory() as scratch:
        count = config.preprocess.train_shards
        shards.write(features, rng.integers(0, 2, size=examples), count, 0, Path(scratch))
        train_shards = shards.read(Path(scratch))
        timings = {}
        for name, loop_class in (("trained_s", custom_loop.TrainLoop), ("compute_s", ComputeOnly)):
            keras.utils.set_random_seed(0)
            with strategy.scope():
                model = build_text_classifier(config.model, vocabulary, length)
                model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate))
            loop_settings = custom_loop.LoopSettings(
                1, batch_size, 0, 1, config.train.clipnorm, None, steps, False, *[None] * 3
            )
            loop = loop_class(loop_settings, model, "binary_crossentropy", [], strategy)
            batches = loop.batches(train_shards, range(1))
            timings[name] = _seconds_per_step(strategy, partial(loop.run_steps, batches), steps)
    gradients = [tf.zeros(weight.shape, weight.dtype) for weight in model.trainable_weights]

    @tf.function
    def all_reduces(count):
        for _ in tf.range(count):
            strategy.run(
                lambda: tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.SUM, gradients
                )
            )

    timings["all_reduce_s"] = _seconds_per_step(
        strategy, lambda count: all_reduces(tf.constant(count)), steps
    )
    return timings


def _seconds_per_step(strategy: tf.distribute.Strategy, call, steps: int) -> float:
    """``call(steps)``'s seconds a step, after ``call(1)`` has traced it and warmed the input;
    every worker starts the timed call together."""
    call(1)
    distribute.sum_over_workers(strategy, [tf.constant(0.0)])[0].numpy()
    started = time.perf_counter()
    call(steps)
    return (time.perf_counter() - started) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.scale_probe", description=__doc__)
    parser.add_argument("--batch-size", type=int, required=True, help="global batch")
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each kind")
    parser.add_argument("--set", action="append", default=[], help="sentiment config override")
    parser.add_argument("--output", type=Path, required=True, help="where the timings go (JSON)")
    args = parser.parse_args(argv)
    args.output.write_text(json.dumps(probe(args.batch_size, args.steps, args.set), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
