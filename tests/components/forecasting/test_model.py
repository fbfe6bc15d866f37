import dataclasses

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components import train
from components.errors import ConfigError
from components.forecasting import ingest
from components.forecasting import windows as series_windows
from components.forecasting.holidays import HOLIDAYS
from components.forecasting.model import (
    ARCHITECTURES,
    ForecastModelConfig,
    build_forecaster,
    forecast_loss,
)
from components.forecasting.windows import SeriesWindowConfig, load_spec
from pipelines.config import load_config
from pipelines.sales_forecast.pipeline import Config
from tests.components.forecasting.test_holidays import reference_flags
from tests.conftest import SHOP_INGEST, write_shop_sales


@pytest.fixture(scope="module")
def shop_windows(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    write_shop_sales(root, series=8, weeks=140)
    overrides = [f"{k}={v}" for k, v in SHOP_INGEST.items()] + [f"ingest.data_dir={root}"]
    config = load_config(Config, None, overrides)
    series = ingest.run(config.ingest, root / "series", 60)
    return series_windows.run(
        SeriesWindowConfig(lookback=52, horizon=8), series, 0, root / "windows"
    )


def fit(windows, config: ForecastModelConfig, epochs: int, out_dir) -> keras.Model:
    data = train.TrainingData(
        series_windows.make_dataset(windows, "train", 32, shuffle_seed=0),
        series_windows.make_dataset(windows, "validation", 32),
        len(windows.origins("train")),
    )
    train_config = train.TrainConfig(
        epochs=epochs, learning_rate=3e-3, early_stopping_patience=epochs
    )
    return train.run(
        train_config,
        lambda: build_forecaster(config, load_spec(windows)),
        data,
        forecast_loss(config),
        [],
        out_dir,
    ).load()


def test_a_trained_forecaster_learns_the_season_better_than_naive(shop_windows, tmp_path):
    # No seasonal-naive shortcut: the network itself must learn the yearly cycle.
    config = ForecastModelConfig(units=16, dropout=0.0, seasonal_residual=False)
    model = fit(shop_windows, config, epochs=12, out_dir=tmp_path)
    inputs, actual, _ = next(iter(series_windows.make_dataset(shop_windows, "test", 64)))
    forecast = model.predict(inputs, verbose=0)
    naive = np.repeat(inputs["units"].numpy()[:, -1:], 8, axis=1)
    model_error = np.abs(forecast - actual.numpy()).mean()
    naive_error = np.abs(naive - actual.numpy()).mean()
    assert model_error < 0.5 * naive_error  # measured: 0.32 after 12 epochs, 0.63 after 8


def test_raw_inputs_in_original_units_out_and_a_saved_model_reloads(shop_windows, tmp_path):
    config = ForecastModelConfig(units=8, quantiles=[0.1, 0.5, 0.9])
    model = fit(shop_windows, config, epochs=1, out_dir=tmp_path)
    inputs, actual, _ = next(iter(series_windows.make_dataset(shop_windows, "test", 8)))
    forecast = model.predict(inputs, verbose=0)
    assert forecast.shape == (8, 8, 3)
    # Starting from last year's weeks, one epoch already errs by about 11% (median) here; a
    # forecast left in scaled units or on another series' scale errs by far more.
    assert np.median(np.abs(forecast[:, :, 1] - actual) / np.abs(actual)) < 0.2
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(inputs, verbose=0), forecast, rtol=1e-5)


def test_an_unseen_series_is_scaled_by_its_own_history(shop_windows):
    model = build_forecaster(ForecastModelConfig(units=4), load_spec(shop_windows))
    inputs, _, _ = next(iter(series_windows.make_dataset(shop_windows, "test", 2)))
    inputs = dict(inputs, sku=tf.constant(["NEW1", "NEW2"]))
    forecast = model.predict(inputs, verbose=0)
    assert np.isfinite(forecast).all()
    # Each unseen series is scaled by its own window: its mean absolute value + 1 (as training
    # scales are), whatever else is in the batch.
    scale_of = keras.Model(model.input, model.get_layer("series_scale").output[0])
    history = inputs["units"].numpy()
    np.testing.assert_allclose(
        scale_of.predict(inputs, verbose=0)[:, 0], np.abs(history).mean(axis=1) + 1, rtol=1e-5
    )
    louder = dict(inputs, units=tf.constant(history * np.array([[10.0], [1.0]], np.float32)))
    np.testing.assert_allclose(
        scale_of.predict(louder, verbose=0)[:, 0],
        np.abs(history).mean(axis=1) * [10, 1] + 1,
        rtol=1e-5,
    )
    np.testing.assert_allclose(model.predict(louder, verbose=0)[1], forecast[1], rtol=1e-5)


def test_unknown_cell_and_architecture_name_the_choices():
    with pytest.raises(ConfigError, match="simple_rnn, lstm, gru"):
        ForecastModelConfig(cell="transformer")
    with pytest.raises(ConfigError, match="direct, encoder_decoder"):
        ForecastModelConfig(architecture="wavenet")


