import pytest

from components.errors import ConfigError
from pipelines import benchmark


def row(model, accuracy):
    by_length = {
        "1-100": {"examples": 3, "accuracy": 0.9},
        "over_100": {"examples": 1, "accuracy": 0.5},
    }
    metrics = {
        "accuracy": accuracy,
        "roc_auc": 0.9,
        "f1": 0.8,
        "examples": 4,
        "by_length": by_length,
    }
    return {
        "model": model,
        "parameters": 1234,
        "epochs_run": 3,
        "best_epoch": 2,
        "train_wall_time_s": 90.0,
        "train_reviews_per_s": 500.0,
        "metrics": metrics,
    }


def test_table_has_a_row_per_model_with_length_slices():
    table = benchmark._table([row("lstm", 0.85), row("bigru", 0.88)])
    lines = table.splitlines()
    assert "acc. 1-100 words" in lines[0] and "acc. over_100 words" in lines[0]
    assert (
        lines[2].startswith("| lstm | **0.8500** |")
        and "1.5 min" in lines[2]
        and "1,234" in lines[2]
    )
    assert len(lines) == 4


def test_section_is_replaced_and_the_rest_of_the_file_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nintro kept\n")
    benchmark._write_section(path, "sentiment", "first")
    benchmark._write_section(path, "sentiment", "second")
    text = path.read_text()
    assert "intro kept" in text and "second" in text and "first" not in text
    assert text.count("<!-- bench:sentiment:start -->") == 1


def test_unknown_benchmark_run_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match="choose from: simplernn, lstm, gru, bilstm, bigru"):
        benchmark.run("sentiment", ["transformer"], tmp_path / "B.md", [])
