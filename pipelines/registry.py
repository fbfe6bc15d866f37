"""The one list of pipelines: name -> the module whose ``SPEC`` describes it.

Adding an application is a folder under ``pipelines/`` with a ``pipeline.py`` that builds a
``PipelineSpec``, its YAML configs, and a line here. Modules are imported on first use, so the
command line starts without TensorFlow until a pipeline is needed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from components.errors import ConfigError
from pipelines.config import load_config
from pipelines.spec import PipelineSpec

PIPELINES = {
    "sentiment": "pipelines.sentiment.pipeline",
    "language_model": "pipelines.language_model.pipeline",
    "sales_forecast": "pipelines.sales_forecast.pipeline",
}


def get(name: str) -> PipelineSpec:
    if name not in PIPELINES:
        raise ConfigError(f"unknown pipeline {name!r}; choose one of: {', '.join(PIPELINES)}")
    spec = importlib.import_module(PIPELINES[name]).SPEC
    if spec.name != name:
        raise ConfigError(f"{PIPELINES[name]}.SPEC is named {spec.name!r}, registered as {name!r}")
    return spec


def resolve_config(
    pipeline: str, config_path: Path | None, model: str | None, overrides: list[str]
) -> Any:
    """Defaults <- YAML (default: the pipeline's shipped config) <- model preset <- overrides."""
    spec = get(pipeline)
    preset: list[str] = []
    if model:
        if model not in spec.model_presets:
            raise ConfigError(
                f"unknown model {model!r}; choose one of: {', '.join(spec.model_presets)}"
            )
        preset = [f"{key}={value}" for key, value in spec.model_presets[model].items()]
    return load_config(spec.config_class, spec.config_path(config_path), [*preset, *overrides])