def test_the_holiday_flags_of_training_windows_are_those_of_their_dates(shop_windows):
    spec = load_spec(shop_windows)
    model = build_forecaster(ForecastModelConfig(units=4, holidays=list(HOLIDAYS)), spec)
    flags_of = keras.Model(model.input, model.get_layer("holidays").output)
    inputs, _, _ = next(iter(series_windows.make_dataset(shop_windows, "train", 100)))
    flags = flags_of.predict(inputs, verbose=0)
    grid = pd.DatetimeIndex(shop_windows.grid_dates())
    expected = reference_flags(grid, "W-MON")  # pandas' weeks: Tuesday to Monday
    window = np.arange(-spec.lookback + 1, spec.horizon + 1)
    for flagged, origin in zip(flags, shop_windows.origins("train")[:100, 1], strict=True):
        np.testing.assert_array_equal(flagged, expected[origin + window])
    assert flags.sum(axis=(0, 1)).min() > 0  # every holiday shows up in these windows


def test_holidays_need_a_frequency_with_a_holiday_period(shop_windows):
    spec = dataclasses.replace(load_spec(shop_windows), frequency="B", season_length=5)
    config = ForecastModelConfig(
        units=4, holidays=["easter"], seasonal_residual=False, calendar_harmonics=0
    )
    with pytest.raises(ConfigError, match=r"model.holidays=\['easter'\] needs a weekly"):
        build_forecaster(config, spec)
    with pytest.raises(ConfigError, match="model.holidays"):
        ForecastModelConfig(holidays=["diwali"])


def test_seasonal_residual_needs_a_year_of_lookback(shop_windows):
    spec = load_spec(shop_windows)
    short = type(spec)(**{**spec.__dict__, "lookback": 26})
    with pytest.raises(
        ConfigError, match=r"windows.lookback \(26\) >= the season length \(52 periods"
    ):
        build_forecaster(ForecastModelConfig(), short)


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_every_cell_builds_every_head(shop_windows, cell):
    for architecture in ARCHITECTURES:
        for bidirectional in (False, True):
            config = ForecastModelConfig(
                cell=cell, architecture=architecture, units=4, bidirectional=bidirectional
            )
            model = build_forecaster(config, load_spec(shop_windows))
            assert model.output.shape == (None, 8)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_stacked_forecaster_builds_again_in_the_same_process(shop_windows, architecture):
    # The backtest rebuilds the model once per fold; an unnamed Dropout once took the name
    # "dropout_1" of the stack's own on the second build.
    config = ForecastModelConfig(layers=2, units=4, architecture=architecture)
    for _ in range(3):
        model = build_forecaster(config, load_spec(shop_windows))
    assert {"gru_0", "gru_1", "dropout_1"} <= {layer.name for layer in model.layers}


def test_forecasts_are_clipped_at_zero_when_the_training_target_never_is_negative(shop_windows):
    spec = load_spec(shop_windows)
    assert spec.target_min >= 0  # units sold
    with_returns = dataclasses.replace(spec, target_min=-3.0)

    def clipped(config, feature_spec) -> bool:
        names = [layer.name for layer in build_forecaster(config, feature_spec).layers]
        return "non_negative" in names

    assert clipped(ForecastModelConfig(), spec)
    assert not clipped(ForecastModelConfig(), with_returns)
    assert not clipped(ForecastModelConfig(non_negative=False), spec)
    assert clipped(ForecastModelConfig(non_negative=True), with_returns)
    # The clip is the model's last step: a forecast far below zero comes out as 0.
    model = build_forecaster(ForecastModelConfig(), spec)
    inputs, _, _ = next(iter(series_windows.make_dataset(shop_windows, "test", 4)))
    inputs = {**inputs, spec.target: -1000.0 * tf.ones_like(inputs[spec.target])}
    assert float(tf.reduce_min(model(inputs))) == 0.0


@pytest.mark.parametrize(("quantiles", "expected"), [(None, 2.0), ([0.1, 0.5, 0.9], 1.0)])
def test_the_losses_skip_targets_ingest_filled(quantiles, expected):
    """NaN targets (filled periods) add nothing. Forecast 2 against 1 and 5: MAE (1 + 3) / 2;
    pinball at 0.1/0.5/0.9: ((0.9 + 0.5 + 0.1) + (0.3 + 1.5 + 2.7)) / 6."""
    loss = forecast_loss(ForecastModelConfig(quantiles=quantiles))
    predicted = tf.fill((2, 3, 3) if quantiles else (2, 3), 2.0)
    target = tf.constant([[1.0, 5.0, float("nan")], [float("nan")] * 3])
    per_window = loss.call(target, predicted).numpy()
    assert per_window.tolist() == pytest.approx([expected, 0.0])  # nothing observed: no loss
