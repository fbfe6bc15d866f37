"""An MLflow tracking server on PostgreSQL, so pipeline runs on several processes or hosts share
one store: ``python -m pipelines.tracking_server start|stop|status`` (``make mlflow-server``).

Everything lives in one git-ignored folder (``.mlflow-server/``): the PostgreSQL cluster
(``pipelines/postgres.py``), the artifacts, which the server proxies (``--serve-artifacts``, so
clients send and fetch them over HTTP and need no shared file system), its log, and
``server.json`` (port and process group of the running server). Pipelines use the server when
``MLFLOW_TRACKING_URI`` names it (components/tracking.py); SQLite stays the default store.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from components.errors import ConfigError, PipelineError
from pipelines.postgres import DEFAULT_BIN, USER, Cluster

log = logging.getLogger(__name__)
DATABASE = "mlflow"


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    state_dir: Path = Path(".mlflow-server")
    """The database cluster, the artifacts, the log and the running server's ``server.json``."""
    host: str = "127.0.0.1"
    """Interface MLflow listens on; ``0.0.0.0`` serves other hosts (PostgreSQL stays local)."""
    port: int = 5001
    """MLflow's port (``make mlflow-ui`` takes 5000)."""
    workers: int = 2
    """Processes answering requests."""
    postgres_bin: Path = DEFAULT_BIN
    """Where PostgreSQL's ``initdb`` and ``pg_ctl`` are."""
    startup_timeout_s: float = 180.0
    """How long MLflow may take to answer (its first start migrates the new database)."""

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise ConfigError(f"port={self.port} is not a TCP port (1-65535)")
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers} must be at least 1")

    @property
    def state_file(self) -> Path:
        return self.state_dir / "server.json"

    @property
    def url(self) -> str:
        """What clients on this host set ``MLFLOW_TRACKING_URI`` to."""
        return f"http://{_local_address(self.host)}:{self.port}"


def start(config: ServerConfig) -> str:
    """Start PostgreSQL and MLflow unless the server already answers; returns its URL."""
    if (state := status(config)) is not None:
        log.info("the tracking server already runs at %s", state["url"])
        return state["url"]
    _end_group(config)  # a server that stopped answering
    _require_free(config.host, config.port)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(config.state_dir / "database", config.postgres_bin)
    database_port = cluster.start()
    cluster.ensure_database(DATABASE)
    server = _launch_mlflow(config, database_port, cluster.pgpass)
    state = {"pid": server.pid, "url": config.url, "host": config.host, "port": config.port}
    config.state_file.write_text(json.dumps(state, indent=2) + "\n")
    _wait_until_healthy(config, server)
    log.info("MLflow on PostgreSQL (127.0.0.1:%s) answers at %s", database_port, config.url)
    return config.url


def _launch_mlflow(config: ServerConfig, database_port: int, pgpass: Path) -> subprocess.Popen:
    backend = f"postgresql+psycopg://{USER}@127.0.0.1:{database_port}/{DATABASE}"
    artifacts = (config.state_dir / "artifacts").resolve()
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend),
        *("--serve-artifacts", "--artifacts-destination", str(artifacts)),
        *("--host", config.host, "--port", str(config.port), "--workers", str(config.workers)),
    ]
    environment = {
        **os.environ,
        "PGPASSFILE": str(pgpass),  # the password stays out of the command line
        # MLflow's job runner (GenAI jobs no pipeline submits) would add seven processes.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with open(config.state_dir / "mlflow.log", "ab") as output:
        # Its own process group: stop ends MLflow and the workers it forks in one signal.
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=config.state_dir,
            start_new_session=True,
        )


def stop(config: ServerConfig) -> None:
    """End MLflow (its whole process group) and shut PostgreSQL down; the data stays."""
    _end_group(config)
    Cluster(config.state_dir / "database", config.postgres_bin).stop()


def status(config: ServerConfig) -> dict | None:
    """``server.json`` of the server if it runs and answers, else None."""
    try:
        state = json.loads(config.state_file.read_text())
    except FileNotFoundError:
        return None
    running = server_processes(state["pid"]) and _healthy(state["host"], state["port"])
    return state if running else None


def server_processes(group: int) -> list[int]:
    """The live processes of process group ``group``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            state, _, process_group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if state != "Z" and int(process_group) == group:
                members.append(int(stat.parent.name))
    return members


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _end_group(config: ServerConfig, grace_s: float = 20.0) -> None:
    """SIGTERM the server's process group (MLflow forwards it to uvicorn, which ends its workers
    gracefully), SIGKILL what is left after ``grace_s``; then forget the server."""
    try:
        group = json.loads(config.state_file.read_text())["pid"]
    except FileNotFoundError:
        return
    members = server_processes(group)
    if not any(b"mlflow" in _command_line(member) for member in members):
        members = []  # gone, and the group id may belong to someone else by now
    for sent in (signal.SIGTERM, signal.SIGKILL) if members else ():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sent)
        deadline = time.monotonic() + grace_s
        while server_processes(group) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(group, os.WNOHANG)  # started by this process: reap it
            time.sleep(0.2)
        if not server_processes(group):
            break
    config.state_file.unlink()


def _wait_until_healthy(config: ServerConfig, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + config.startup_timeout_s
    while not _healthy(config.host, config.port):
        if server.poll() is not None or time.monotonic() > deadline:
            _end_group(config)
            tail = (config.state_dir / "mlflow.log").read_text(errors="replace")[-3000:]
            raise PipelineError(f"mlflow server did not come up; the end of its log:\n{tail}")
        time.sleep(0.5)


def _local_address(host: str) -> str:
    """Where this host reaches a server listening on ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def _healthy(host: str, port: int) -> bool:
    url = f"http://{_local_address(host)}:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status == 200
    except OSError:
        return False


def _require_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT
        try:
            probe.bind((host, port))
        except OSError:
            raise PipelineError(
                f"port {port} on {host} is taken: pick another (make mlflow-server MLFLOW_PORT=..."
                " or --port)"
            ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.tracking_server", description=__doc__
    )
    parser.add_argument("command", choices=["start", "stop", "status"])
    defaults = ServerConfig()
    parser.add_argument("--state-dir", type=Path, default=defaults.state_dir)
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--postgres-bin", type=Path, default=defaults.postgres_bin)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = ServerConfig(args.state_dir, args.host, args.port, args.workers, args.postgres_bin)
        if args.command == "start":
            print(f"export MLFLOW_TRACKING_URI={start(config)}")
        elif args.command == "stop":
            stop(config)
            print("tracking server stopped")
        elif (state := status(config)) is not None:
            print(f"running: export MLFLOW_TRACKING_URI={state['url']}")
        else:
            print("not running")
            return 3
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
