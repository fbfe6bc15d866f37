"""Data-parallel training on several workers: each worker's role, and a launcher for one machine.

Every worker runs the same command, ``python -m pipelines run <app> --set
train.distribution=multi_worker``, with its own ``TF_CONFIG`` (the cluster's addresses and its
index). The stages before train are deterministic, so each worker computes the same inputs itself
and no storage needs sharing; they train together; only the chief (worker 0) keeps artifacts and
logs to MLflow. The others run into a temporary artifacts root and MLflow store, deleted when they
end, and stop after train: evaluate, bless and export are the chief's alone.

``python -m pipelines.workers --workers 2 sentiment [run options]`` (``make train-workers``)
starts that many workers on loopback ports, waits for them, and stops them all as soon as one
fails; on real hosts, start one worker per host with that host's ``TF_CONFIG`` (README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.errors import PipelineError
from pipelines.spec import Stage

log = logging.getLogger(__name__)

GRACE_S = 10
"""How long a worker stopped after another failed gets to exit before it is killed."""


@contextlib.contextmanager
def worker_role(
    config: Any, stages: list[Stage], artifacts_root: Path, only: str | None
) -> Iterator[tuple[list[Stage], Path, bool]]:
    """``(stages, artifacts_root, is_chief)`` for this process: unchanged outside a cluster (no
    ``TF_CONFIG``); for a worker other than the chief, the stages up to train and a throwaway
    artifacts root and MLflow store."""
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}")
    if not cluster:
        yield stages, artifacts_root, True
        return
    train = getattr(config, "train", None)
    if train is None or train.distribution != "multi_worker":
        raise PipelineError("TF_CONFIG is set: run with --set train.distribution=multi_worker")
    if only or "tune" in [stage.name for stage in stages]:
        raise PipelineError("workers run the whole pipeline: drop --stage and --tune")
    from components import distribute  # TensorFlow: not needed by the launcher

    # Before any other TensorFlow op; it also waits until every worker has started.
    distribute.strategy("multi_worker")
    if _is_chief(cluster):
        yield stages, artifacts_root, True
        return
    with tempfile.TemporaryDirectory(prefix="pipeline-worker-") as scratch:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch}/mlflow.db"
        names = [stage.name for stage in stages]  # a run --until before train stops there
        through_train = names.index("train") + 1 if "train" in names else len(stages)
        yield stages[:through_train], Path(scratch) / "artifacts", False


def _is_chief(cluster: dict) -> bool:
    """A "chief" task if the cluster names one, else worker 0 (TensorFlow's rule)."""
    task = cluster.get("task", {})
    if "chief" in cluster.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and task.get("index") == 0


def local_cluster(workers: int) -> list[dict]:
    """One ``TF_CONFIG`` per worker of a cluster on free loopback ports."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(workers)]
        for listener in sockets:  # all bound at once, so the ports differ
            listener.bind(("localhost", 0))
        addresses = [f"localhost:{listener.getsockname()[1]}" for listener in sockets]
    return [
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        for index in range(workers)
    ]


def on_core(command: list[str], index: int, pin: bool) -> list[str]:
    """``command`` run on CPU core ``index`` only (``taskset``; cycling over the usable cores) when
    ``pin``, so that a measurement shows real parallelism; else as it is."""
    if not pin:
        return command
    cores = sorted(os.sched_getaffinity(0))
    return ["taskset", "-c", str(cores[index % len(cores)]), *command]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the caller binds it soon after)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def launch(workers: int, run_arguments: list[str], pin_cores: bool = False) -> int:
    """Run ``python -m pipelines run <run_arguments>`` as ``workers`` local workers; 0 when all
    succeed, else 1 once the first has failed and the rest are stopped. ``pin_cores``: worker i
    on CPU core i only (``taskset``), so a measurement shows real parallelism."""
    command = [sys.executable, "-m", "pipelines", "run", *run_arguments]
    command += ["--set", "train.distribution=multi_worker"]
    processes = []
    for index, tf_config in enumerate(local_cluster(workers)):
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        processes.append(subprocess.Popen(on_core(command, index, pin_cores), env=env))
    log.info("started %d workers: pids %s", workers, [p.pid for p in processes])
    try:
        stop_on_sigterm()
        return _wait(processes)
    finally:
        stop(processes)


def _wait(processes: list[subprocess.Popen]) -> int:
    while True:
        codes = [process.poll() for process in processes]
        for index, code in enumerate(codes):
            if code not in (None, 0):
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                pid = processes[index].pid
                log.error("worker %d (pid %d) failed (%s); stopping the others", index, pid, how)
                return 1
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.2)


def stop_on_sigterm() -> None:
    """SIGTERM ends a launcher as Ctrl-C does, through its ``finally``: its workers are stopped
    with it rather than left running."""
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))


def stop(processes: list[subprocess.Popen]) -> None:
    """Terminate the workers still running, and kill those that outlive ``GRACE_S``."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + GRACE_S
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.workers", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--pin-cores", action="store_true", help="worker i on CPU core i only")
    parser.add_argument(
        "run_arguments",
        nargs=argparse.REMAINDER,
        help="what `python -m pipelines run` takes: the pipeline, then --config, --set, ...",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s workers: %(message)s")
    if args.workers < 1 or not args.run_arguments:
        parser.error("give --workers N (at least 1) and the pipeline to run")
    return launch(args.workers, args.run_arguments, args.pin_cores)


if __name__ == "__main__":
    sys.exit(main())
