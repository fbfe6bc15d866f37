"""The combination of the network and the baselines: weights fitted on the validation block alone,
the in-graph baselines equal to the scored ones, and the served graph equal to the formula."""

import itertools
import json

import keras
import numpy as np
import pytest

from components.artifacts import TrainedModel
from components.errors import ConfigError
from components.forecasting import backtest, baselines, combination, ingest
from components.forecasting import windows as series_windows
from components.forecasting.model import ForecastModelConfig, build_forecaster
from components.forecasting.windows import SeriesWindowConfig, load_spec
from pipelines.config import load_config
from pipelines.sales_forecast.pipeline import Config
from tests.conftest import SHOP_INGEST, write_shop_sales


def wmae(actual, forecast, weights):
    return np.sum(weights * np.abs(actual - forecast)) / np.sum(weights)


def test_the_weights_are_the_best_convex_mix_on_the_validation_block():
    rng = np.random.default_rng(0)
    actual = rng.normal(100, 20, (40, 8))
    candidates = {
        "network": actual + rng.normal(0, 5, actual.shape),
        "seasonal_naive": actual + rng.normal(0, 8, actual.shape),
        "mstl": actual + 6 + rng.normal(0, 3, actual.shape),
    }
    cell_weights = np.where(rng.random(actual.shape) < 0.1, 5.0, 1.0)
    weights = combination.fit_weights(actual, cell_weights, candidates)
    assert min(weights.values()) >= 0 and sum(weights.values()) == pytest.approx(1.0)
    fitted = wmae(actual, sum(w * candidates[n] for n, w in weights.items()), cell_weights)
    # No point of a fine grid over the simplex does better (the LP is exact).
    grid = np.linspace(0, 1, 41)
    best = min(
        wmae(actual, a * candidates["network"] + b * candidates["seasonal_naive"]
             + (1 - a - b) * candidates["mstl"], cell_weights)
        for a, b in itertools.product(grid, grid) if a + b <= 1 + 1e-9
    )  # fmt: skip
    assert fitted <= best + 1e-6
    # Better than each candidate alone, since their errors differ.
    assert all(fitted < wmae(actual, c, cell_weights) for c in candidates.values())


def test_a_candidate_that_is_exact_gets_all_the_weight_and_unobserved_cells_are_skipped():
    actual = np.arange(24.0).reshape(3, 8) + 10
    exact, off = actual.copy(), actual + 3
    actual[0, 0] = np.nan  # never observed: not weighed, whatever the candidates say there
    off[0, 0] = exact[0, 0] = 1e9
    weights = combination.fit_weights(actual, np.ones(actual.shape), {"a": off, "b": exact})
    assert weights == {"a": 0.0, "b": 1.0}


def test_too_few_validation_cells_per_weight_choose_the_single_best_candidate():
    rng = np.random.default_rng(2)
    actual = rng.normal(100, 20, (2, 6))  # 12 cells: a few series, a short horizon
    candidates = {
        "network": actual + rng.normal(0, 9, actual.shape),
        "auto_ets": actual + rng.normal(0, 4, actual.shape),
        "mstl": actual - 3 + rng.normal(0, 4, actual.shape),
    }
    errors = {name: wmae(actual, c, np.ones(actual.shape)) for name, c in candidates.items()}
    best = min(errors, key=errors.get)
    chosen = combination.fit_weights(actual, np.ones(actual.shape), candidates, 5)
    assert chosen == {name: float(name == best) for name in candidates}
    # With 4 cells a weight (12 >= 3 x 4) the mix is fitted, and better on these cells.
    mixed = combination.fit_weights(actual, np.ones(actual.shape), candidates, 4)
    mix = sum(w * candidates[n] for n, w in mixed.items())
    assert wmae(actual, mix, np.ones(actual.shape)) < errors[best]


def test_the_in_graph_baselines_are_the_scored_ones_on_a_complete_history():
    rng = np.random.default_rng(1)
    histories = rng.normal(50, 10, (5, 60)).astype(np.float32)
    layer = combination.HistoryBaselines(
        ["naive", "seasonal_naive", "moving_average"], horizon=8, season=52, window=8
    )
    in_graph = keras.ops.convert_to_numpy(layer(histories))
    config = baselines.BaselineConfig(names=["naive", "seasonal_naive", "moving_average"])
    scored = baselines.forecast(config, list(histories), horizon=8, season_length=52).forecasts
    for i, name in enumerate(config.names):
        np.testing.assert_allclose(in_graph[:, :, i], scored[name], rtol=1e-5)
    # A season shorter than the horizon repeats.
    short = combination.HistoryBaselines(["seasonal_naive"], horizon=8, season=3, window=1)
    repeated = keras.ops.convert_to_numpy(short(histories[:1]))[0, :, 0]
    np.testing.assert_array_equal(repeated, np.resize(histories[0, -3:], 8))


