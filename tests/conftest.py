"""Shared fixtures: an isolated MLflow store, tiny synthetic reviews, an aclImdb tree of them.

Also the session's guard on the repository: Hypothesis stores its files in a temporary folder, and
a session that leaves anything new under the repository fails (see ``pytest_sessionfinish``)."""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest

POSITIVE_WORDS = ["great", "wonderful", "brilliant", "loved", "superb", "moving", "excellent"]
NEGATIVE_WORDS = ["awful", "boring", "terrible", "hated", "dull", "worst", "waste"]
FILLER_WORDS = ["the", "movie", "plot", "actors", "film", "was", "and", "a", "scene", "story"]
REPOSITORY = Path(__file__).resolve().parents[1]
CONFIGS = REPOSITORY / "pipelines" / "configs"
SHARED_DATA = REPOSITORY.parent / "shared" / "data"


# Hypothesis reads this when it first stores something (its constants/ and unicode_data/ caches,
# written even with database=None), not at import, so setting it here, as pytest loads this file
# and before any test runs, is in time. Without it they land in .hypothesis/ of the working
# directory, the repository under `make test`. pytest-xdist workers (and any subprocess) inherit
# the folder of the process that started them; the process that made it removes it.
_INHERITED_STORAGE = os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get(
    "HYPOTHESIS_STORAGE_DIRECTORY"
)
HYPOTHESIS_STORAGE = _INHERITED_STORAGE or tempfile.mkdtemp(prefix="hypothesis-")
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = HYPOTHESIS_STORAGE

# What the session check leaves aside: what exists to run the tests at all (the virtual
# environment, the package metadata and build folder `pip install -e .` writes), caches Python
# and pytest make themselves (__pycache__, .pytest_cache), and git's own folder. Everything else
# counts, files git ignores included (artifacts/, mlruns/, mlflow.db, .hypothesis/ ...): a test
# writes only under tmp paths. A pipeline or benchmark run in the same checkout while the tests
# run would be reported too: run those in another checkout.
UNCHECKED_NAMES = {".git", ".venv", "__pycache__", ".pytest_cache"}
UNCHECKED_TOP_LEVEL = {"build"}
NEW_IN_REPOSITORY = pytest.StashKey[list[str]]()
REPOSITORY_BEFORE = pytest.StashKey[set[str]]()


def repository_paths(root: Path = REPOSITORY) -> set[str]:
    """Every file and folder under ``root`` (relative, ``/``-separated), the unchecked aside."""
    paths = set()
    for folder, folders, files in os.walk(root):
        relative = Path(folder).relative_to(root)
        folders[:] = [
            name
            for name in folders
            if name not in UNCHECKED_NAMES
            and not name.endswith(".egg-info")
            and not (relative == Path(".") and name in UNCHECKED_TOP_LEVEL)
        ]
        paths.update((relative / name).as_posix() for name in folders + files)
    return paths


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Take stock of the repository. Under pytest-xdist only the controlling process does, before
    its workers start and after they have all finished."""
    if not _is_xdist_worker(session.config):
        session.config.stash[REPOSITORY_BEFORE] = repository_paths()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the session if the repository holds a path it did not hold at the start."""
    before = session.config.stash.get(REPOSITORY_BEFORE, None)
    if before is None:
        return
    new = sorted(repository_paths() - before)
    session.config.stash[NEW_IN_REPOSITORY] = new
    if new:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _INHERITED_STORAGE:
        shutil.rmtree(HYPOTHESIS_STORAGE, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    new = config.stash.get(NEW_IN_REPOSITORY, [])
    if new:
        terminalreporter.section("tests wrote into the repository", red=True)
        for path in new[:20]:
            terminalreporter.write_line(f"new: {REPOSITORY.name}/{path}")
        if len(new) > 20:
            terminalreporter.write_line(f"... and {len(new) - 20} more")
        terminalreporter.write_line("tests write only under tmp paths (tmp_path, tmp_path_factory)")


def synthetic_review(label: int, rng: random.Random, length: int = 20) -> str:
    """Filler words with a few sentiment words of the given label mixed in."""
    cue = POSITIVE_WORDS if label else NEGATIVE_WORDS
    words = [rng.choice(FILLER_WORDS) for _ in range(length)]
    for position in rng.sample(range(length), 3):
        words[position] = rng.choice(cue)
    return " ".join(words) + ".<br /><br />" + rng.choice(FILLER_WORDS)


def text_examples(texts: list[str]) -> list[bytes]:
    """Serialized tf.Examples with a ``text`` bytes feature each, as the ``classify`` API takes."""
    import tensorflow as tf

    def feature(text: str):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()]))

    return [
        tf.train.Example(
            features=tf.train.Features(feature={"text": feature(text)})
        ).SerializeToString()
        for text in texts
    ]


