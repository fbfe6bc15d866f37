import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components.errors import ConfigError
from components.forecasting import ingest
from components.forecasting import windows as series_windows
from components.forecasting.windows import SeriesWindowConfig
from components.forecasting.worker_windows import WorkerWindows
from pipelines.config import load_config
from pipelines.sales_forecast.pipeline import Config
from tests.conftest import SHOP_INGEST, write_shop_sales

BATCH = 8


@pytest.fixture
def worker_windows(tmp_path):
    """3 series of 80 weeks, some weeks missing from the file (NaN targets): 51 training
    windows, so the last global batch of 8 holds 3 and is filled up with 5."""
    sales = pd.read_csv(write_shop_sales(tmp_path, series=3, weeks=80))
    sales.drop(index=sales.index[55:75:3]).to_csv(tmp_path / "shop.csv", index=False)
    overrides = [f"{k}={v}" for k, v in SHOP_INGEST.items()] + [f"ingest.data_dir={tmp_path}"]
    config = load_config(Config, None, overrides)
    series = ingest.run(config.ingest, tmp_path / "series", 56)
    windows_config = SeriesWindowConfig(lookback=52, horizon=4)
    windows = series_windows.run(windows_config, series, 0, tmp_path / "windows")
    return WorkerWindows(windows, "series")


def rows(batch) -> list[tuple]:
    """``(series, forecast start, target, weight)`` of each window of a batch."""
    inputs, target, weight = batch
    series, start = inputs["sku"].numpy(), inputs["forecast_start"].numpy()
    return list(zip(series, start, target.numpy(), weight.numpy(), strict=True))


def epoch(worker_windows: WorkerWindows, workers: int, seed: int = 1) -> list[list[tuple]]:
    """The global batches of one epoch: step by step, the workers' rows in worker order."""
    per_worker = [
        [
            rows(batch)
            for batch in worker_windows.worker_batches(
                tf.distribute.InputContext(workers, index, workers), BATCH, seed
            )
        ]
        for index in range(workers)
    ]
    assert {len(steps) for steps in per_worker} == {worker_windows.steps_per_epoch(BATCH)}
    return [sum(step, []) for step in zip(*per_worker, strict=True)]


def key(row: tuple) -> tuple:
    return row[:2]


def test_each_window_is_in_one_global_batch_per_epoch_for_any_worker_count(worker_windows):
    one, two, four = (epoch(worker_windows, workers) for workers in (1, 2, 4))
    assert [list(map(key, step)) for step in one] == [list(map(key, step)) for step in two]
    assert [list(map(key, step)) for step in one] == [list(map(key, step)) for step in four]
    windows = [row for step in two for row in step]
    assert len(one) == 7 and len(windows) == 7 * BATCH
    counted, filling = windows[:51], windows[51:]
    assert len({key(row) for row in counted}) == 51  # every training window, once
    assert [key(row) for row in filling] == [key(row) for row in counted[:5]]
    assert all(row[3] == 0.0 for row in filling)  # the filling weighs nothing


def test_windows_keep_their_inputs_nan_targets_and_weights(worker_windows):
    everything = series_windows.make_dataset(worker_windows.windows, "train", 1000)
    expected = {key(row): row for row in rows(next(iter(everything)))}
    windows = [row for step in epoch(worker_windows, 2) for row in step][:51]
    for row in windows:
        np.testing.assert_array_equal(row[2], expected[key(row)][2])  # NaN where NaN
        assert row[3] == pytest.approx(expected[key(row)][3])
    assert any(np.isnan(row[2]).any() for row in windows)  # missing weeks are in the test


def test_every_epoch_seed_orders_the_windows_anew_on_every_worker(worker_windows):
    first, second = (epoch(worker_windows, 2, seed) for seed in (1, 2))
    first_keys, second_keys = ([key(r) for step in e for r in step][:51] for e in (first, second))
    assert first_keys != second_keys and set(first_keys) == set(second_keys)


def test_a_batch_the_replicas_cannot_share_evenly_is_refused(worker_windows):
    context = tf.distribute.InputContext(4, 0, 4)
    with pytest.raises(ConfigError, match="train.batch_size=6 must be a multiple of the 4"):
        worker_windows.worker_batches(context, 6, seed=1)
