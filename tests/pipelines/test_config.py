from pathlib import Path

import pytest

from components.errors import ConfigError
from pipelines.config import flatten, load_config, with_overrides
from pipelines.registry import resolve_config
from pipelines.sentiment.pipeline import SentimentConfig


def test_defaults_yaml_preset_and_overrides_apply_in_order(tmp_path):
    yaml = tmp_path / "c.yaml"
    yaml.write_text("train:\n  epochs: 9\nmodel:\n  cell: lstm\n")
    config = resolve_config("sentiment", yaml, "bigru", ["train.epochs=3", "model.units=32"])
    assert (
        config.train.epochs,
        config.model.cell,
        config.model.bidirectional,
        config.model.units,
    ) == (3, "gru", True, 32)
    assert config.preprocess.vocabulary_size == SentimentConfig().preprocess.vocabulary_size


def test_flatten_gives_dotted_keys():
    flat = flatten(SentimentConfig())
    assert flat["train.clipnorm"] == 1.0 and flat["model.cell"] == "gru"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.epochz=3"], "epochz"),
        (["train.epochs=many"], "epochs"),
        (["model.cell=transformer"], "choose one of: simple_rnn, lstm, gru"),
        (["epochs"], "key.sub=value"),
    ],
)
def test_bad_overrides_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SentimentConfig, None, overrides)


def test_with_overrides_returns_a_validated_copy():
    config = SentimentConfig()
    tuned = with_overrides(config, {"model.cell": "lstm", "train.learning_rate": 0.01})
    assert (tuned.model.cell, tuned.train.learning_rate) == ("lstm", 0.01)
    assert config.model.cell == "gru"  # the original is untouched
    with pytest.raises(ConfigError, match="bidirectionall"):
        with_overrides(config, {"model.bidirectionall": True})
    with pytest.raises(ConfigError, match="choose one of: simple_rnn, lstm, gru"):
        with_overrides(config, {"model.cell": "cnn"})


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(
        ConfigError, match="unknown model 'cnn'; choose one of: simplernn, lstm, gru"
    ):
        resolve_config("sentiment", None, "cnn", [])


def test_missing_config_file_is_named():
    with pytest.raises(ConfigError, match="config file nowhere.yaml does not exist"):
        load_config(SentimentConfig, Path("nowhere.yaml"))


@pytest.mark.parametrize("name", ["sentiment.yaml", "sentiment.smoke.yaml"])
def test_shipped_configs_load(name):
    assert (
        resolve_config("sentiment", Path("pipelines/configs") / name, None, []).export.model_name
        == "sentiment"
    )
