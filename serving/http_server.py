"""The HTTP layer of the local server: keep-alive connections, body limits, one thread a request.

:class:`ModelServer` reads each request (``Content-Length`` or chunked, refusing bodies over the
limit with a 413), answers ``GET /monitoring/prometheus/metrics`` from the server's metrics and
hands everything else to :class:`~serving.rest_api.RestApi`, which never raises. Every wait on a
client is bounded: a connection that sends nothing for ``idle_timeout_s`` (between requests, in
the middle of its headers or of a body shorter than its ``Content-Length``) is closed, and past
``max_connections`` open connections a new one is answered 503 and closed, so half-open or slow
clients cannot hold the server's threads. Every error, the HTTP layer's own included (414, 431,
HEAD, OPTIONS), is a JSON ``{"error": ...}`` body.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from serving.metrics import CONTENT_TYPE, PROMETHEUS_PATH, ServingMetrics
from serving.rest_api import Answer, RestApi

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 10 * 2**20
IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 512
_DRAIN_LIMIT = 4  # a body up to this many times the limit is read (and dropped) before the 413


class _BodyTooLarge(Exception):
    pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connection
    # The headers and the body go out in two writes; with Nagle's algorithm the body would wait
    # for the client's delayed ACK of the headers (40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    # Buffered writes: the head and the body leave in one write (one packet, one wake-up of the
    # client) when the request's handling flushes.
    wbufsize = -1
    server: ModelServer

    def setup(self):
        self.timeout = self.server.idle_timeout_s  # every read of the socket waits at most this
        super().setup()

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, TimeoutError):  # the client left or went quiet: nothing to answer
            self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        """The HTTP layer's own errors (bad request line, 414, 431, unknown method) as JSON."""
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # an unreadable request line leaves HTTP/0.9: no head
        phrase = message or self.responses.get(code, ("Error",))[0]
        self._reply(code, json.dumps({"error": phrase}))

    def do_HEAD(self):
        self._serve("HEAD")

    def do_OPTIONS(self):
        self._serve("OPTIONS")

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
        except TimeoutError:
            self.close_connection = True
            wait = self.server.idle_timeout_s
            self._reply(408, json.dumps({"error": f"Request body not received within {wait:g} s"}))
            return
        except (ValueError, OSError) as error:
            self.close_connection = True
            self._reply(400, json.dumps({"error": f"Malformed request body: {error}"}))
            return
        path = urlsplit(self.path).path
        if method == "GET" and path == PROMETHEUS_PATH:
            self._reply(200, self.server.metrics.exposition().decode(), CONTENT_TYPE)
            return
        answer = self.server.api.handle(method, path, body, on_timeout=self._reply_late)
        if answer is None:  # answered 504 by the watchdog, the connection closed
            self.close_connection = True
            return
        timing = (
            {}
            if answer.model_s is None
            else {"Server-Timing": f"model;dur={1e3 * answer.model_s:.3f}"}
        )
        self._reply(answer.status, answer.body, headers=timing)

    def _reply_late(self, answer: Answer) -> None:
        """The timeout's answer, sent from the watchdog thread while this connection's thread is
        still in the abandoned work; the connection then closes, since a client may not send its
        next request before that work would have answered."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._reply(answer.status, answer.body)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

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

    def _reply(
        self,
        status: int,
        text: str,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format, *args):  # noqa: A002 - the name BaseHTTPRequestHandler uses
        if log.isEnabledFor(logging.DEBUG):  # formatted on every request otherwise
            log.debug("%s %s", self.address_string(), format % args)


class ModelServer(ThreadingHTTPServer):
    """The HTTP server; ``api`` answers each request on its own thread, ``metrics`` the scrapes."""

    daemon_threads = True
    # socketserver's backlog of 5 overflows when tens of clients connect at once: the kernel then
    # drops or resets their connections.
    request_queue_size = socket.SOMAXCONN

    def __init__(
        self,
        address: tuple[str, int],
        api: RestApi,
        metrics: ServingMetrics,
        max_body_bytes: int,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ):
        super().__init__(address, _RequestHandler)
        self.api = api
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._open = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        if not self._open.acquire(blocking=False):
            log.warning("%d connections open: refusing %s", self.max_connections, client_address)
            body = json.dumps({"error": "Too many open connections; retry later"}).encode()
            head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            with contextlib.suppress(OSError):
                request.sendall(head.encode() + body)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._open.release()

    def handle_error(self, request, client_address):
        """A connection's failure is its own: logged, never a traceback on stderr."""
        log.debug("connection from %s failed", client_address, exc_info=True)
