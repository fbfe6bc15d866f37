import numpy as np
import pytest

from components.errors import DataError
from components.language_modeling.streams import random_windows, stateful_windows, window_count


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
