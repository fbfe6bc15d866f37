"""The cache with the real pipelines' stages: a stage reruns when a config value it reads changes,
and is reused otherwise. The runner hands each stage only the sections it declares (reading
another fails), so its declared sections are exactly what its cache key must cover."""

from __future__ import annotations

import dataclasses
import json

import pytest

from components.errors import ConfigError
from pipelines import registry
from pipelines.config import flatten, narrowed
from pipelines.registry import resolve_config
from pipelines.runner import run_pipeline
from tests.conftest import CONFIGS, write_acl_imdb


@pytest.mark.parametrize("name", list(registry.PIPELINES))
def test_every_stage_declares_sections_its_config_has(name):
    spec = registry.get(name)
    config = resolve_config(name, None, None, [])
    for stage in [*spec.stages, spec.tune_stage]:
        view = narrowed(config, stage.config_sections, stage.name)
        assert flatten(view) == {
            f"{section}.{key}": value
            for section in stage.config_sections
            for key, value in flatten(getattr(config, section)).items()
        }


@pytest.mark.parametrize("name", list(registry.PIPELINES))
def test_the_stages_after_tune_read_every_section_tune_searches(name):
    """A tuned value reaches a stage through its declared sections only."""
    spec = registry.get(name)
    train = next(stage for stage in spec.stages if stage.name == "train")
    assert {"model", "train"} <= set(train.config_sections)
    assert {"tune", "model", "train"} <= set(spec.tune_stage.config_sections)


def test_an_unknown_declared_section_is_a_clear_error():
    config = resolve_config("sentiment", None, None, [])
    with pytest.raises(ConfigError, match=r"stage train declares config sections \['windows'\]"):
        narrowed(config, ("model", "windows"), "train")


def executed(result) -> set[str]:
    """The stages of a run that ran rather than came from the cache."""
    return {
        stage
        for stage in result.outputs
        if "cached_from" not in json.loads((result.run_dir / stage / "manifest.json").read_text())
    }


@pytest.mark.e2e
def test_sentiment_stages_rerun_exactly_when_what_they_read_changes(tmp_path, mlflow_store):
    mirror = write_acl_imdb(tmp_path / "mirror", per_split=40).parent
    base = [
        "data.source=local",
        f"data.data_dir={mirror}",
        "preprocess.sequence_length=30",
        "model.units=4",
        "model.embedding_dim=8",
        "train.epochs=1",
        "blessing.thresholds=[]",
        "export.register=false",
        f"export.serving_dir={tmp_path / 'models'}",
    ]
    spec = registry.get("sentiment")

    def run(*overrides: str, until: str = "export"):
        """The pipeline up to stage ``until``: the stages after it would only add time."""
        config = resolve_config(
            "sentiment", CONFIGS / "sentiment.smoke.yaml", None, [*base, *overrides]
        )
        stages = spec.stages_to_run(until=until)
        return run_pipeline("sentiment", config, stages, tmp_path / "artifacts")

    everything = {"ingest", "preprocess", "train", "ngrams", "stack", "evaluate", "bless", "export"}
    assert executed(run()) == everything
    # The push changed what serves, which the blessing compares against: bless judges again
    # (and export finds that very model serving); after that nothing has changed.
    assert executed(run()) == {"bless", "export"}
    assert executed(run()) == set()
    # The model section is read by train only; the stacking weights, evaluate and export follow
    # its new output, and bless judges the new metrics; the n-gram branch is reused.
    assert executed(run("model.units=5")) == {"train", "stack", "evaluate", "bless", "export"}
    # The ngrams section is read by the n-gram branch only: the recurrent model is reused.
    rerun = executed(run("ngrams.ngram_max=2", until="evaluate"))
    assert rerun == {"ngrams", "stack", "evaluate"}
    # evaluate.batch_size is read by evaluate alone: nothing upstream of it reruns.
    assert executed(run("evaluate.batch_size=7", until="evaluate")) == {"evaluate"}
    rerun = executed(run("preprocess.vocabulary_size=2999", until="evaluate"))
    assert rerun == {"preprocess", "train", "stack", "evaluate"}
    # ingest reads data and ingest: a new seed for the validation split reruns it.
    assert executed(run("ingest.seed=7", until="ingest")) == {"ingest"}


@pytest.mark.e2e
def test_language_model_stages_rerun_exactly_when_what_they_read_changes(tmp_path, mlflow_store):
    """Up to evaluate: how bless and export rerun after a push is the sentiment test's part."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 300)
    base = [
        "data.corpus=text",
        f"data.path={corpus}",
        "model.units=8",
        "train.batch_size=4",
        "train.epochs=1",
        "evaluate.sample_tokens=5",
    ]
    spec = registry.get("language_model")
    stages = spec.stages_to_run(until="evaluate")

    def run(*overrides: str):
        path = CONFIGS / "language_model.smoke.yaml"
        config = resolve_config("language_model", path, None, [*base, *overrides])
        return run_pipeline("language_model", config, stages, tmp_path / "artifacts")

    assert executed(run()) == {"ingest", "tokenize", "train", "evaluate"}
    assert executed(run()) == set()
    # Generation settings are read by evaluate (the sample) and by train (its per-epoch samples).
    assert executed(run("evaluate.temperature=0.5")) == {"train", "evaluate"}
    assert executed(run("windows.num_steps=16")) == {"train", "evaluate"}


def test_a_config_copy_keeps_the_narrowed_view_honest():
    """``dataclasses.replace`` on a narrowed view (as tune does per trial) keeps it narrowed."""
    config = resolve_config("sentiment", None, None, [])
    view = narrowed(config, ("model", "train"), "tune")
    copy = dataclasses.replace(view, model=dataclasses.replace(view.model, units=3))
    assert copy.model.units == 3
    with pytest.raises(ConfigError, match="without declaring it"):
        _ = copy.evaluate
