import numpy as np
import pandas as pd
import pytest

from components.errors import ConfigError, DataError
from components.forecasting import ingest
from components.forecasting import windows as series_windows
from components.forecasting.windows import SeriesWindowConfig, load_spec
from pipelines.config import load_config
from pipelines.sales_forecast.pipeline import Config
from tests.conftest import SHOP_INGEST, write_shop_sales

LOOKBACK, HORIZON = 52, 8


@pytest.fixture
def shop_series(tmp_path):
    write_shop_sales(tmp_path, series=4, weeks=120)
    overrides = [f"{k}={v}" for k, v in SHOP_INGEST.items()] + [f"ingest.data_dir={tmp_path}"]
    config = load_config(Config, None, overrides)
    return ingest.run(config.ingest, tmp_path / "series", LOOKBACK + HORIZON)


def windows_for(shop_series, tmp_path, fold=0, name="windows"):
    config = SeriesWindowConfig(lookback=LOOKBACK, horizon=HORIZON)
    return series_windows.run(config, shop_series, fold, tmp_path / name)


def test_splits_are_ordered_in_time_and_never_overlap(shop_series, tmp_path):
    windows = windows_for(shop_series, tmp_path)
    summary = windows.summary()
    train, validation, test = (windows.origins(s) for s in ("train", "validation", "test"))
    periods = summary["periods"]
    assert set(test[:, 1]) == {periods - 1 - HORIZON}
    assert set(validation[:, 1]) == {periods - 1 - 2 * HORIZON}
    # Every training target lies at or before the validation origin: no validation/test week.
    assert (train[:, 1] + HORIZON).max() == validation[0, 1]
    assert (train[:, 1] - LOOKBACK + 1).min() >= 0
    assert summary["windows"] == {"train": len(train), "validation": 4, "test": 4}


def test_scaling_never_sees_validation_or_test_weeks(shop_series, tmp_path):
    before = load_spec(windows_for(shop_series, tmp_path, name="before"))
    panel = shop_series.load()
    late = panel["date"] > panel["date"].sort_values().unique()[-2 * HORIZON - 1]
    panel.loc[late, ["target", "promo"]] *= 1000.0
    panel.to_parquet(shop_series.path / "panel.parquet")
    after = load_spec(windows_for(shop_series, tmp_path, name="after"))
    assert after.series_scales == before.series_scales
    assert after.feature_mean == before.feature_mean


def test_batches_hold_raw_inputs_targets_and_inverse_scale_weights(shop_series, tmp_path):
    windows = windows_for(shop_series, tmp_path)
    spec, values = load_spec(windows), windows.values()
    inputs, target, weight = next(iter(series_windows.make_dataset(windows, "test", 4)))
    assert inputs["units"].shape == (4, LOOKBACK)
    assert inputs["promo"].shape == (4, LOOKBACK + HORIZON)
    assert target.shape == (4, HORIZON)
    origin = windows.origins("test")[0, 1]
    np.testing.assert_allclose(inputs["units"][0], values[0, origin - LOOKBACK + 1 : origin + 1, 0])
    np.testing.assert_allclose(target[0], values[0, origin + 1 : origin + 1 + HORIZON, 0])
    np.testing.assert_allclose(weight.numpy(), 1.0 / np.array(spec.series_scales), rtol=1e-6)
    assert inputs["forecast_start"][0].numpy().decode() == windows.grid_dates()[origin + 1]
    assert set(inputs["region"].numpy()) == {b"N", b"S"}


def test_the_loss_weighting_decides_what_one_unit_of_error_counts(shop_series, tmp_path):
    windows = windows_for(shop_series, tmp_path)
    scales = np.array(load_spec(windows).series_scales)
    expected = {
        "series": 1.0 / scales,  # relative to each series' scale
        "units": np.full(4, 1.0 / scales.mean()),  # the same for every series, as WMAE
        "sqrt": 1.0 / np.sqrt(scales * scales.mean()),
    }
    for weighting, weights in expected.items():
        dataset = series_windows.make_dataset(windows, "test", 4, weighting=weighting)
        np.testing.assert_allclose(next(iter(dataset))[2].numpy(), weights, rtol=1e-5)
    with pytest.raises(ConfigError, match="model.loss_weighting='rows' is not valid"):
        series_windows.make_dataset(windows, "test", 4, weighting="rows")


def test_an_earlier_fold_moves_every_origin_back_one_horizon(shop_series, tmp_path):
    latest = windows_for(shop_series, tmp_path, fold=0, name="fold0")
    earlier = windows_for(shop_series, tmp_path, fold=1, name="fold1")
    assert earlier.origins("test")[0, 1] == latest.origins("test")[0, 1] - HORIZON
    assert earlier.origins("train")[:, 1].max() == latest.origins("train")[:, 1].max() - HORIZON


