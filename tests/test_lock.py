"""requirements.lock stays what pyproject.toml compiles to (tools/lock.py); no network."""

import shutil

from tools import lock


def test_the_lock_matches_pyproject():
    assert lock.mismatches(lock.PYPROJECT, lock.LOCK) == []
    locked = lock.pins(lock.LOCK.read_text().splitlines())
    assert len(locked) > 100 and {"tensorflow", "mlflow", "psycopg-binary", "pytest"} <= set(locked)


def test_a_pin_changed_without_make_lock_is_named(tmp_path):
    pyproject, stale = tmp_path / "pyproject.toml", tmp_path / "requirements.lock"
    shutil.copy(lock.LOCK, stale)
    text = lock.PYPROJECT.read_text()
    pyproject.write_text(text.replace('"keras-tuner==1.4.8"', '"keras-tuner==1.4.7"'))
    assert lock.mismatches(pyproject, stale) == [
        "pyproject.toml pins keras-tuner==1.4.7, requirements.lock has 1.4.8",
        "requirements.lock was not compiled from this pyproject.toml: run `make lock`",
    ]


def test_a_new_unpinned_dependency_makes_the_lock_stale(tmp_path):
    pyproject, stale = tmp_path / "pyproject.toml", tmp_path / "requirements.lock"
    shutil.copy(lock.LOCK, stale)
    text = lock.PYPROJECT.read_text()
    pyproject.write_text(text.replace("dependencies = [\n", 'dependencies = [\n    "rich",\n', 1))
    assert lock.mismatches(pyproject, stale) == [
        "requirements.lock was not compiled from this pyproject.toml: run `make lock`"
    ]
    assert lock.mismatches(pyproject, tmp_path / "none.lock") == [
        "none.lock is missing: run `make lock`"
    ]


def test_names_compare_as_pip_does():
    lines = ["Keras_Tuner==1.4.8", "psycopg[binary]==3.3.9 ; python_version >= '3.10'", "# x==1"]
    assert lock.pins(lines) == {"keras-tuner": "1.4.8", "psycopg": "3.3.9"}