def synthetic_reviews(count: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(synthetic_review(i % 2, rng), i % 2) for i in range(count)]


def write_acl_imdb(root: Path, per_split: int = 40, seed: int = 0) -> Path:
    """An ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` tree of synthetic reviews."""
    for split_index, split in enumerate(("train", "test")):
        for index, (text, label) in enumerate(synthetic_reviews(per_split, seed + split_index)):
            folder = root / "aclImdb" / split / ("pos" if label else "neg")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index}_{8 if label else 2}.txt").write_text(text, encoding="utf-8")
    return root / "aclImdb"


def wait_for_epochs(process: subprocess.Popen, pipeline_dir: Path, epochs: int) -> None:
    """Block until the run's training attempt has logged (and so backed up) ``epochs`` epochs, so
    a test can kill it mid-training."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        for log in pipeline_dir.glob(".partial/train-*/trained_model/epochs.csv"):
            if len(log.read_text().splitlines()) > epochs:  # a header line, then one per epoch
                return
        time.sleep(0.05)
    raise AssertionError(f"training logged fewer than {epochs} epochs in 300 s")


def pytest_collection_modifyitems(items):
    """Mark e2e every test that needs ``exported_models`` (tests/serving/conftest.py), directly or
    through another fixture: building it runs the language-model and sales pipelines. A mark on
    the fixture itself would do nothing, and one per test is easily forgotten.

    Then order the files for pytest-xdist, which hands them out in this order as its processes
    free up (with ``--no-loadscope-reorder``, as the Makefile runs it): the long files (those with
    e2e tests) first and the short ones to fill the end. Of the files that need
    ``exported_models``, one goes first and the others after every other long file: the first
    process builds the models while the second runs a long file of its own, instead of waiting
    for the build."""
    served = []
    for item in items:
        if "exported_models" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
            served.append(item.path)
    long_files = {item.path for item in items if item.get_closest_marker("e2e")}
    builder = served[0] if served else None
    items.sort(  # stable: each file stays whole
        key=lambda item: (item.path != builder, item.path not in long_files, item.path in served)
    )


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """A SQLite MLflow store with its schema migrated and no experiment in it, for tests to copy:
    migrating a new store takes MLflow seconds, copying the file none. Without experiment 0, each
    copy creates its own Default experiment, with artifacts under the working directory it is
    first opened from."""
    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()  # creates and migrates it
    with sqlite3.connect(path) as database:
        database.execute("DELETE FROM experiment_tags")
        database.execute("DELETE FROM experiments")
    return path


def use_fresh_mlflow_store(patch: pytest.MonkeyPatch, empty_mlflow_db: Path, folder: Path) -> str:
    """Copy ``empty_mlflow_db`` into ``folder``, make it the tracking store and ``folder`` the
    working directory (so mlruns/ lands there); its URI. ``patch`` undoes all but the store."""
    patch.chdir(folder)
    shutil.copyfile(empty_mlflow_db, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # Forget the experiment an earlier test made active: its id does not exist in this store.
    mlflow.set_experiment("Default")
    return uri


@pytest.fixture(scope="module")
def module_mlflow_store(tmp_path_factory, empty_mlflow_db) -> Iterator[Path]:
    """As ``mlflow_store``, for a pipeline run that a module's tests share: a fresh store in a
    folder of the module's own (yielded), the working directory while they run."""
    root = tmp_path_factory.mktemp("module_store")
    with pytest.MonkeyPatch.context() as patch:
        use_fresh_mlflow_store(patch, empty_mlflow_db, root)
        yield root


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch, empty_mlflow_db) -> str:
    """A fresh SQLite MLflow store in tmp, also the working directory."""
    yield use_fresh_mlflow_store(monkeypatch, empty_mlflow_db, tmp_path)
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def acl_imdb(tmp_path) -> Path:
    return write_acl_imdb(tmp_path / "mirror")


