"""The shipped sales blessing gate end to end: a good model is pushed, a worse one after it is not.

Every other sales pipeline test turns the gate off (a minute of training cannot meet the Walmart
bars). Here the smoke config runs with the ``blessing`` section of the shipped
``sales_forecast.yaml`` on sales made for it: they double in promotion weeks, which the model
knows ahead (a known-future column) and last year's same week (seasonal naive) does not, so a
small model trained for seconds beats seasonal naive by far (skill 0.45-0.8 here): the shipped
gate asks it to beat the best baseline and to stay within 2% of the champion's WMAE.
"""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from components.versions import list_versions
from tests.conftest import CONFIGS, SHOP_INGEST
from tests.pipelines.sales_forecast.test_pipeline import run_pipeline

pytestmark = pytest.mark.e2e
MODEL_NAME = "sales_gated"


def write_promotion_sales(folder: Path, series: int = 8, weeks: int = 120, seed: int = 0) -> None:
    """``shop.csv`` in the columns ``SHOP_INGEST`` reads: units double in promotion weeks (3 in
    10, at random), plus 2% noise; no yearly cycle."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-01-04", periods=weeks, freq="W-MON")
    rows = []
    for index in range(series):
        level = 50.0 * (index + 1)
        promo = rng.random(weeks) < 0.3
        units = level * (1 + promo) + rng.normal(0, 0.02 * level, weeks)
        for date, value, flag in zip(dates, units, promo, strict=True):
            rows.append((f"SKU{index}", f"{date:%d/%m/%Y}", round(value, 2), flag, "NS"[index % 2]))
    folder.mkdir(parents=True, exist_ok=True)
    columns = ["sku", "week", "units", "promo", "region"]
    pd.DataFrame(rows, columns=columns).to_csv(folder / "shop.csv", index=False)


def smoke_config_with_the_shipped_gate(folder: Path) -> Path:
    smoke = OmegaConf.load(CONFIGS / "sales_forecast.smoke.yaml")
    smoke.blessing = OmegaConf.load(CONFIGS / "sales_forecast.yaml").blessing
    path = folder / "sales_forecast.gated.yaml"
    OmegaConf.save(smoke, path)
    return path


def stage_output(run_dir: Path, stage: str, name: str) -> dict:
    (folder,) = [path for path in (run_dir / stage).iterdir() if path.is_dir()]
    return json.loads((folder / name).read_text())


def test_the_shipped_gate_pushes_a_good_model_and_blocks_a_worse_one(tmp_path, mlflow_store):
    data = tmp_path / "data"
    write_promotion_sales(data)
    config = smoke_config_with_the_shipped_gate(tmp_path)
    shipped = OmegaConf.load(config).blessing
    assert (shipped.baseline, shipped.champion_tolerance) == ("require", 0.02)
    settings = {
        **SHOP_INGEST,
        "ingest.data_dir": str(data),
        "model.seasonal_residual": "false",  # promotions, not last year, drive these sales
        "ensemble.members": "[]",  # one model: the gate is under test here, not the ensemble
        "train.epochs": "10",
        "train.batch_size": "16",
        "train.learning_rate": "0.01",
        "train.early_stopping_patience": "10",
        "baselines.names": "[seasonal_naive]",
        "backtest.folds": "1",
        "export.model_name": MODEL_NAME,
    }
    served = tmp_path / "models" / MODEL_NAME

    good = run_pipeline(tmp_path, config, settings)
    verdict = stage_output(good, "bless", "blessing.json")
    comparison = verdict["metrics"]["baseline_comparison"]
    good_wmae, naive = comparison["model"], comparison["baseline"]
    assert verdict["blessed"], verdict["reasons"]
    assert verdict["reasons"] == [
        f"wmae {good_wmae:.6g} beats the best simple baseline, seasonal_naive {naive:.6g}: pass",
        "wmae: no model is served yet, champion check skipped",
    ]
    assert stage_output(good, "export", "push.json")["pushed"]
    assert list_versions(served) == [1]

    # One epoch at a learning rate 1000x smaller: the model is barely trained.
    worse = run_pipeline(
        tmp_path, config, {**settings, "train.epochs": "1", "train.learning_rate": "0.00001"}
    )
    verdict = stage_output(worse, "bless", "blessing.json")
    assert not verdict["blessed"]
    assert verdict["baseline"]["version"] == 1
    assert verdict["baseline"]["source"] == "registry"
    wmae = verdict["metrics"]["baseline_comparison"]["model"]
    assert wmae > naive and wmae > 1.02 * good_wmae
    assert verdict["reasons"] == [
        f"wmae {wmae:.6g} does not beat the best simple baseline, seasonal_naive {naive:.6g}: FAIL",
        f"wmae {wmae:.6g} vs {good_wmae:.6g} of serving version 1: worse by "
        f"{wmae - good_wmae:.6g}, at most 2.0% = {0.02 * good_wmae:.6g}: FAIL",
    ]
    push = stage_output(worse, "export", "push.json")
    assert not push["pushed"]
    assert push["reason"] == f"not blessed: {'; '.join(verdict['reasons'])}"
    assert list_versions(served) == [1]
    champion = mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion")
    assert int(champion.version) == 1