def test_a_candidate_must_be_a_scored_baseline_and_quantiles_are_not_combined():
    with pytest.raises(ConfigError, match=r"candidates \['mstl'\] are not in baselines.names"):
        combination.require_consistent(
            combination.CombinationConfig(["mstl"]), ["naive", "seasonal_naive"], None
        )
    with pytest.raises(ConfigError, match="has no quantiles"):
        combination.require_consistent(
            combination.CombinationConfig(["naive"]), ["naive"], [0.1, 0.5, 0.9]
        )
    with pytest.raises(ConfigError, match="twice"):
        combination.CombinationConfig(["naive", "naive"])


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A fold of shop.csv and an untrained network saved as a trained model: the weights only
    need forecasts that differ."""
    root = tmp_path_factory.mktemp("shop")
    write_shop_sales(root, series=6, weeks=130)
    overrides = [f"{k}={v}" for k, v in SHOP_INGEST.items()]
    overrides += [
        f"ingest.data_dir={root}",
        "baselines.names=[naive, seasonal_naive, moving_average, mstl, svd_seasonal_naive]",
        "baselines.svd_group_by=region",
        "baselines.svd_rank=1",
        "combination.candidates=[seasonal_naive, mstl, svd_seasonal_naive]",
        "train.batch_size=4",
    ]
    config = load_config(Config, None, overrides)
    series = ingest.run(config.ingest, root / "series", 60)
    windows = series_windows.run(SeriesWindowConfig(52, 8), series, 0, root / "windows")
    network_dir = root / "network"
    network_dir.mkdir()
    keras.utils.set_random_seed(0)
    build_forecaster(ForecastModelConfig(units=4), load_spec(windows)).save(
        network_dir / "model.keras"
    )
    (network_dir / "training.json").write_text(json.dumps({"train_wall_time_s": 1.0}))
    (network_dir / "history.json").write_text("{}")
    return config, series, windows, TrainedModel(network_dir), root


def test_the_weights_never_see_the_scored_fold(shop, tmp_path):
    config, _, windows, network, _ = shop
    combined = backtest.combine(config, windows, network, tmp_path / "a")
    weights = json.loads((combined.path / combination.COMBINATION_FILE).read_text())["weights"]
    assert set(weights) == {"network", "seasonal_naive", "mstl", "svd_seasonal_naive"}
    # The scored block's actuals replaced by noise: the same weights, to the last digit.
    values = np.load(windows.path / "values.npy")
    test_steps = windows.origins("test")[0, 1] + np.arange(1, 9)
    values[:, test_steps, 0] = np.random.default_rng(0).normal(0, 1e4, (len(values), 8))
    scrambled = tmp_path / "scrambled"
    scrambled.mkdir()
    for item in windows.path.iterdir():
        (scrambled / item.name).write_bytes(item.read_bytes())
    np.save(scrambled / "values.npy", values)
    again = backtest.combine(config, type(windows)(scrambled), network, tmp_path / "b")
    assert json.loads((again.path / combination.COMBINATION_FILE).read_text())["weights"] == weights
    # ...while the validation block's actuals do move them.
    validation_steps = windows.origins("validation")[0, 1] + np.arange(1, 9)
    values[:, validation_steps, 0] *= 3
    np.save(scrambled / "values.npy", values)
    moved = backtest.combine(config, type(windows)(scrambled), network, tmp_path / "c")
    assert json.loads((moved.path / combination.COMBINATION_FILE).read_text())["weights"] != weights


def test_the_combined_model_answers_the_weighted_sum_of_its_candidates(shop, tmp_path):
    config, _, windows, network, _ = shop
    combined_artifact = backtest.combine(config, windows, network, tmp_path / "combined")
    report = json.loads((combined_artifact.path / combination.COMBINATION_FILE).read_text())
    assert report["served_inputs"] == ["baseline_mstl", "baseline_svd_seasonal_naive"]
    model = combined_artifact.load()  # through .keras serialization
    block = backtest._block(config, windows, "test")
    spec = load_spec(windows)
    reference = baselines.forecast(
        config.baselines, block.histories, spec.horizon, spec.season_length, *block.groups
    ).forecasts
    inputs = backtest._raw_inputs(windows, "test", 4)
    served = combination.predict(model, combination.with_external(inputs, model, reference), 4)
    alone = combination.predict(network.load(), inputs, 4)
    weights = report["weights"]
    expected = weights["network"] * alone + sum(
        weights[name] * reference[name] for name in config.combination.candidates
    )
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-3)
    with pytest.raises(Exception, match=r"\['mstl'\]"):
        combination.with_external(inputs, model, {"svd_seasonal_naive": reference["mstl"]})
