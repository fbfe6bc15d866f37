import pytest

from pipelines.__main__ import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert all(command in printed for command in ("run", "show-config", "bench"))


def test_show_config_prints_the_resolved_yaml(capsys):
    assert main(["show-config", "sentiment", "--model", "bilstm", "--set", "train.epochs=2"]) == 0
    printed = capsys.readouterr().out
    assert "cell: lstm" in printed and "bidirectional: true" in printed and "epochs: 2" in printed


def test_unknown_model_type_is_a_clear_error(capsys):
    assert main(["show-config", "sentiment", "--set", "model.cell=cnn"]) == 2
    assert (
        "model.cell='cnn' is not a known model type; choose one of: simple_rnn, lstm, gru"
        in capsys.readouterr().err
    )


def test_missing_data_path_is_a_clear_error(tmp_path, mlflow_store, capsys):
    code = main(
        [
            "run",
            "sentiment",
            "--set",
            "data.source=local",
            "--set",
            f"data.data_dir={tmp_path / 'none'}",
            "--artifacts-root",
            str(tmp_path / "artifacts"),
        ]
    )
    assert code == 2
    assert "IMDB data not found" in capsys.readouterr().err


def test_generate_without_an_exported_model_says_how_to_get_one(tmp_path, capsys):
    assert main(["generate", "--serving-dir", str(tmp_path), "--prompt", "ROMEO:"]) == 2
    error = capsys.readouterr().err
    assert "no exported version" in error and "make lm-char" in error


def test_until_and_stage_together_are_refused(tmp_path, capsys):
    arguments = ["run", "sentiment", "--stage", "train", "--until", "evaluate"]
    assert main([*arguments, "--artifacts-root", str(tmp_path)]) == 2
    assert "--until runs the stages up to one, --stage a single one" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any run directory was made
