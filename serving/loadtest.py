"""Loopback load test of the local server (``make bench-serving``), next to the in-process floor.

Calls the sentiment model's ``serving_default`` signature with one review directly in this process
(the floor: what serving costs without HTTP and JSON), then starts ``python -m serving.server`` on
a free 127.0.0.1 port, without and then with ``--enable-batching``, and sends the same review as a
row-format ``:predict`` at each concurrency (one client thread per connection, HTTP/1.1
keep-alive), a bounded number of requests or seconds each. Requests/s, mean and p50/p95/p99
latency, errors and the mean model call the server's runtime metric recorded during each level go
into BENCHMARKS.md's ``serving`` section. Last, a hot swap under load: on a copy of the models
folder, 8 client threads send 200 requests each while a new version is copied in and the old
version's folder is deleted at once, and every failed request is counted.
The model is the latest ``serving/models/sentiment`` export, else a smoke-config one made here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from components.versions import list_versions
from serving.load_generator import (
    Level,
    http_level,
    in_process_floor,
    model_call_totals,
    percentiles_ms,
)

log = logging.getLogger(__name__)
REPOSITORY = Path(__file__).resolve().parents[1]
SECTION = "serving"
OVERHEAD_TARGET_MS = 2.0
MODES = {"off": "server, loopback HTTP", "on": "server, loopback HTTP, batching"}
"""Table label of the server without and with ``--enable-batching``."""


def results_text(levels: list[Level], model: str, command: str, settings: str) -> str:
    """BENCHMARKS.md's serving section: machine, setup, table, overhead against the targets."""
    from components.reporting import machine_description, markdown_table

    floor = levels[0]
    unbatched = [level for level in levels if level.mode == MODES["off"]]
    single = next((level for level in unbatched if level.concurrency == 1), None)
    errors = sum(level.errors for level in levels)
    lines = [
        f"Machine: {machine_description()}. The server and the load generator share these cores.",
        "",
        f"Model: {model}. {settings}",
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `{command}`.",
        "",
        markdown_table([level.row() for level in levels]),
        "",
    ]
    if single is not None:
        lines.append(_overhead_text(single, floor))
    rates = {(level.mode, level.concurrency): level.requests_per_s for level in levels}
    gains = [
        f"×{rate / rates[MODES['off'], concurrency]:.2f} at concurrency {concurrency}"
        for (mode, concurrency), rate in rates.items()
        if mode == MODES["on"] and (MODES["off"], concurrency) in rates
    ]
    if gains:
        lines.append(f"Requests/s with batching over without: {', '.join(gains)}.")
    lines.append(f"Errors: {errors} (target 0: {'met' if errors == 0 else 'missed'}).")
    return "\n".join(lines)


def _overhead_text(single: Level, floor: Level) -> str:
    """The unbatched server's overhead, one request at a time: its p50 over the floor's, its mean
    over the mean model call, and the one judged: the p50 of each request's latency minus that
    request's own model call (``Server-Timing``): same process, same request, so neither the
    spread between processes (a few ms for a 30 ms model on 2 shared cores) nor a slow tail of
    model calls counts as overhead."""
    over_floor = percentiles_ms(single.latencies_s)[0] - percentiles_ms(floor.latencies_s)[0]
    text = f"Server overhead, one request at a time: p50 {over_floor:.2f} ms over the floor's"
    judged = over_floor
    if not math.isnan(single.model_call_ms):
        over_mean = single.mean_ms - single.model_call_ms
        text += (
            f"; mean latency {single.mean_ms:.2f} ms over the mean model call inside the server "
            f"{single.model_call_ms:.2f} ms: {over_mean:.2f} ms"
        )
        judged = over_mean
    if single.overheads_s:
        p50, p95, p99 = percentiles_ms(single.overheads_s)
        judged = p50
        text += (
            f"; each request's latency minus its own model call (`Server-Timing`, "
            f"{len(single.overheads_s):,} requests): **p50 {p50:.2f} ms**, p95 {p95:.2f} ms, "
            f"p99 {p99:.2f} ms"
        )
    verdict = "met" if judged <= OVERHEAD_TARGET_MS else "missed"
    return f"{text} (target p50 ≤ {OVERHEAD_TARGET_MS:g} ms: {verdict})."


