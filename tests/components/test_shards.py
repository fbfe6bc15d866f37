import numpy as np
import pytest
import tensorflow as tf

from components import shards
from components.errors import ConfigError


@pytest.fixture
def written(tmp_path):
    features = np.arange(26 * 3).reshape(26, 3)  # example i: [3i, 3i + 1, 3i + 2]
    labels = np.arange(26) % 2
    shards.write(features, labels, 4, seed=0, out_dir=tmp_path / "shards")
    return shards.read(tmp_path / "shards")


def epoch(train_shards, pipelines: int, batch: int, seed: int = 1) -> list[set[int]]:
    """The global batches of one epoch: the union, step by step, of every pipeline's batch."""
    per_pipeline = [
        [
            {int(row[0]) // 3 for row in features.numpy()}
            for features, _ in train_shards.worker_batches(
                tf.distribute.InputContext(pipelines, index, pipelines), batch, seed
            )
        ]
        for index in range(pipelines)
    ]
    assert len({len(steps) for steps in per_pipeline}) == 1  # every worker takes as many steps
    return [set.union(*step) for step in zip(*per_pipeline, strict=True)]


def test_shards_are_equal_and_hold_each_example_once(written):
    assert len(written.files) == 4 and written.examples_per_shard == 6  # 2 of 26 left out
    (batches,) = [epoch(written, 1, 24)]
    assert len(batches) == 1 and len(batches[0]) == 24


def test_global_batches_hold_the_same_examples_for_any_worker_count(written):
    one, two, four = (epoch(written, workers, batch=8) for workers in (1, 2, 4))
    assert one == two == four
    assert [len(batch) for batch in one] == [8, 8, 8]
    assert written.steps_per_epoch(8) == 3


def test_each_epoch_seed_reshuffles_within_the_shards(written):
    assert epoch(written, 2, 8, seed=1) != epoch(written, 2, 8, seed=2)


@pytest.mark.parametrize("workers, batch", [(3, 12), (2, 6)])
def test_batch_and_worker_count_must_fit_the_shards(written, workers, batch):
    with pytest.raises(ConfigError, match="multiple of the 4 training shards"):
        epoch(written, workers, batch)


def test_too_few_examples_write_no_shards(tmp_path):
    shards.write(np.zeros((3, 2), "int64"), np.zeros(3, "int64"), 4, 0, tmp_path / "shards")
    assert shards.read(tmp_path / "shards") is None


@pytest.mark.parametrize("pipelines", [1, 2])
def test_a_run_of_epochs_is_each_epochs_batches_in_turn_without_end(written, pipelines):
    tf.random.set_seed(0)  # the global seed that a tensor seed per epoch could not take
    context = tf.distribute.InputContext(pipelines, pipelines - 1, pipelines)
    run = written.epochs_of_batches(context, 8, seed=1, epochs=range(2, 5))
    # Infinite, not unknown: a distributed iterator then skips its per-step "has data" all-reduce.
    assert run.cardinality() == tf.data.INFINITE_CARDINALITY
    steps = written.steps_per_epoch(8)
    got = [features.numpy().tolist() for features, _ in run.take(3 * steps)]
    expected = [  # epochs 2, 3, 4 of a run started with seed 1, as worker_batches gives them
        features.numpy().tolist()
        for seed in (3, 4, 5)
        for features, _ in written.worker_batches(context, 8, seed)
    ]
    assert got == expected and got[:steps] != got[steps : 2 * steps]
