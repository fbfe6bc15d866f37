"""Command-line client for TF Serving's REST API: the local server (``make serve``) or the real one.

``python -m serving.client --model sentiment --text "A moving film."`` sends the reviews to the
model's ``serving_default`` signature (row format) and prints one line per review (``--explain``:
an attention model's ``explain`` signature, with the words that weighed most under each line);
``--prompt "ROMEO:" --length 200`` calls a language model's ``generate`` signature (columnar format,
its inputs being scalars) and prints the text; ``--csv history.csv --model sales`` sends a sales
history to a forecasting model (columnar format, built as ``python -m pipelines forecast`` builds
it) and writes the forecast CSV; ``--status`` and ``--metadata`` print the model's version status
and signature defs. Standard library only (``urllib``, ``json``), but for ``--csv``, which reads the
CSV with pandas (never TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from components.versions import list_versions

DEFAULT_URL = "http://127.0.0.1:8501"
DEFAULT_MODELS_DIR = Path("serving/models")


class ServingClientError(Exception):
    """The server refused the request (its ``error`` message) or could not be reached."""


def call(url: str, path: str, payload: dict | None = None, timeout: float = 120.0) -> dict:
    """GET ``path`` (or POST ``payload`` as JSON) and return the JSON answer."""
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url.rstrip("/") + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        try:
            message = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            message = body or error.reason
        raise ServingClientError(f"HTTP {error.code} from {request.full_url}: {message}") from None
    except urllib.error.URLError as error:
        raise ServingClientError(
            f"cannot reach {url}: {error.reason} (is a server running? `make serve`)"
        ) from None


def model_path(model: str, version: int | None = None, label: str | None = None) -> str:
    """``/v1/models/<model>``, with ``/versions/<n>`` or ``/labels/<label>``."""
    path = f"/v1/models/{quote(model, safe='')}"
    if version is not None:
        return f"{path}/versions/{version}"
    return f"{path}/labels/{quote(label, safe='')}" if label else path


def predict_texts(url: str, model: str, texts: list[str], **version) -> list:
    """One prediction per text from ``serving_default``: a dict of outputs, or a value."""
    return call(url, model_path(model, **version) + ":predict", {"instances": texts})["predictions"]


def explain_texts(url: str, model: str, texts: list[str], **version) -> list[dict]:
    """``serving_default``'s outputs plus ``tokens`` and their attention ``weights``, per text."""
    payload = {"signature_name": "explain", "instances": texts}
    return call(url, model_path(model, **version) + ":predict", payload)["predictions"]


def top_tokens(explained: dict, count: int) -> list[tuple[str, float]]:
    """The ``count`` tokens with the largest attention weights, largest first (padding left out)."""
    pairs = [
        (token, weight)
        for token, weight in zip(explained["tokens"], explained["weights"], strict=True)
        if token
    ]
    return sorted(pairs, key=lambda pair: -pair[1])[:count]


def generate(
    url: str,
    model: str,
    prompt: str,
    length: int,
    temperature: float = 0.8,
    top_k: int = 0,
    seed: int = 42,
    **version,
) -> str:
    """The prompt and its continuation, from the language model's ``generate`` signature."""
    inputs = {
        "prompt": prompt,
        "num_tokens": length,
        "temperature": float(temperature),
        "top_k": top_k,
        "seed": seed,
    }
    payload = {"signature_name": "generate", "inputs": inputs}
    return call(url, model_path(model, **version) + ":predict", payload)["outputs"]["text"]


def forecast(url: str, model: str, history_csv: Path, request_info: Path | dict, **version):
    """The forecast table of every series in ``history_csv`` with enough history.

    ``request_info``: the export's ``assets.extra/forecast_request.json`` (or its content), which
    says how to read the CSV and how many periods the model takes and returns.
    """
    from components.forecasting import requests

    request = requests.requests_from_csv(request_info, history_csv)
    inputs = {name: values.tolist() for name, values in request.inputs.items()}
    answer = call(url, model_path(model, **version) + ":predict", {"inputs": inputs})["outputs"]
    # TF Serving leaves out the output's name when a signature has only one.
    return request.forecast_table(answer if isinstance(answer, dict) else {"forecast": answer})