def latest_version(models_dir: Path, model: str) -> Path | None:
    versions = list_versions(models_dir / model)
    return models_dir / model / str(versions[-1]) if versions else None


def export_smoke_model(scratch: Path) -> Path:
    """The sentiment smoke pipeline (one epoch) exported to ``<scratch>/models``."""
    settings = {
        "train.epochs": "1",
        "blessing.thresholds": "[]",  # the load test needs a model, not a good one
        "export.register": "false",
        "export.serving_dir": str(scratch / "models"),
    }
    command = [sys.executable, "-m", "pipelines", "run", "sentiment", "--config"]
    command += [str(REPOSITORY / "pipelines/configs/sentiment.smoke.yaml")]
    command += ["--artifacts-root", str(scratch / "artifacts")]
    command += [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}"}
    log.info("no exported sentiment model: exporting a smoke-config one to %s", scratch)
    subprocess.run(command, cwd=scratch, env=environment, check=True)
    return scratch / "models"


@contextmanager
def local_server(models_dir: Path, model: str, log_path: Path, batching: str = "off"):
    """``python -m serving.server`` on a free loopback port, ``--enable-batching`` if ``batching``
    is ``on``; yields its URL once ``model`` loads."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "serving.server", "--models-dir", str(models_dir)]
    command += ["--port", str(port), "--no-grpc", "--log-level", "WARNING"]
    command += ["--enable-batching"] if batching == "on" else []
    with log_path.open("w") as output:
        process = subprocess.Popen(command, cwd=REPOSITORY, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_available(url, model, process, log_path)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_available(url, model, process, log_path: Path, timeout: float = 300) -> None:
    from serving import client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {log_path}")
        try:
            status = client.call(url, client.model_path(model), timeout=5)
            if status["model_version_status"][0]["state"] == "AVAILABLE":
                return
        except client.ServingClientError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not serve {model} within {timeout:.0f} s: {log_path}")


def run(args, command: str) -> str:
    """Measure the floor, then the server in each batching mode; return the section text."""
    from components.text_classification.signatures import SAMPLE_REVIEWS

    review = SAMPLE_REVIEWS[0]
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loadtest-")))
        models_dir, version = args.models_dir, latest_version(args.models_dir, args.model)
        source = f"{args.model} version {version.name if version else ''} from {models_dir}"
        if version is None:
            models_dir = export_smoke_model(scratch)
            version = latest_version(models_dir, args.model)
            source = "sentiment from a one-epoch smoke-config export made for this run"
        print(f"model: {source}", flush=True)
        levels = [in_process_floor(version, review, args.floor_calls)]
        print(_progress(levels[-1]), flush=True)
        path = f"/v1/models/{args.model}/versions/{version.name}:predict"
        body = json.dumps({"instances": [review]}).encode()
        for mode in args.batching:
            with ExitStack() as server:
                url = args.url or server.enter_context(
                    local_server(models_dir, args.model, scratch / f"server-{mode}.log", mode)
                )
                levels += _server_levels(args, MODES[mode], url, path, body)
        settings = _settings(args, models_dir)
        swap = "" if args.url else hot_swap(args.model, version, scratch, body)
    return results_text(levels, source, command, settings) + swap


def hot_swap(model: str, version: Path, scratch: Path, body: bytes) -> str:
    """8 threads x 200 requests to the unversioned model while version N+1 is copied in (hidden
    name, then renamed, as the exporter does) and version N's folder is deleted right after."""
    models_dir = scratch / "swap-models"
    shutil.copytree(version, models_dir / model / "1")
    threads, per_thread = 8, 200
    with local_server(models_dir, model, scratch / "server-swap.log") as url:
        swapped = threading.Event()

        def swap():
            time.sleep(0.5)  # the load is running
            incoming = models_dir / model / ".incoming"
            shutil.copytree(models_dir / model / "1", incoming)
            incoming.rename(models_dir / model / "2")
            shutil.rmtree(models_dir / model / "1")
            swapped.set()

        swapper = threading.Thread(target=swap)
        swapper.start()
        level = http_level(
            "hot swap", url, f"/v1/models/{model}:predict", body, threads, threads * per_thread, 600
        )
        swapper.join()
        from serving import client

        served = client.call(url, client.model_path(model) + "/metadata")["model_spec"]["version"]
    done = "during" if swapped.is_set() else "after"
    text = (
        f"\n\nHot swap under load: {threads} threads x {per_thread} requests to "
        f"`/v1/models/{model}:predict` while version 2 was copied in and version 1's folder "
        f"deleted right after (no wait), {done} the load: **{level.errors} failed of "
        f"{threads * per_thread:,}** (target 0: {'met' if level.errors == 0 else 'missed'}); "
        f"version {served} served at the end."
    )
    print(text.strip(), flush=True)
    return text


