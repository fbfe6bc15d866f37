"""The chief of a distributed search: it returns when the last worker reports, not at a poll.

Its workers here are KerasTuner's own gRPC clients, driven by hand in this process: every request
a worker process would send, in an order two workers can send them."""

import threading

import keras_tuner
import pytest
from keras_tuner.src.distribute import oracle_chief, oracle_client
from keras_tuner.src.engine.trial import TrialStatus

from components import tune, tune_chief
from components.tune import TuneConfig
from pipelines.workers import free_port
from tests.components.test_tune import sequences, tiny_model

CONFIG = TuneConfig(
    algorithm="random",
    max_trials=2,
    space={"model.cell": {"choices": ["gru", "lstm"]}, "model.units": {"choices": [2, 4]}},
)


@pytest.fixture
def oracle_address(monkeypatch) -> str:
    """This process is the chief of a search on a free loopback port."""
    port = free_port()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    return f"127.0.0.1:{port}"


def finish(worker: oracle_client.OracleClient, trial: keras_tuner.engine.trial.Trial) -> None:
    """What a worker sends when a trial is done: its score, then its end."""
    worker.update_trial(trial.trial_id, {"val_loss": 0.5})
    trial.status = TrialStatus.COMPLETED
    worker.end_trial(trial)


def test_the_chief_wakes_on_the_request_that_ends_the_search(tmp_path, oracle_address):
    oracle = tune._tuner(CONFIG, tiny_model, tmp_path).oracle
    server, search_over = tune_chief.start(oracle, oracle_address)
    try:
        worker = oracle_client.OracleClient(oracle)
        first, second = worker.create_trial("tuner0"), worker.create_trial("tuner1")
        finish(worker, first)
        assert worker.create_trial("tuner0").status == TrialStatus.STOPPED  # the budget is spent
        assert not search_over.is_set()  # tuner1's trial is still running
        finish(worker, second)
        assert not search_over.is_set()  # tuner1 has not been told to stop yet
        assert worker.create_trial("tuner1").status == TrialStatus.STOPPED
        # Set by that very request, before its answer came back: nothing left to poll for.
        assert search_over.is_set()
    finally:
        server.stop(None)


def test_serve_returns_once_the_last_worker_has_heard_stop(tmp_path, oracle_address):
    oracle = tune._tuner(CONFIG, tiny_model, tmp_path).oracle
    chief = threading.Thread(target=tune_chief.serve, args=(oracle,), daemon=True)
    chief.start()
    worker = oracle_client.OracleClient(oracle)  # it waits for the server to be up
    while (trial := worker.create_trial("tuner0")).status != TrialStatus.STOPPED:
        finish(worker, trial)
    chief.join(timeout=60)  # a guard against a hang, not a measure: it returns at once
    assert not chief.is_alive()
    assert sorted(oracle.trials) == ["0", "1"]
    assert all(trial.status == TrialStatus.COMPLETED for trial in oracle.trials.values())


def test_a_chief_serves_with_tune_chief_not_keras_tuners_polling_loop(
    tmp_path, oracle_address, monkeypatch
):
    def polling_chief(oracle):
        raise AssertionError("KerasTuner's chief, which looks every 20 s, was started")

    monkeypatch.setattr(oracle_chief, "start_server", polling_chief)
    served = []
    monkeypatch.setattr(tune_chief, "serve", served.append)
    tuner = tune._tuner(CONFIG, tiny_model, tmp_path)
    data = sequences()
    tuner.search(data.train, validation_data=data.validation, epochs=1, verbose=0)
    assert served == [tuner.oracle]
    assert tuner.oracle.verbose == 0


def test_the_keras_tuner_that_tune_chief_builds_on_is_installed():
    # tune_chief subclasses KerasTuner's private servicer and reuses its exit_chief: on another
    # version, re-read keras_tuner/src/distribute/oracle_chief.py and BaseTuner.search first.
    assert keras_tuner.__version__ == "1.4.8"
    assert callable(oracle_chief.exit_chief)
    for method in ("CreateTrial", "EndTrial"):
        assert method in vars(oracle_chief.OracleServicer)
