"""A local model server speaking TensorFlow Serving's APIs, for where its binary is not at hand.

``python -m serving.server --models-dir serving/models`` serves every model under the directory
(``<name>/<version>/saved_model.pb``, as the export stage writes them) with TF Serving's REST API
on ``http://127.0.0.1:8501/v1/models/<name>`` and its gRPC API on ``127.0.0.1:8500``, so clients
written for TF Serving work unchanged. The models directory is polled: new versions load in the
background and replace the served one once loaded, removed ones are unloaded, and a version that
fails to load is reported in its status. Requests run in parallel, one thread each; bodies over
``--max-body-mb`` are refused (413), requests not answered in ``--rest-api-timeout-ms`` get 504,
and connections quiet for ``--idle-timeout-s`` are closed. ``--enable-batching`` runs concurrent
requests to a signature as one call, with TF Serving's batching parameters
(``serving/batching.py``). TF Serving's Prometheus metrics are at
``/monitoring/prometheus/metrics`` (``serving/metrics.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from components.errors import ConfigError
from serving import batching
from serving.http_server import IDLE_TIMEOUT_S, MAX_BODY_BYTES, ModelServer
from serving.metrics import ServingMetrics
from serving.model_store import ModelStore
from serving.rest_api import REST_API_TIMEOUT_S, RestApi

log = logging.getLogger(__name__)
DEFAULT_PORT, DEFAULT_GRPC_PORT = 8501, 8500


class LocalModelServer:
    """The store and the HTTP server together: ``start()`` loads every model, then listens."""

    def __init__(
        self,
        models_dir: Path,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        config_file: Path | None = None,
        poll_seconds: float = 2.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        grpc_port: int | None = None,
        batching_parameters: batching.BatchingParameters | None = None,
        rest_api_timeout_s: float = REST_API_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ):
        self.metrics = ServingMetrics()
        """TF Serving's request and runtime metrics, at ``/monitoring/prometheus/metrics``."""
        self.store = ModelStore(
            models_dir, config_file, batching=batching_parameters, metrics=self.metrics
        )
        self.poll_seconds = poll_seconds
        self.api = RestApi(self.store, self.metrics, rest_api_timeout_s)
        self.http = ModelServer(
            (host, port), self.api, self.metrics, max_body_bytes, idle_timeout_s
        )
        self.grpc_port = grpc_port
        """gRPC API port (0: any free one); None: no gRPC API."""
        self.grpc_address: str | None = None
        """``host:port`` the gRPC API listens on, once started."""
        self._grpc = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalModelServer:
        """Load what is on disk (as TF Serving does before it listens), then serve and watch."""
        if not Path(self.store.models_dir).is_dir():
            log.warning("%s does not exist (yet); it is polled", self.store.models_dir)
        self.store.poll()
        self.store.wait_for_loads()
        self.store.watch(self.poll_seconds)
        self._thread = threading.Thread(target=self.http.serve_forever, name="http", daemon=True)
        self._thread.start()
        log.info("serving TF Serving's REST API on %s/v1/models/<name>", self.url)
        if self.grpc_port is not None:
            self._start_grpc()
        return self

    def _start_grpc(self) -> None:
        from serving import grpc_api

        host = self.http.server_address[0]
        address = f"{host}:{self.grpc_port}"
        try:
            self._grpc, bound = grpc_api.start(
                self.store, address, self.http.max_body_bytes, self.metrics
            )
        except RuntimeError as error:  # the port is taken: REST alone still serves every model
            log.warning("no gRPC API: cannot listen on %s (%s)", address, error)
            return
        self.grpc_address = f"{host}:{bound}"
        log.info("serving TF Serving's gRPC API on %s", self.grpc_address)

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
        self.http.shutdown()
        self.http.server_close()
        self.api.close()
        self.store.close()

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config_file = args.model_config_file or args.models_dir.resolve().parent / "models.config"
    try:
        batching_parameters = (
            batching.server_parameters(args.batching_parameters_file, args.models_dir)
            if args.enable_batching
            else None
        )
    except ConfigError as error:
        log.error("%s", error)
        return 2
    server = LocalModelServer(
        args.models_dir,
        args.host,
        args.port,
        config_file,
        args.poll_seconds,
        int(args.max_body_mb * 2**20),
        None if args.no_grpc else args.grpc_port,
        batching_parameters,
        args.rest_api_timeout_ms / 1000,
        args.idle_timeout_s,
    )
    stopping = threading.Event()
    # Ctrl-C and SIGTERM (docker stop, Kubernetes) both stop the server cleanly, also where the
    # launching shell left SIGINT ignored (a background job in a script).
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda number, frame: stopping.set())
    server.start()
    try:
        stopping.wait()
        log.info("stopping")
    finally:
        server.stop()
    # Stopped cleanly; leave without finalizing the interpreter, where TensorFlow's runtime can
    # abort ("terminate called ...", exit -6) as a thread still inside it is unwound.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Path("serving/models"))
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="REST port (0: any free)")
    parser.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT, help="gRPC port")
    parser.add_argument("--no-grpc", action="store_true", help="serve the REST API alone")
    parser.add_argument(
        "--model-config-file",
        type=Path,
        help="ModelServerConfig text (version policies, labels); default: models.config beside "
        "--models-dir, used when it exists",
    )
    parser.add_argument(
        "--enable-batching", action="store_true", help="run concurrent requests as one batch"
    )
    parser.add_argument(
        "--batching-parameters-file",
        type=Path,
        help="BatchingParameters text; default: batching_parameters.txt beside --models-dir, "
        "used when it exists, else serving/deployment.py's values",
    )
    parser.add_argument("--poll-seconds", type=float, default=2.0, help="models dir poll period")
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=MAX_BODY_BYTES / 2**20,
        help="largest REST body or gRPC message accepted",
    )
    parser.add_argument(
        "--rest-api-timeout-ms",
        type=float,
        default=1000 * REST_API_TIMEOUT_S,
        help="a REST request not answered in this time gets 504 DEADLINE_EXCEEDED (TF Serving's "
        "--rest_api_timeout_in_ms)",
    )
    parser.add_argument(
        "--idle-timeout-s",
        type=float,
        default=IDLE_TIMEOUT_S,
        help="close a connection that sends nothing for this long (idle, slow headers or body)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
