"""Lineage from a served version back to the data, through the manifests the runner writes."""

import dataclasses
import json

import pytest

from components.artifacts import Examples, Metrics, PushedModel
from components.errors import DataError
from pipelines import lineage
from pipelines.__main__ import main
from pipelines.runner import run_pipeline
from pipelines.spec import Stage


@dataclasses.dataclass
class Source:
    path: str = "reviews.csv"


@dataclasses.dataclass
class TinyConfig:
    data: Source = dataclasses.field(default_factory=Source)


def ingest(config, inputs, out_dir):
    out_dir.mkdir(parents=True)
    (out_dir / "statistics.json").write_text(json.dumps({"rows": 3}))
    return Examples(out_dir)


def evaluate(config, inputs, out_dir):
    out_dir.mkdir(parents=True)
    (out_dir / "metrics.json").write_text(json.dumps({"accuracy": 0.91}))
    return Metrics(out_dir)


def push_to(serving_dir):
    def push(config, inputs, out_dir):
        version = serving_dir / "tiny" / "1"
        version.mkdir(parents=True)
        out_dir.mkdir(parents=True)
        record = {"pushed": True, "path": str(version), "version": 1}
        (out_dir / "push.json").write_text(json.dumps(record))
        return PushedModel(out_dir)

    return push


def stages(serving_dir):
    return [
        Stage(
            "ingest",
            ingest,
            Examples,
            config_sections=("data",),
            external_state=lambda config: {"/data/reviews.csv": [1234, 0]},
        ),
        Stage("evaluate", evaluate, Metrics, ("ingest",)),
        Stage("export", push_to(serving_dir), PushedModel, ("ingest", "evaluate")),
    ]


def test_served_version_leads_back_to_the_ingested_data(tmp_path, mlflow_store, capsys):
    result = run_pipeline("tiny", TinyConfig(), stages(tmp_path / "models"), tmp_path / "art")
    run_pipeline("tiny", TinyConfig(), stages(tmp_path / "models"), tmp_path / "art")  # cached

    chain = lineage.run(tmp_path / "models" / "tiny" / "1", tmp_path / "art")
    assert [m["component"] for m in chain] == ["ingest", "evaluate", "export"]
    assert {m["run_id"] for m in chain} == {result.run_id}  # the producers, not the cache hits
    assert chain[0]["output"]["digest"] == result.outputs["ingest"].digest()

    assert main(["lineage", str(tmp_path / "models/tiny/1"), "--artifacts-root", "art"]) == 0
    printed = capsys.readouterr().out
    assert "config data: path=reviews.csv" in printed
    assert "data file /data/reviews.csv: 1,234 bytes" in printed
    assert "statistics.json: rows=3" in printed and "metrics.json: accuracy=0.91" in printed
    assert f"pipeline run {result.mlflow_run_id}" in printed


def test_a_file_inside_an_artifact_has_the_artifacts_lineage(tmp_path, mlflow_store):
    result = run_pipeline("tiny", TinyConfig(), stages(tmp_path / "models"), tmp_path / "art")
    chain = lineage.run(result.outputs["evaluate"].path / "metrics.json", tmp_path / "art")
    assert [m["component"] for m in chain] == ["ingest", "evaluate"]


def test_unknown_path_says_where_it_looked(tmp_path):
    with pytest.raises(DataError, match="no pipeline run under .* produced"):
        lineage.run(tmp_path / "elsewhere", tmp_path / "art")
