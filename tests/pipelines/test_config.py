import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from components.errors import ConfigError
from pipelines.__main__ import main
from pipelines.config import flatten, load_config, split_overrides, with_overrides
from pipelines.registry import resolve_config
from pipelines.sentiment.pipeline import SentimentConfig
from tests.conftest import REPOSITORY


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


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("train.epochs=3 model.units=32", ["train.epochs=3", "model.units=32"]),
        (
            "model.quantiles=[0.1, 0.5, 0.9]  blessing.thresholds=[{metric: f1, lower_bound: 0.8}]",
            [
                "model.quantiles=[0.1, 0.5, 0.9]",
                "blessing.thresholds=[{metric: f1, lower_bound: 0.8}]",
            ],
        ),
        (
            "ingest.date_format='%d %m %Y' a={x: [1, 2]}",
            ["ingest.date_format='%d %m %Y'", "a={x: [1, 2]}"],
        ),
        ("", []),
    ],
)
def test_overrides_split_at_spaces_outside_brackets_and_quotes(text, items):
    assert split_overrides(text) == items


def test_unbalanced_overrides_are_a_clear_error():
    with pytest.raises(ConfigError, match=r"unbalanced '\]' in overrides"):
        split_overrides("model.quantiles=[0.1, 0.5")


def test_make_set_carries_yaml_lists_and_maps_to_the_config(capsys):
    """The Makefile's SET= reaches the CLI whole: run make -n, then parse what it would run."""
    value = "model.units=7 blessing.thresholds=[{metric: accuracy, lower_bound: 0.8}]"
    dry_run = subprocess.run(
        ["make", "-n", "sentiment", f"SET={value}"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (command,) = [line for line in dry_run.splitlines() if "-m pipelines run sentiment" in line]
    arguments = shlex.split(command)
    arguments = arguments[arguments.index("pipelines") + 1 :]
    assert main(["show-config", *arguments[1:]]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["model"]["units"] == 7
    assert shown["blessing"]["thresholds"][0]["metric"] == "accuracy"
    assert shown["blessing"]["thresholds"][0]["lower_bound"] == 0.8
