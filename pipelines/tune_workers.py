"""Distributed hyperparameter search on local processes: KerasTuner's chief and its workers.

``make tune WORKERS=2`` (``python -m pipelines run sentiment --tune --tune-workers 2``) starts
the pipeline itself as KerasTuner's ``chief`` (it runs ingest and preprocess, then serves the
oracle from its tune stage, then trains with the best values and goes on) and N worker
processes (``tuner0``, ``tuner1``, ...), each of which waits for the oracle, runs the trials it
is handed on the chief's preprocessed data (``python -m pipelines tune-worker``) and logs each
as an MLflow run. On several hosts the same environment variables do it: one chief, any number of
workers pointing at its ``KERASTUNER_ORACLE_IP``/``_PORT``, sharing the artifacts root (the
workers read the chief's run directory) and the tracking server.

KerasTuner's chief waits for every trial it handed out; a worker that dies would leave it
waiting, so the launcher stops every process when one fails and the command fails.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from components import tracking
from components.errors import PipelineError
from pipelines import registry
from pipelines.runner import load_outputs, new_run_id
from pipelines.workers import free_port, on_core, stop, stop_on_sigterm

log = logging.getLogger(__name__)
ORACLE_HOST = "127.0.0.1"
CHIEF = "chief"


def launch(
    pipeline: str,
    workers: int,
    config_arguments: list[str],
    artifacts_root: Path,
    pin_cores: bool = False,
    use_cache: bool = True,
    until: str | None = None,
) -> int:
    """Run the pipeline as the chief with ``workers`` worker processes (the chief stops after
    stage ``until``, if given); the chief's exit status, or 1 when a worker failed (every process
    is stopped then)."""
    if workers < 1:
        raise PipelineError(f"--tune-workers {workers}: give at least one worker")
    run_id, port = new_run_id(), free_port(ORACLE_HOST)
    oracle = {"KERASTUNER_ORACLE_IP": ORACLE_HOST, "KERASTUNER_ORACLE_PORT": str(port)}
    common = [pipeline, *config_arguments, "--artifacts-root", str(artifacts_root)]
    chief_command = ["run", *common, "--tune", "--run-id", run_id]
    chief_command += [] if use_cache else ["--no-cache"]
    chief_command += ["--until", until] if until else []
    log_dir = Path(artifacts_root) / pipeline / run_id
    processes = {CHIEF: _start(chief_command, {**oracle, "KERASTUNER_TUNER_ID": CHIEF})}
    for index in range(workers):
        tuner_id = f"tuner{index}"
        worker_command = ["tune-worker", *common, "--from-run", run_id]
        env = {**oracle, "KERASTUNER_TUNER_ID": tuner_id}
        processes[tuner_id] = _start(worker_command, env, index, pin_cores)
    log.info("tuning with %d workers; oracle on %s:%d; run %s", workers, ORACLE_HOST, port, run_id)
    try:
        stop_on_sigterm()
        return _wait(processes, log_dir)
    finally:
        stop(list(processes.values()))


def _start(
    arguments: list[str], env: dict[str, str], index: int = 0, pin: bool = False
) -> subprocess.Popen:
    command = on_core([sys.executable, "-m", "pipelines", *arguments], index, pin)
    return subprocess.Popen(command, env={**os.environ, **env})


def _wait(processes: dict[str, subprocess.Popen], log_dir: Path, grace_s: float = 30.0) -> int:
    """Until the chief is done; the first failure (a worker's or the chief's) stops the rest.
    Workers still running after the chief succeeded never got a trial (the tune stage came from
    the cache, or the budget ran out first): they are stopped after ``grace_s``."""
    chief = processes[CHIEF]
    while not (failed := _failed(processes)) and chief.poll() is None:
        time.sleep(1)
    if failed:
        log.error("%s failed: stopping the other tuning processes (run %s)", failed, log_dir)
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
    deadline = time.monotonic() + grace_s
    for name, process in processes.items():
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.info("%s got no trial to run: stopped", name)
            process.terminate()
            process.wait()
    return 1 if failed or chief.returncode != 0 else 0


def _failed(processes: dict[str, subprocess.Popen]) -> dict[str, int]:
    return {name: p.returncode for name, p in processes.items() if p.poll() not in (None, 0)}


def run_worker(
    pipeline: str, config: Any, artifacts_root: Path, chief_run: str, wait_s: float = 3600.0
) -> Path:
    """Once the chief's oracle answers, run the trials it hands out on the chief's tune inputs;
    returns the folder where this worker's record (hyperparameters.json) went."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    if "KERASTUNER_ORACLE_IP" not in os.environ or tuner_id in ("", CHIEF):
        raise PipelineError(
            "tune-worker needs KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT and a "
            "KERASTUNER_TUNER_ID other than 'chief' (make tune WORKERS=N sets them)"
        )
    _wait_for_oracle(wait_s)
    stage = next(s for s in registry.get(pipeline).stages_to_run(tune=True) if s.name == "tune")
    run_dir = Path(artifacts_root) / pipeline / chief_run
    outputs = load_outputs(run_dir)
    missing = [name for name in stage.inputs if name not in outputs]
    if missing:
        raise PipelineError(f"run {chief_run} has no {', '.join(missing)} output for tune yet")
    out_dir = run_dir / "tune_workers" / tuner_id
    tracking.configure(pipeline)
    tags = {"pipeline": pipeline, "run_id": chief_run, "tune_worker": tuner_id}
    with tracking.pipeline_run(f"{pipeline}-{chief_run}-{tuner_id}", tags):
        stage.run(config, {name: outputs[name] for name in stage.inputs}, out_dir)
    return out_dir


def _wait_for_oracle(wait_s: float) -> None:
    """The chief serves its oracle once it reaches its tune stage: its inputs are ready then."""
    address = (os.environ["KERASTUNER_ORACLE_IP"], int(os.environ["KERASTUNER_ORACLE_PORT"]))
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with socket.create_connection(address, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise PipelineError(
                    f"no tuning oracle at {address[0]}:{address[1]} after {wait_s:.0f} s"
                ) from None
            time.sleep(1)
