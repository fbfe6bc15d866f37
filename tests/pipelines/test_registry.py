"""The registry is the one list of pipelines, and each spec is complete and consistent."""

import json

import pytest

from components.errors import ConfigError, PipelineError
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


def test_until_keeps_the_stages_up_to_the_one_named():
    spec = registry.get("sentiment")
    assert [stage.name for stage in spec.stages_to_run(tune=True, until="train")] == [
        "ingest",
        "preprocess",
        "tune",
        "train",
    ]
    assert [stage.name for stage in spec.stages_to_run(until="ingest")] == ["ingest"]
    with pytest.raises(PipelineError, match="--until 'tune': not a stage; stages are: ingest, "):
        spec.stages_to_run(until="tune")  # tune is a stage only of a --tune run


def test_an_unknown_pipeline_lists_the_registered_ones():
    with pytest.raises(
        ConfigError, match="choose one of: sentiment, language_model, sales_forecast"
    ):
        registry.get("weather")


def test_presets_then_overrides_win_over_the_yaml():
    config = registry.resolve_config("sentiment", None, "lstm", ["model.bidirectional=true"])
    assert (config.model.cell, config.model.bidirectional) == ("lstm", True)


TOY_PIPELINE = '''
"""A toy application: counts the words of a text it is given by config."""

import dataclasses
import json

from components.artifacts import Examples, Metrics
from pipelines.spec import Benchmark, PipelineSpec, Stage


@dataclasses.dataclass
class Source:
    text: str = "one two three"


@dataclasses.dataclass
class Scoring:
    per_word: float = 1.0


@dataclasses.dataclass
class ToyConfig:
    data: Source = dataclasses.field(default_factory=Source)
    evaluate: Scoring = dataclasses.field(default_factory=Scoring)
    model: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)


def run_ingest(config, inputs, out_dir):
    out_dir.mkdir(parents=True)
    (out_dir / "statistics.json").write_text(json.dumps({"words": config.data.text.split()}))
    return Examples(out_dir)


def run_evaluate(config, inputs, out_dir):
    words = json.loads((inputs["ingest"].path / "statistics.json").read_text())["words"]
    out_dir.mkdir(parents=True)
    score = {"score": len(words) * config.evaluate.per_word}
    (out_dir / "metrics.json").write_text(json.dumps(score))
    return Metrics(out_dir)


SPEC = PipelineSpec(
    name="toy",
    config_class=ToyConfig,
    default_config="toy.yaml",
    stages=[
        Stage("ingest", run_ingest, Examples, config_sections=("data",)),
        Stage("train", run_evaluate, Metrics, ("ingest",), config_sections=("evaluate",)),
    ],
    tune_stage=Stage("tune", run_evaluate, Metrics, ("ingest",), config_sections=("model",)),
    model_presets={"double": {"evaluate.per_word": 2.0}},
    compare_metrics=["test_score"],
    headline=lambda metrics: f"score {metrics['score']}",
    benchmark=Benchmark(make_target="bench-toy", runs={}, columns=lambda metrics: {}),
)
'''


def test_a_new_application_is_a_folder_its_config_and_one_registry_line(
    tmp_path, mlflow_store, monkeypatch, capsys
):
    """What ARCHITECTURE.md promises: no runner, CLI or cache code changes for a new pipeline."""
    from pipelines.__main__ import main

    (tmp_path / "toy_app").mkdir()
    (tmp_path / "toy_app" / "__init__.py").write_text("")
    (tmp_path / "toy_app" / "pipeline.py").write_text(TOY_PIPELINE)
    (tmp_path / "toy.yaml").write_text("data:\n  text: a b c d\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.PIPELINES, "toy", "toy_app.pipeline")

    arguments = ["run", "toy", "--config", str(tmp_path / "toy.yaml"), "--model", "double"]
    assert main([*arguments, "--artifacts-root", str(tmp_path / "artifacts")]) == 0
    (run_dir,) = (tmp_path / "artifacts" / "toy").glob("2*")
    assert json.loads((run_dir / "train" / "metrics" / "metrics.json").read_text()) == {
        "score": 8.0
    }
    assert main(["show-config", "toy", "--config", str(tmp_path / "toy.yaml")]) == 0
    assert "text: a b c d" in capsys.readouterr().out