def request_info_path(models_dir: Path, model: str, version: int | None = None) -> Path:
    """``<models_dir>/<model>/<version>/assets.extra/forecast_request.json``, latest by default."""
    from components.forecasting.requests import REQUEST_INFO

    base = Path(models_dir) / model
    versions = list_versions(base)
    chosen = version if version is not None else (versions[-1] if versions else None)
    if chosen is None:
        raise ServingClientError(
            f"no exported version of {model} under {models_dir} to read {REQUEST_INFO} from; "
            "pass --request-info"
        )
    return base / str(chosen) / "assets.extra" / REQUEST_INFO


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    version = {"version": args.version, "label": args.label}
    try:
        if args.status or args.metadata:
            suffix = "/metadata" if args.metadata else ""
            print(json.dumps(call(args.url, model_path(args.model, **version) + suffix), indent=2))
        elif args.prompt is not None:
            print(
                generate(
                    args.url, args.model, args.prompt, args.length, args.temperature,
                    args.top_k, args.seed, **version,
                )
            )  # fmt: skip
        elif args.csv is not None:
            return _forecast(args, version)
        else:
            ask = explain_texts if args.explain else predict_texts
            predictions = ask(args.url, args.model, args.text, **version)
            for text, prediction in zip(args.text, predictions, strict=True):
                print(_prediction_line(text, prediction))
                if args.explain:
                    words = top_tokens(prediction, args.top_words)
                    print("\t" + ", ".join(f"{token} {weight:.3f}" for token, weight in words))
    except ServingClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _forecast(args, version: dict) -> int:
    from components.errors import DataError

    info = args.request_info or request_info_path(args.models_dir, args.model, args.version)
    try:
        table = forecast(args.url, args.model, args.csv, info, **version)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.output is None:
        print(table.to_csv(index=False), end="")
    else:
        from components.forecasting.requests import write_csv

        write_csv(table, args.output)
        print(f"wrote {len(table):,} forecast rows to {args.output}", file=sys.stderr)
    return 0


def _prediction_line(text: str, prediction) -> str:
    if isinstance(prediction, dict) and {"label_name", "label", "scores"} <= set(prediction):
        score = prediction["scores"][prediction["label"]]
        return f"{prediction['label_name']}\t{score:.4f}\t{text}"
    return json.dumps(prediction)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__)
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"server address (default {DEFAULT_URL})"
    )
    parser.add_argument("--model", default="sentiment", help="model name under /v1/models/")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="a specific version (default: the latest)")
    which.add_argument("--label", help="a version label, e.g. stable or canary")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", action="append", help="a text to classify (repeatable)")
    what.add_argument("--prompt", help="generate text after this prompt (language models)")
    what.add_argument("--status", action="store_true", help="print the model's version status")
    what.add_argument("--metadata", action="store_true", help="print the model's signatures")
    what.add_argument("--csv", type=Path, help="sales history CSV to forecast (sales models)")
    texts = parser.add_argument_group("classification (with --text)")
    texts.add_argument(
        "--explain",
        action="store_true",
        help="call an attention model's explain signature: each text's most weighted words too",
    )
    texts.add_argument("--top-words", type=int, default=5, help="words shown with --explain")
    sales = parser.add_argument_group("forecasting (with --csv)")
    sales.add_argument(
        "--request-info",
        type=Path,
        help="the export's forecast_request.json (default: the one under --models-dir)",
    )
    sales.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help=f"where the exports are, for the default --request-info ({DEFAULT_MODELS_DIR})",
    )
    sales.add_argument("--output", type=Path, help="write the forecast CSV here (default: stdout)")
    generation = parser.add_argument_group("generation (with --prompt)")
    generation.add_argument("--length", type=int, default=200, help="tokens to generate")
    generation.add_argument("--temperature", type=float, default=0.8, help="0: the likeliest")
    generation.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest")
    generation.add_argument("--seed", type=int, default=42)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
