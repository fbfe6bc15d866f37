import dataclasses
import json

import mlflow
import pytest

from components.artifacts import Examples, Metrics
from components.errors import DataError, PipelineError
from pipelines.runner import load_outputs, run_pipeline
from pipelines.spec import Stage


@dataclasses.dataclass
class TinyConfig:
    @dataclasses.dataclass
    class Step:
        value: int = 1

    make: Step = dataclasses.field(default_factory=Step)


def make(config, inputs, out_dir):
    out_dir.mkdir(parents=True)
    (out_dir / "statistics.json").write_text(json.dumps({"value": config.make.value}))
    return Examples(out_dir)


def score(config, inputs, out_dir):
    out_dir.mkdir(parents=True)
    (out_dir / "metrics.json").write_text(
        inputs["make"].path.joinpath("statistics.json").read_text()
    )
    return Metrics(out_dir)


def explode(config, inputs, out_dir):
    out_dir.mkdir(parents=True)
    (out_dir / "half-written.json").write_text("{")
    raise DataError("bad data in row 3")


STAGES = [
    Stage("make", make, Examples, config_sections=("make",)),
    Stage("score", score, Metrics, ("make",)),
]


def test_stages_run_in_order_with_manifests_and_mlflow_runs(tmp_path, mlflow_store):
    result = run_pipeline("tiny", TinyConfig(), STAGES, tmp_path / "artifacts")
    assert result.outputs["score"].load() == {"value": 1}
    assert (result.run_dir / "config.yaml").read_text().startswith("make:")
    manifest = json.loads((result.run_dir / "score" / "manifest.json").read_text())
    assert manifest["inputs"]["make"]["digest"] == result.outputs["make"].digest()
    assert manifest["output"]["path"] == str(result.run_dir / "score" / "metrics")
    assert json.loads((result.run_dir / "make" / "manifest.json").read_text())["config"] == {
        "make": {"value": 1}
    }

    runs = mlflow.search_runs(experiment_names=["tiny"], output_format="list")
    parent = next(r for r in runs if r.info.run_id == result.mlflow_run_id)
    children = {
        r.info.run_name: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert set(children) == {"make", "score"} and all(
        r.info.status == "FINISHED" for r in children.values()
    )
    assert parent.data.params["make.value"] == "1"


def test_failed_stage_is_marked_failed_and_leaves_no_artifact(tmp_path, mlflow_store):
    stages = [STAGES[0], Stage("score", explode, Metrics, ("make",))]
    with pytest.raises(DataError, match="bad data in row 3"):
        run_pipeline("tiny", TinyConfig(), stages, tmp_path / "artifacts")
    (run_dir,) = (tmp_path / "artifacts" / "tiny").glob("2*")
    assert (run_dir / "make" / "manifest.json").is_file()
    assert not (run_dir / "score").exists()
    runs = {
        r.info.run_name: r
        for r in mlflow.search_runs(experiment_names=["tiny"], output_format="list")
    }
    assert runs["score"].info.status == "FAILED"
    assert runs["score"].data.tags["error"] == "DataError: bad data in row 3"
    assert runs[f"tiny-{run_dir.name}"].info.status == "FAILED"


def test_single_stage_reuses_upstream_artifacts_of_an_earlier_run(tmp_path, mlflow_store):
    first = run_pipeline("tiny", TinyConfig(), STAGES, tmp_path / "artifacts")
    again = run_pipeline(
        "tiny", TinyConfig(), STAGES, tmp_path / "artifacts", only="score", from_run=first.run_id
    )
    assert again.outputs["make"].path == first.outputs["make"].path
    assert sorted(load_outputs(again.run_dir)) == ["score"]


def test_single_stage_without_its_inputs_says_what_is_missing(tmp_path, mlflow_store):
    with pytest.raises(PipelineError, match=r"stage score needs the output of \['make'\]"):
        run_pipeline("tiny", TinyConfig(), STAGES, tmp_path / "artifacts", only="score")


def test_stage_returning_the_wrong_artifact_type_fails(tmp_path, mlflow_store):
    with pytest.raises(PipelineError, match="returned Examples, expected Metrics"):
        run_pipeline(
            "tiny",
            TinyConfig(),
            [Stage("make", make, Metrics, config_sections=("make",))],
            tmp_path / "artifacts",
        )


def test_a_stage_sees_only_the_config_sections_it_declares(tmp_path, mlflow_store):
    """Reading an undeclared section fails (it would be missing from the cache key)."""
    undeclared = Stage("make", make, Examples)
    with pytest.raises(PipelineError, match="stage make read config section 'make' without"):
        run_pipeline("tiny", TinyConfig(), [undeclared], tmp_path / "artifacts")
    declared_elsewhere = [STAGES[0], Stage("score", make, Metrics, ("make",))]
    with pytest.raises(PipelineError, match=r"declared: none"):
        run_pipeline("tiny", TinyConfig(), declared_elsewhere, tmp_path / "artifacts")
