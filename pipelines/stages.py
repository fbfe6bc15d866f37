"""Stages every pipeline wires the same way; only which stage's metrics they judge differs."""

from __future__ import annotations

from pathlib import Path

from components import bless
from components.artifacts import Blessing
from pipelines.spec import Stage


def bless_stage(metrics_stage: str) -> Stage:
    """``bless``: judge the metrics ``metrics_stage`` wrote against the thresholds and the model
    serving now (part of the cache key, so a push or rollback since the last run re-judges)."""

    def run_bless(config, inputs: dict, out_dir: Path) -> Blessing:
        return bless.run(config.blessing, inputs[metrics_stage], config.export.model_dir, out_dir)

    return Stage(
        "bless",
        run_bless,
        Blessing,
        (metrics_stage,),
        config_sections=("blessing", "export"),
        external_state=lambda config: bless.serving_baseline(config.export.model_dir),
    )