@pytest.fixture
def imdb_mirror(monkeypatch) -> Path:
    """The real IMDB mirror (``$RNN_DATA_DIR`` or ../shared/data), for tests on slices of it."""
    data_dir = Path(os.environ.get("RNN_DATA_DIR", SHARED_DATA))
    assert (data_dir / "imdb").is_dir(), (
        f"the IMDB mirror is expected at {data_dir}/imdb (set RNN_DATA_DIR)"
    )
    monkeypatch.setenv("RNN_DATA_DIR", str(data_dir))
    return data_dir


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """``<name>/``, made by ``build`` once per test run: with pytest-xdist the first process to
    need it builds it under a file lock in the run's shared temporary folder, and the others wait
    and reuse it (tests only read it). A folder a failed build left is cleared first."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        root = tmp_path_factory.mktemp(name)
        build(root)
        return root
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, above each worker's
    root = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".built").is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            build(root)
            (root / ".built").touch()
    return root


@pytest.fixture(scope="session")
def tiny_sentiment(tmp_path_factory):
    """Examples, vocabulary and a small GRU trained on synthetic reviews (shared across tests)."""
    return _tiny_classifier(tmp_path_factory, "tiny_sentiment", pooling="max")


@pytest.fixture(scope="session")
def tiny_attention(tmp_path_factory):
    """As ``tiny_sentiment``, with attention pooling (additive)."""
    return _tiny_classifier(tmp_path_factory, "tiny_attention", pooling="attention")


def own_attention_weights(trained, token_ids):
    """The additive attention weights of ``trained``'s model on ``token_ids`` ([texts, steps]),
    worked out here from its recurrent outputs and its attention layer's variables, so a test can
    hold an explanation against them without going through the code that serves it."""
    import keras
    import numpy as np

    model = trained.load()
    attention = model.get_layer("attention")
    hidden = keras.Model(model.input, attention.input).predict(token_ids, verbose=0)
    variables = {variable.name: variable.numpy() for variable in attention.weights}
    keys = np.tanh(hidden @ variables["projection"] + variables["bias"])
    scores = keys @ variables["query"]
    scores = np.where(token_ids != 0, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def _tiny_classifier(tmp_path_factory, name: str, pooling: str) -> dict:
    from components import train
    from components.artifacts import Examples, NgramModel, StackedModel, TrainedModel, Vocabulary
    from components.text_classification import vectorize
    from components.text_classification.model import TextClassifierConfig
    from pipelines.sentiment import pipeline as sentiment

    config = sentiment.SentimentConfig(
        preprocess=vectorize.TextVectorizationConfig(vocabulary_size=100, sequence_length=30),
        model=TextClassifierConfig(
            cell="gru",
            bidirectional=False,
            units=8,
            embedding_dim=8,
            dropout=0.0,
            pooling=pooling,
            attention_units=8,
        ),
        train=train.TrainConfig(epochs=6, batch_size=16, learning_rate=0.01),
    )
    root = built_once(tmp_path_factory, name, lambda folder: _train_tiny_classifier(config, folder))
    return {
        "config": config,
        "ingest": Examples(root / "examples"),
        "preprocess": Vocabulary(root / "vocabulary"),
        "train": TrainedModel(root / "trained"),
        "ngrams": NgramModel(root / "ngrams"),
        "stack": StackedModel(root / "stack"),
    }


def _train_tiny_classifier(config, root: Path) -> None:
    """The sentiment pipeline's stages up to the stacked model, on synthetic reviews."""
    from components.text_classification import ingest, vectorize
    from components.text_classification.ingest import IngestConfig, RawRecord, Source
    from pipelines.sentiment import pipeline as sentiment

    splits = {
        split: [
            RawRecord(f"{split}/{i}", text, label)
            for i, (text, label) in enumerate(synthetic_reviews(200, seed))
        ]
        for split, seed in (("train", 0), ("test", 1))
    }
    examples = ingest.run(
        IngestConfig(validation_fraction=0.2),
        Source("tiny", "memory://tiny", splits),
        root / "examples",
    )
    vocabulary = vectorize.run(config.preprocess, examples, root / "vocabulary")
    inputs = {"ingest": examples, "preprocess": vocabulary}
    inputs["ngrams"] = sentiment.run_ngrams(config, inputs, root / "ngrams")
    inputs["train"] = sentiment.run_train(config, inputs, root / "trained")
    sentiment.run_stack(config, inputs, root / "stack")


