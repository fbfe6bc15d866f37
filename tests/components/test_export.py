import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from components import export
from components.errors import ConfigError
from components.export import ExportConfig
from pipelines import sentiment

REVIEWS = ["wonderful brilliant superb film", "awful boring terrible waste"]


def push(tiny_sentiment, serving_dir: Path, out_dir: Path):
    archive = sentiment.serving_archive(tiny_sentiment["train"], tiny_sentiment["preprocess"], 0.5)
    config = ExportConfig(model_name="sentiment", serving_dir=str(serving_dir))
    return export.run(config, archive, {"text": tf.constant(REVIEWS)}, out_dir)


def test_versions_increase_and_no_staging_is_left(tiny_sentiment, tmp_path):
    first = push(tiny_sentiment, tmp_path / "models", tmp_path / "a")
    second = push(tiny_sentiment, tmp_path / "models", tmp_path / "b")
    assert (first.version, second.version) == (1, 2)
    assert sorted(p.name for p in (tmp_path / "models" / "sentiment").iterdir()) == ["1", "2"]
    assert (second.path / "saved_model.pb").is_file()


def test_exported_model_classifies_raw_strings(tiny_sentiment, tmp_path):
    pushed = push(tiny_sentiment, tmp_path / "models", tmp_path / "out")
    serve = tf.saved_model.load(str(pushed.path)).signatures["serving_default"]
    outputs = serve(text=tf.constant(REVIEWS))
    assert outputs["label"].numpy().tolist() == [1, 0]
    assert [s.decode() for s in outputs["sentiment"].numpy()] == ["positive", "negative"]
    assert outputs["probability"].numpy()[0] > 0.5 > outputs["probability"].numpy()[1]


def test_saved_model_cli_runs_the_serving_signature(tiny_sentiment, tmp_path):
    pushed = push(tiny_sentiment, tmp_path / "models", tmp_path / "out")
    cli = Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run(
        [
            str(cli),
            "run",
            "--dir",
            str(pushed.path),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            f"text={REVIEWS!r}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Result for output key sentiment" in result.stdout
    assert "[b'positive' b'negative']" in result.stdout


def test_an_archive_that_fails_verification_is_not_pushed(tiny_sentiment, tmp_path):
    archive = sentiment.serving_archive(tiny_sentiment["train"], tiny_sentiment["preprocess"], 0.5)
    config = ExportConfig(model_name="sentiment", serving_dir=str(tmp_path / "models"))
    with pytest.raises(TypeError):
        export.run(config, archive, {"wrong_input_name": tf.constant(REVIEWS)}, tmp_path / "out")
    assert not [p for p in (tmp_path / "models" / "sentiment").iterdir() if p.name.isdigit()]


def test_model_name_must_be_a_directory_name():
    with pytest.raises(ConfigError, match="export.model_name='../x'"):
        ExportConfig(model_name="../x")