def test_too_few_periods_for_the_folds_is_a_clear_error(shop_series, tmp_path):
    with pytest.raises(DataError, match="too few for lookback 52, horizon 8 and backtest fold 7"):
        windows_for(shop_series, tmp_path, fold=7)


def test_filled_target_periods_are_nan_targets_and_unobserved_windows_weigh_nothing(tmp_path):
    """SKU0 misses its last 8 weeks but one: ingest fills them, training must not learn them."""
    write_shop_sales(tmp_path, series=2, weeks=120)
    shop = pd.read_csv(tmp_path / "shop.csv")
    last = shop[shop["sku"] == "SKU0"].index[-8:-1]  # weeks 113-119 of SKU0; week 120 stays
    shop.drop(index=last).to_csv(tmp_path / "shop.csv", index=False)
    overrides = [f"{k}={v}" for k, v in SHOP_INGEST.items()] + [f"ingest.data_dir={tmp_path}"]
    series = ingest.run(load_config(Config, None, overrides).ingest, tmp_path / "series", 60)
    windows = series_windows.run(SeriesWindowConfig(lookback=52, horizon=8), series, 0, tmp_path)
    assert windows.observed()[0, -8:-1].sum() == 0 and windows.observed()[1].all()
    _, target, weight = next(iter(series_windows.make_dataset(windows, "test", 8)))
    sku0 = load_spec(windows).series_keys.index("SKU0")
    assert np.isnan(target.numpy()[sku0, :7]).all() and np.isfinite(target.numpy()[sku0, 7])
    assert np.isfinite(target.numpy()[1 - sku0]).all()
    assert (weight.numpy() > 0).all()  # each test window has an observed target


def test_filled_periods_count_as_actuals_when_the_config_says_they_are(tmp_path):
    """Walmart's missing rows are weeks without sales: zeros to learn and score."""
    write_shop_sales(tmp_path, series=2, weeks=120)
    shop = pd.read_csv(tmp_path / "shop.csv")
    shop.drop(index=shop[shop["sku"] == "SKU0"].index[-8:-1]).to_csv(
        tmp_path / "shop.csv", index=False
    )
    overrides = [f"{k}={v}" for k, v in SHOP_INGEST.items()]
    overrides += [f"ingest.data_dir={tmp_path}", "ingest.filled_are_actuals=true"]
    series = ingest.run(load_config(Config, None, overrides).ingest, tmp_path / "series", 60)
    windows = series_windows.run(SeriesWindowConfig(lookback=52, horizon=8), series, 0, tmp_path)
    assert windows.observed().all()
    _, target, _ = next(iter(series_windows.make_dataset(windows, "test", 8)))
    sku0 = load_spec(windows).series_keys.index("SKU0")
    assert target.numpy()[sku0, :7].tolist() == [0.0] * 7  # filled with zero, an actual


def test_a_training_window_whose_targets_were_all_filled_weighs_zero(tmp_path):
    """SKU0 misses weeks 71-80 mid-history: training windows whose 8 targets fall in the gap
    weigh exactly 0, the ones around it with an observed target keep their weight."""
    write_shop_sales(tmp_path, series=2, weeks=120)
    shop = pd.read_csv(tmp_path / "shop.csv")
    gap = shop[shop["sku"] == "SKU0"].index[70:80]  # steps 70-79 of SKU0's 120 weeks
    shop.drop(index=gap).to_csv(tmp_path / "shop.csv", index=False)
    overrides = [f"{k}={v}" for k, v in SHOP_INGEST.items()] + [f"ingest.data_dir={tmp_path}"]
    series = ingest.run(load_config(Config, None, overrides).ingest, tmp_path / "series", 60)
    windows = series_windows.run(SeriesWindowConfig(lookback=52, horizon=8), series, 0, tmp_path)
    sku0 = load_spec(windows).series_keys.index("SKU0")
    observed = windows.observed()
    assert not observed[sku0, 70:80].any() and observed[sku0, :70].all()
    assert observed[sku0, 80:].all() and observed[1 - sku0].all()
    pairs = windows.origins("train")
    weights = np.concatenate(
        [batch[2].numpy() for batch in series_windows.make_dataset(windows, "train", 16)]
    )
    assert len(weights) == len(pairs)
    in_gap = (pairs[:, 0] == sku0) & np.isin(pairs[:, 1], [69, 70, 71])  # targets 70-77 .. 72-79
    assert in_gap.sum() == 3
    assert (weights[in_gap] == 0).all()
    assert (weights[~in_gap] > 0).all()  # origins 62-68 and 72-78 still see a real target
    scale = 1.0 / np.array(load_spec(windows).series_scales)
    np.testing.assert_allclose(weights[~in_gap], scale[pairs[~in_gap, 0]], rtol=1e-6)