def write_shop_sales(folder: Path, series: int = 8, weeks: int = 140, seed: int = 0) -> Path:
    """``shop.csv``: weekly units per SKU with a yearly cycle, promotions and a region.

    Column names, date format (day/month/year) and weekday (Monday) all differ from Walmart's,
    so a pipeline reading it proves the ingest is driven by config alone.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-01-04", periods=weeks, freq="W-MON")
    rows = []
    for index in range(series):
        level = 50.0 * (index + 1)
        promo = rng.random(weeks) < 0.1
        season = 1.0 + 0.6 * np.sin(2 * np.pi * np.arange(weeks) / 52.0 + index)
        units = level * season * (1 + 0.5 * promo) + rng.normal(0, 0.03 * level, weeks)
        for date, value, flag in zip(dates, units, promo, strict=True):
            rows.append((f"SKU{index}", f"{date:%d/%m/%Y}", round(value, 2), flag, "NS"[index % 2]))
    frame = pd.DataFrame(rows, columns=["sku", "week", "units", "promo", "region"])
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "shop.csv", index=False)
    return folder / "shop.csv"


def write_blessing(
    folder: Path, blessed: bool = True, metrics: dict | None = None, champion: int | None = None
):
    """A blessing artifact like the bless stage writes, to push a model without running one;
    ``champion``: the registered version it was judged against (None: no champion)."""
    import json

    from components.artifacts import Blessing

    reasons = [f"accuracy 0.9 >= lower bound 0.85: {'pass' if blessed else 'FAIL'}"]
    record = {"blessed": blessed, "reasons": reasons, "metrics": metrics or {"accuracy": 0.9}}
    if champion is not None:
        record["baseline"] = {"registered_version": champion, "source": "registry"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "blessing.json").write_text(json.dumps(record))
    return Blessing(folder)


SHOP_INGEST = {
    "ingest.path": "shop.csv",
    "ingest.date_column": "week",
    "ingest.date_format": "'%d/%m/%Y'",  # quoted: a bare % starts a YAML directive
    "ingest.target": "units",
    "ingest.series_id": "[sku]",
    "ingest.joins": "[]",
    "ingest.known_future": "[promo]",
    "ingest.past_covariates": "[]",
    "ingest.static_categorical": "[region]",
    "ingest.static_numeric": "[]",
    "ingest.frequency": "W-MON",
    "backtest.holiday_column": "null",
    # The shipped config's combination weighs the Walmart departments' baselines; a shop test
    # that combines names its own candidates.
    "combination.candidates": "[]",
}
"""``--set`` overrides that point the sales pipeline at ``shop.csv`` (plus ingest.data_dir)."""
