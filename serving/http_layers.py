"""Why the local server keeps its own HTTP layer: a side-by-side measurement against uvicorn.

``make bench-http-layers`` serves one tiny SavedModel through the same :class:`RestApi` twice in
one process: behind :class:`~serving.http_server.ModelServer` (the standard library's HTTP server
with our bounded reads) and behind uvicorn (the ASGI server MLflow already installs, h11 parser),
the model call handed to a thread as ours does. Both answer with ``Server-Timing``, so each
request's overhead (its latency minus its own model call) is measured alike, in alternating
rounds (these VMs drift run to run; only side-by-side ratios hold). Then both get the same
malformed requests, to see whether their errors keep TF Serving's ``{"error": ...}`` bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import tensorflow as tf

from serving.load_generator import http_level, percentiles_ms
from serving.rest_api import RestApi
from serving.server import LocalModelServer

SECTION = "http-layers"
PATH = "/v1/models/tiny:predict"
BODY = json.dumps({"instances": [[1.0, 2.0, 3.0]]}).encode()
MALFORMED = {
    "garbage request line": b"GARBAGE\r\n\r\n",
    "negative Content-Length": b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: -5\r\n\r\n",
    "a 70 KB header line": b"GET /v1/models/tiny HTTP/1.1\r\nHost: x\r\nX-Big: "
    + b"a" * 70_000
    + b"\r\n\r\n",
}


def save_tiny_model(path: Path) -> None:
    """A SavedModel whose call costs well under a millisecond: latency is the HTTP layer's."""
    module = tf.Module()
    module.weights = tf.Variable([[0.5], [0.25], [0.125]])

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def serve(x):
        return {"y": tf.matmul(x, module.weights)}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def asgi_app(api: RestApi):
    """The REST API as an ASGI application: read the body, answer on a worker thread (without
    the request timeout: the comparison is of what each layer costs a request)."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(None, api.handle, scope["method"], scope["path"], body)
        headers = [(b"content-type", b"application/json")]
        if answer.model_s is not None:
            headers.append((b"server-timing", f"model;dur={1e3 * answer.model_s:.3f}".encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body.encode()})

    return app


@contextmanager
def uvicorn_server(api: RestApi):
    import uvicorn

    config = uvicorn.Config(
        asgi_app(api), host="127.0.0.1", port=0, log_level="warning", http="h11", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", uvicorn.__version__
    finally:
        server.should_exit = True
        thread.join(10)


def first_line_and_body(url: str, request: bytes) -> tuple[str, str]:
    """What a server answers to raw bytes: its status line and body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    head, _, body = answer.decode(errors="replace").partition("\r\n\r\n")
    return head.split("\r\n")[0] or "(nothing)", body


def measure(rounds: int, requests: int, concurrency: list[int]) -> str:
    overheads: dict[tuple[str, int], list[float]] = {}
    rates: dict[tuple[str, int], list[float]] = {}
    malformed = []
    with tempfile.TemporaryDirectory(prefix="http-layers-") as scratch:
        save_tiny_model(Path(scratch) / "tiny" / "1")
        with LocalModelServer(Path(scratch), port=0) as ours, uvicorn_server(ours.api) as theirs:
            uvicorn_url, uvicorn_version = theirs
            layers = {
                "ours (http.server)": ours.url,
                f"uvicorn {uvicorn_version} (h11)": uvicorn_url,
            }
            for name, url in layers.items():
                http_level(name, url, PATH, BODY, 1, 200, 60)  # warm up
            for round_number in range(rounds):
                for name, url in layers.items():
                    for clients in concurrency:
                        level = http_level(name, url, PATH, BODY, clients, requests, 120)
                        if level.errors:
                            raise RuntimeError(f"{name}: {level.errors} failed requests")
                        p50 = percentiles_ms(level.overheads_s)[0]
                        overheads.setdefault((name, clients), []).append(p50)
                        rates.setdefault((name, clients), []).append(level.requests_per_s)
                        print(
                            f"round {round_number + 1} {name} x{clients}: p50 overhead "
                            f"{p50:.2f} ms, {level.requests_per_s:.0f} requests/s",
                            flush=True,
                        )
            for probe, request in MALFORMED.items():
                answers = [first_line_and_body(url, request) for url in layers.values()]
                malformed.append((probe, answers))
    return _report(list(layers), overheads, rates, malformed, rounds, requests)


def _report(layers, overheads, rates, malformed, rounds, requests) -> str:
    from components.reporting import machine_description, markdown_table

    def spread(values: list[float], digits: int) -> str:
        return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    rows = [
        {
            "HTTP layer": name,
            "clients": str(clients),
            "p50 overhead per request": spread(overheads[name, clients], 2) + " ms",
            "requests/s": spread(rates[name, clients], 0),
        }
        for (name, clients) in overheads
    ]
    probes = [
        {"malformed request": probe}
        | {
            name: f"`{line}` {body[:60]!r}"
            for name, (line, body) in zip(layers, answers, strict=True)
        }
        for probe, answers in malformed
    ]
    return (
        f"Machine: {machine_description()}\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `make bench-http-layers`: one process, the "
        f"same RestApi and tiny model behind each layer, {rounds} alternating rounds of "
        f"{requests:,} requests per layer and concurrency (mean ± std over rounds of each round's "
        "p50 of latency minus the request's own model call).\n\n"
        f"{markdown_table(rows)}\n\n{markdown_table(probes)}"
    )


def main(argv: list[str] | None = None) -> int:
    from components.reporting import write_section

    parser = argparse.ArgumentParser(prog="python -m serving.http_layers", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args(argv)
    text = measure(args.rounds, args.requests, args.concurrency)
    print(text)
    write_section(args.output, SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
