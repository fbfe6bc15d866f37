"""A local model server speaking TensorFlow Serving's APIs, for where its binary is not at hand.

``python -m serving.server --models-dir serving/models`` serves every model under the directory
(``<name>/<version>/saved_model.pb``, as the export stage writes them) with TF Serving's REST API
on ``http://127.0.0.1:8501/v1/models/<name>`` and its gRPC API on ``127.0.0.1:8500``, so clients
written for TF Serving work unchanged. The models directory is polled: new versions load in the
background and replace the served one once loaded, removed ones are unloaded, and a version that
fails to load is reported in its status. Requests run in parallel, one thread each; bodies over
``--max-body-mb`` are refused (413). ``--enable-batching`` runs concurrent requests to a signature
as one call, with TF Serving's batching parameters (``serving/batching.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from components.errors import ConfigError
from serving import batching
from serving.metrics import CONTENT_TYPE, PROMETHEUS_PATH, ServingMetrics
from serving.model_store import ModelStore
from serving.rest_api import RestApi

log = logging.getLogger(__name__)
DEFAULT_PORT, DEFAULT_GRPC_PORT = 8501, 8500
MAX_BODY_BYTES = 10 * 2**20
_DRAIN_LIMIT = 4  # a body up to this many times the limit is read (and dropped) before the 413


class _BodyTooLarge(Exception):
    pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connection
    # The headers and the body go out in two writes; with Nagle's algorithm the body would wait
    # for the client's delayed ACK of the headers (40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    server: ModelServer

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_PATCH(self):
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        try:
            body = self._read_body()
        except _BodyTooLarge as error:
            self._reply(413, json.dumps({"error": str(error)}))
            return
        except (ValueError, OSError) as error:
            self.close_connection = True
            self._reply(400, json.dumps({"error": f"Malformed request body: {error}"}))
            return
        path = urlsplit(self.path).path
        if method == "GET" and path == PROMETHEUS_PATH:
            self._reply(200, self.server.metrics.exposition().decode(), CONTENT_TYPE)
            return
        status, text = self.server.api.handle(method, path, body)
        self._reply(status, text)

    def _read_body(self) -> bytes:
        limit = self.server.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunks(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError(f"Content-Length {length}")
        if length > limit:
            if length <= _DRAIN_LIMIT * limit:
                self._discard(length)  # so that the client, still sending, gets to read the 413
            else:
                self.close_connection = True
            raise _BodyTooLarge(
                f"Request body of {length:,} bytes exceeds the limit of {limit:,} bytes"
            )
        return self.rfile.read(length)

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 2**16))
            if not chunk:
                return
            length -= len(chunk)

    def _read_chunks(self, limit: int) -> bytes:
        chunks, size = [], 0
        while True:
            chunk_size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            if chunk_size == 0:
                while self.rfile.readline(1024).strip():  # trailer headers
                    pass
                return b"".join(chunks)
            size += chunk_size
            if size > limit:
                self.close_connection = True
                raise _BodyTooLarge(f"Request body exceeds the limit of {limit:,} bytes")
            chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline(8)

    def _reply(self, status: int, text: str, content_type: str = "application/json") -> None:
        payload = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 - the name BaseHTTPRequestHandler uses
        log.debug("%s %s", self.address_string(), format % args)


class ModelServer(ThreadingHTTPServer):
    """The HTTP server; ``api`` answers each request on its own thread, ``metrics`` the scrapes."""

    daemon_threads = True
    # socketserver's backlog of 5 overflows when tens of clients connect at once: the kernel then
    # drops or resets their connections.
    request_queue_size = socket.SOMAXCONN

    def __init__(
        self, address: tuple[str, int], api: RestApi, metrics: ServingMetrics, max_body_bytes: int
    ):
        super().__init__(address, _RequestHandler)
        self.api = api
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes


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
    ):
        self.metrics = ServingMetrics()
        """TF Serving's request and runtime metrics, at ``/monitoring/prometheus/metrics``."""
        self.store = ModelStore(
            models_dir, config_file, batching=batching_parameters, metrics=self.metrics
        )
        self.poll_seconds = poll_seconds
        api = RestApi(self.store, self.metrics)
        self.http = ModelServer((host, port), api, self.metrics, max_body_bytes)
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
    )
    server.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        server.stop()
    return 0


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
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
