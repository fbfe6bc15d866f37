"""Stages every pipeline wires the same way; only which stage's metrics they judge differs."""

from __future__ import annotations

from pathlib import Path

from components import bless
from components.artifacts import Blessing
from pipelines.spec import Stage


def bless_stage(metrics_stage: str) -> Stage:
    """``bless``: judge the metrics ``metrics_stage`` wrote against the thresholds and the model
    serving now (part of the cache key, so a push or rollback since the last run re-judges), and
    check that model was trained on the same data set (named in ingest's statistics)."""

    def run_bless(config, inputs: dict, out_dir: Path) -> Blessing:
        dataset = inputs["ingest"].statistics().get("dataset")
        model_dir = config.export.model_dir
        return bless.run(config.blessing, inputs[metrics_stage], model_dir, out_dir, dataset)

    return Stage(
        "bless",
        run_bless,
        Blessing,
        (metrics_stage, "ingest"),
        config_sections=("blessing", "export"),
        external_state=lambda config: bless.serving_baseline(config.export.model_dir),
    )
