import keras
import numpy as np
import pytest

from components import train
from components.forecasting import attention, ingest
from components.forecasting import windows as series_windows
from components.forecasting.model import ForecastModelConfig, build_forecaster, forecast_loss
from components.forecasting.windows import SeriesWindowConfig, load_spec
from pipelines.config import load_config
from pipelines.sales_forecast.pipeline import Config
from tests.conftest import SHOP_INGEST, write_shop_sales


@pytest.fixture(scope="module")
def shop_windows(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    write_shop_sales(root, series=4, weeks=120)
    overrides = [f"{k}={v}" for k, v in SHOP_INGEST.items()] + [f"ingest.data_dir={root}"]
    config = load_config(Config, None, overrides)
    series = ingest.run(config.ingest, root / "series", 60)
    return series_windows.run(
        SeriesWindowConfig(lookback=52, horizon=4), series, 0, root / "windows"
    )


@pytest.fixture(scope="module")
def attending(shop_windows, tmp_path_factory):
    """An attention forecaster with holiday flags, trained one epoch, reloaded from disk."""
    config = ForecastModelConfig(
        units=8, architecture="encoder_decoder_attention", holidays=["christmas", "easter"]
    )
    data = train.TrainingData(
        series_windows.make_dataset(shop_windows, "train", 64, shuffle_seed=0),
        series_windows.make_dataset(shop_windows, "validation", 64),
        len(shop_windows.origins("train")),
    )
    out_dir = tmp_path_factory.mktemp("model")
    train.run(
        train.TrainConfig(epochs=1),
        lambda: build_forecaster(config, load_spec(shop_windows)),
        data,
        forecast_loss(config),
        [],
        out_dir,
    )
    return keras.saving.load_model(out_dir / "model.keras")


def test_each_decoder_step_weighs_the_whole_history(shop_windows, attending):
    inputs, _, _ = next(iter(series_windows.make_dataset(shop_windows, "test", 4)))
    (weights_model,) = attention.weight_models(attending)
    weights = weights_model.predict(inputs, verbose=0)
    assert weights.shape == (4, 4, 52)  # windows x horizon steps x history periods
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    assert attending.predict(inputs, verbose=0).shape == (4, 4)


def test_the_report_draws_the_heat_map_and_measures_last_seasons_share(
    shop_windows, attending, tmp_path
):
    inputs = series_windows.make_dataset(shop_windows, "test", 4).map(lambda x, y, w: x)
    attention.report(attending, inputs, season_length=52, out_dir=tmp_path)
    assert (tmp_path / "attention.png").stat().st_size > 0
    assert (tmp_path / "attention.json").is_file()


def test_a_forecaster_without_attention_reports_nothing(shop_windows, tmp_path):
    model = build_forecaster(ForecastModelConfig(units=4), load_spec(shop_windows))
    attention.report(model, None, season_length=52, out_dir=tmp_path)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_the_lift_compares_last_seasons_periods_with_a_uniform_share():
    uniform = np.full((4, 52), 1 / 52)
    assert attention.seasonal_lift(uniform, 52) == pytest.approx(1.0)
    # All mass on last season's same period: 3 periods (+-1) would get 3/52 uniformly.
    focused = np.zeros((4, 52))
    for step in range(4):
        focused[step, step] = 1.0
    assert attention.seasonal_lift(focused, 52) == pytest.approx(np.mean([52 / 2] + [52 / 3] * 3))
    assert attention.seasonal_lift(np.full((4, 12), 1 / 12), 52) is None  # lookback too short
