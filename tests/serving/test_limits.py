"""Every wait and every piece of work a client can cause is bounded, and every refusal is JSON."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from serving.server import LocalModelServer
from tests.serving.conftest import call, save_toy, wait_for

GOOD = {"inputs": {"x": [[1.0, 2.0, 3.0]], "k": [1], "word": ["a"]}}


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_models")
    save_toy(root / "toy" / "1")
    return root


def raw_exchange(address, data: bytes, timeout: float = 30.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the server sends until it closes."""
    with socket.create_connection(address, timeout=timeout) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def status_and_error(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("depth", [65, 500, 980, 5000])
def test_deep_nesting_is_a_clear_400(toy_dir, depth):
    with LocalModelServer(toy_dir, port=0) as server:
        url = server.url + "/v1/models/toy:predict"
        body = b'{"inputs": {"x": ' + b"[" * depth + b"1" + b"]" * depth + b"}}"
        status, answer = call(url, body)
        assert status == 400
        assert answer == {
            "error": f"JSON Parse error: nesting depth {depth + 2} exceeds the limit of 64"
        }
        assert call(url, GOOD)[0] == 200


def test_the_http_layers_own_refusals_are_json(toy_dir):
    with LocalModelServer(toy_dir, port=0) as server:
        address = server.http.server_address[:2]
        long_line = b"GET /v1/models/" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert status_and_error(raw_exchange(address, long_line)) == (
            414,
            {"error": "Request-URI Too Long"},
        )
        headers = b"".join(b"X-%d: y\r\n" % i for i in range(120))
        many = b"GET /v1/models/toy HTTP/1.1\r\n" + headers + b"\r\n"
        assert status_and_error(raw_exchange(address, many))[0] == 431
        status, answer = status_and_error(raw_exchange(address, b"NONSENSE\r\n\r\n"))
        assert status == 400 and "error" in answer
        assert call(server.url + "/v1/models/toy", method="OPTIONS") == (
            400,
            {"error": "Malformed request: OPTIONS /v1/models/toy"},
        )
        head = raw_exchange(address, b"HEAD /v1/models/toy HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and head.endswith(b"\r\n\r\n")  # no body
        assert call(server.url + "/v1/models/toy:predict", GOOD)[0] == 200


def test_quiet_and_short_bodied_connections_are_closed(toy_dir):
    with LocalModelServer(toy_dir, port=0, idle_timeout_s=0.5) as server:
        address = server.http.server_address[:2]
        # Headers never finished, and a body shorter than its Content-Length: both closed.
        assert raw_exchange(address, b"POST /v1/models/toy:predict HTTP/1.1\r\n") == b""
        short = b"POST /v1/models/toy:predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{}"
        assert status_and_error(raw_exchange(address, short)) == (
            408,
            {"error": "Request body not received within 0.5 s"},
        )
        assert call(server.url + "/v1/models/toy:predict", GOOD)[0] == 200


def test_connections_past_the_limit_get_503_and_the_server_goes_on(toy_dir):
    with LocalModelServer(toy_dir, port=0) as server:
        server.http._open = threading.BoundedSemaphore(2)
        address = server.http.server_address[:2]
        # Accepted in the order they connect: these two take both places and say nothing.
        held = [socket.create_connection(address, timeout=30) for _ in range(2)]
        status, answer = status_and_error(
            raw_exchange(address, b"GET /v1/models/toy HTTP/1.1\r\n\r\n")
        )
        assert status == 503 and answer == {"error": "Too many open connections; retry later"}
        for connection in held:
            connection.close()
        wait_for(lambda: server.http._open.acquire(blocking=False))  # a place is free again
        server.http._open.release()
        assert call(server.url + "/v1/models/toy:predict", GOOD)[0] == 200


def test_a_request_past_the_timeout_gets_504_and_the_next_one_is_answered(toy_dir, monkeypatch):
    with LocalModelServer(toy_dir, port=0, rest_api_timeout_s=0.5) as server:
        url = server.url + "/v1/models/toy:predict"
        servable = server.store.servable("toy", None, None)
        release, original = threading.Event(), type(servable).run

        def stuck(self, signature, inputs):
            release.wait(30)
            return original(self, signature, inputs)

        monkeypatch.setattr(type(servable), "run", stuck)
        assert call(url, GOOD) == (504, {"error": "Request timed out after 500 ms"})
        release.set()
        monkeypatch.undo()
        assert call(url, GOOD)[0] == 200
