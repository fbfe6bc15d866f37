import numpy as np
import pytest
import tensorflow as tf

from components.errors import ConfigError, DataError
from components.language_modeling.streams import (
    WorkerStreams,
    random_windows,
    stateful_windows,
    window_count,
)


def test_stateful_windows_continue_each_row_across_batches():
    ids = np.arange(103)
    windows = list(stateful_windows(ids, batch_size=4, num_steps=5).as_numpy_iterator())
    assert len(windows) == window_count(103, 4, 5, stateful=True) == 4  # rows of 25 tokens
    for (inputs, targets), (next_inputs, _) in zip(windows, windows[1:], strict=False):
        np.testing.assert_array_equal(next_inputs[:, 0], inputs[:, -1] + 1)  # row r goes on
        np.testing.assert_array_equal(targets, inputs + 1)  # targets are the next tokens
    first_inputs = windows[0][0]
    np.testing.assert_array_equal(first_inputs[:, 0], [0, 25, 50, 75])  # 4 contiguous streams


def test_random_windows_are_seeded_and_shaped():
    ids = np.arange(1000)
    first = [
        w for w, _ in random_windows(ids, batch_size=8, num_steps=10, seed=3).as_numpy_iterator()
    ]
    again = [
        w for w, _ in random_windows(ids, batch_size=8, num_steps=10, seed=3).as_numpy_iterator()
    ]
    assert len(first) == window_count(1000, 8, 10, stateful=False) == 12
    assert all(w.shape == (8, 10) for w in first)
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    np.testing.assert_array_equal(np.diff(first[0], axis=1), 1)  # each window is a contiguous run


def test_too_short_stream_is_reported():
    with pytest.raises(DataError, match="needs at least 84 tokens"):
        stateful_windows(np.arange(50), batch_size=4, num_steps=20)


def worker_epochs(streams: WorkerStreams, workers: int, batch: int, seed: int = 1) -> list:
    """Each worker's input windows of one epoch, as the multi-worker loop reads them."""
    return [
        [
            inputs
            for inputs, _ in streams.worker_batches(
                tf.distribute.InputContext(workers, index, workers), batch, seed
            ).as_numpy_iterator()
        ]
        for index in range(workers)
    ]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_each_worker_carries_its_own_contiguous_streams(workers):
    ids, batch = np.arange(403), 8
    streams = WorkerStreams(ids, num_steps=5, stateful=True)
    one_process = [inputs for inputs, _ in stateful_windows(ids, batch, 5).as_numpy_iterator()]
    rows = batch // workers
    for index, windows in enumerate(worker_epochs(streams, workers, batch)):
        assert len(windows) == streams.steps_per_epoch(batch) == len(one_process) == 9
        for step, inputs in enumerate(windows):  # streams index * B/N .. (index + 1) * B/N - 1
            np.testing.assert_array_equal(
                inputs, one_process[step][index * rows : (index + 1) * rows]
            )
        for inputs, following in zip(windows, windows[1:], strict=False):
            np.testing.assert_array_equal(following[:, 0], inputs[:, -1] + 1)  # each row goes on


@pytest.mark.parametrize("stateful", [True, False])
def test_every_window_is_read_once_per_epoch_over_the_workers(stateful):
    ids, batch = np.arange(403), 8
    streams = WorkerStreams(ids, num_steps=5, stateful=stateful)
    one, two = (worker_epochs(streams, workers, batch) for workers in (1, 2))
    global_batches = [np.concatenate(step) for step in zip(*two, strict=True)]
    np.testing.assert_array_equal(np.stack(global_batches), np.stack(one[0]))
    starts = np.concatenate(global_batches)[:, 0]
    if stateful:
        assert len(set(starts)) == len(starts) == streams.steps_per_epoch(batch) * batch
    else:  # each epoch's seed draws other windows (a start may repeat, as in one process)
        other_epoch = worker_epochs(streams, 1, batch, seed=2)[0]
        assert not np.array_equal(np.stack(other_epoch), np.stack(one[0]))


def test_a_batch_the_workers_cannot_share_evenly_is_refused():
    streams = WorkerStreams(np.arange(403), num_steps=5, stateful=True)
    with pytest.raises(ConfigError, match="train.batch_size=6 must be a multiple of the 4"):
        worker_epochs(streams, 4, batch=6)