def _server_levels(args, mode: str, url: str, path: str, body: bytes) -> list[Level]:
    """One level per concurrency, after the unrecorded warmup requests, each with the mean
    model call the server's metrics recorded during it."""
    http_level(mode, url, path, body, 1, args.warmup, args.seconds)
    levels = []
    for concurrency in args.concurrency:
        before = model_call_totals(url, args.model)
        level = http_level(mode, url, path, body, concurrency, args.requests, args.seconds)
        after = model_call_totals(url, args.model)
        if before and after and after[1] > before[1]:
            mean_ms = (after[0] - before[0]) / (after[1] - before[1]) * 1e3
            level = dataclasses.replace(level, model_call_ms=mean_ms)
        levels.append(level)
        print(_progress(level), flush=True)
    return levels


def _settings(args, models_dir: Path) -> str:
    from serving.batching import server_parameters

    text = (
        f'Request: one review, row format (`{{"instances": [review]}}`), over keep-alive '
        f"HTTP/1.1 connections on 127.0.0.1, one per client thread; {args.requests:,} requests "
        f"per concurrency (at most {args.seconds:g} s) after {args.warmup} to warm up."
    )
    if "on" in args.batching:
        parameters = server_parameters(None, models_dir)  # what the server reads by default
        text += (
            f" Batching: `--enable-batching`, batches of up to {parameters.max_batch_size} "
            f"requests, {parameters.batch_timeout_micros / 1000:g} ms for one to fill, "
            f"{parameters.num_batch_threads} batch threads."
        )
    return text


def _progress(level: Level) -> str:
    return "  ".join(f"{key}={value}" for key, value in level.row().items())


def main(argv: list[str] | None = None) -> int:
    from components.reporting import write_section

    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv)
    if args.url and len(args.batching) > 1:
        parser.error("--url measures one server: add --batching off or on, as it was started")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command = "make bench-serving" if not argv else "python -m serving.loadtest " + shlex.join(argv)
    text = run(args, command)
    print(text)
    write_section(args.output, SECTION, text)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.loadtest", description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=Path("serving/models"))
    parser.add_argument("--model", default="sentiment", help="a model taking one `text` input")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency")
    parser.add_argument("--seconds", type=float, default=120.0, help="time bound per concurrency")
    parser.add_argument("--warmup", type=int, default=50, help="unrecorded requests first")
    parser.add_argument("--floor-calls", type=int, default=2000, help="in-process calls")
    parser.add_argument(
        "--batching",
        nargs="+",
        choices=list(MODES),
        default=list(MODES),
        help="the server without (off) and with (on) --enable-batching, one after the other",
    )
    parser.add_argument(
        "--url", help="measure this running server (serving --models-dir) instead of starting one"
    )
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
