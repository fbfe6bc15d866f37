"""The registry is the one list of pipelines, and each spec is complete and consistent."""

import pytest

from components.errors import ConfigError
from pipelines import registry
from pipelines.spec import CONFIG_DIR


@pytest.mark.parametrize("name", list(registry.PIPELINES))
def test_each_registered_pipeline_has_a_consistent_spec(name):
    spec = registry.get(name)
    assert spec.name == name
    assert (CONFIG_DIR / spec.default_config).is_file()
    names = [stage.name for stage in spec.stages_to_run(tune=True)]
    assert names.index("tune") == names.index("train") - 1
    assert "tune" not in [stage.name for stage in spec.stages_to_run()]
    produced = set()
    for stage in spec.stages_to_run(tune=True):
        assert set(stage.inputs) <= produced, f"{stage.name} needs a later stage's output"
        produced.add(stage.name)
    for run in spec.benchmark.runs.values():
        assert (CONFIG_DIR / run.config_file).is_file()
        assert run.preset is None or run.preset in spec.model_presets
    assert spec.benchmark.stage in produced
    for preset in spec.model_presets:  # every preset gives a valid config
        registry.resolve_config(name, None, preset, [])


def test_an_unknown_pipeline_lists_the_registered_ones():
    with pytest.raises(
        ConfigError, match="choose one of: sentiment, language_model, sales_forecast"
    ):
        registry.get("weather")


def test_presets_then_overrides_win_over_the_yaml():
    config = registry.resolve_config("sentiment", None, "lstm", ["model.bidirectional=true"])
    assert (config.model.cell, config.model.bidirectional) == ("lstm", True)
