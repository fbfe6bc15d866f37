"""Cache hits and misses of the runner: what reruns when code, config or inputs change."""

import dataclasses
import json

import mlflow
import pytest

from components.artifacts import Examples, Metrics
from pipelines import cache
from pipelines.runner import run_pipeline
from pipelines.spec import Stage


@dataclasses.dataclass
class Section:
    value: int = 1


@dataclasses.dataclass
class TwoStepConfig:
    make: Section = dataclasses.field(default_factory=Section)
    score: Section = dataclasses.field(default_factory=Section)


def stages(calls: list[str], serving: dict | None = None) -> list[Stage]:
    def make(config, inputs, out_dir):
        calls.append("make")
        out_dir.mkdir(parents=True)
        (out_dir / "statistics.json").write_text(json.dumps({"value": config.make.value}))
        return Examples(out_dir)

    def score(config, inputs, out_dir):
        calls.append("score")
        out_dir.mkdir(parents=True)
        made = json.loads(inputs["make"].path.joinpath("statistics.json").read_text())["value"]
        (out_dir / "metrics.json").write_text(json.dumps({"score": made * config.score.value}))
        return Metrics(out_dir)

    return [
        Stage("make", make, Examples, config_sections=("make",)),
        Stage(
            "score",
            score,
            Metrics,
            ("make",),
            config_sections=("score",),
            external_state=(lambda config: serving) if serving is not None else None,
        ),
    ]


def manifest(result, stage: str) -> dict:
    return json.loads((result.run_dir / stage / "manifest.json").read_text())


def test_unchanged_rerun_reuses_every_artifact(tmp_path, mlflow_store):
    calls = []
    first = run_pipeline("tiny", TwoStepConfig(), stages(calls), tmp_path)
    again = run_pipeline("tiny", TwoStepConfig(), stages(calls), tmp_path)
    assert calls == ["make", "score"]
    assert again.outputs["score"].load() == {"score": 1}
    assert again.outputs["score"].path == first.outputs["score"].path
    assert manifest(again, "score")["cached_from"] == {
        "run_id": first.run_id,
        "mlflow_run_id": manifest(first, "score")["mlflow_run_id"],
    }
    runs = mlflow.search_runs(experiment_names=["tiny"], output_format="list")
    parent = next(r for r in runs if r.info.run_id == again.mlflow_run_id)
    assert parent.data.tags["executed_stages"] == "none (all cached)"


def test_changed_config_reruns_the_stage_and_what_follows_only(tmp_path, mlflow_store):
    calls = []
    run_pipeline("tiny", TwoStepConfig(), stages(calls), tmp_path)
    run_pipeline("tiny", TwoStepConfig(score=Section(3)), stages(calls), tmp_path)
    assert calls == ["make", "score", "score"]
    changed = run_pipeline("tiny", TwoStepConfig(make=Section(2)), stages(calls), tmp_path)
    assert calls[3:] == ["make", "score"]
    assert changed.outputs["score"].load() == {"score": 2}


def test_no_cache_reruns_everything(tmp_path, mlflow_store):
    calls = []
    run_pipeline("tiny", TwoStepConfig(), stages(calls), tmp_path)
    run_pipeline("tiny", TwoStepConfig(), stages(calls), tmp_path, use_cache=False)
    assert calls == ["make", "score", "make", "score"]


def test_changed_external_state_reruns_the_stage(tmp_path, mlflow_store):
    calls = []
    run_pipeline("tiny", TwoStepConfig(), stages(calls, {"champion": 1}), tmp_path)
    run_pipeline("tiny", TwoStepConfig(), stages(calls, {"champion": 1}), tmp_path)
    run_pipeline("tiny", TwoStepConfig(), stages(calls, {"champion": 2}), tmp_path)
    assert calls == ["make", "score", "score"]


def test_modified_cached_artifact_is_not_reused(tmp_path, mlflow_store):
    calls = []
    first = run_pipeline("tiny", TwoStepConfig(), stages(calls), tmp_path)
    (first.outputs["make"].path / "statistics.json").write_text('{"value": 5}')
    run_pipeline("tiny", TwoStepConfig(), stages(calls), tmp_path)
    # make is redone; its new output has the original digest again, so score's cache still holds.
    assert calls == ["make", "score", "make"]


def test_interrupted_resumable_stage_continues_from_its_partial_work(tmp_path, mlflow_store):
    def count(config, inputs, out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        done = out_dir / "steps.txt"
        steps = done.read_text() if done.exists() else ""
        done.write_text(steps + "x")
        if len(steps) == 0:
            raise KeyboardInterrupt  # the first attempt dies after one step
        return Examples(out_dir)

    resumable = [Stage("count", count, Examples, resumable=True)]
    with pytest.raises(KeyboardInterrupt):
        run_pipeline("tiny", TwoStepConfig(), resumable, tmp_path)
    result = run_pipeline("tiny", TwoStepConfig(), resumable, tmp_path)
    assert (result.outputs["count"].path / "steps.txt").read_text() == "xx"
    assert len(manifest(result, "count")["resumed_from_mlflow_runs"]) == 2


def test_files_state_changes_with_a_files_content(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n")
    before = cache.files_state([tmp_path / "data"])
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n3,4\n")
    assert cache.files_state([tmp_path / "data"]) != before
    assert list(before) == [str((tmp_path / "data" / "train.csv").resolve())]
