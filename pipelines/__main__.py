"""Command line: ``python -m pipelines run sentiment --model bigru --set train.epochs=3``.

Runs a whole pipeline or one stage of it (``--stage train --from-run <run_id>`` reuses the
upstream artifacts of an earlier run; ``--tune`` searches hyperparameters before training),
compares finished runs in MLflow (``compare sentiment``), prints a resolved config, runs the
benchmark suite, or rolls an exported model back to its previous version (``rollback
--model-name sentiment``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from components.errors import PipelineError
from pipelines import registry
from pipelines.config import split_overrides


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.handler(args)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a pipeline (or one stage of it)")
    _add_config_arguments(run)
    run.add_argument(
        "--stage", help="run only this stage (ingest, preprocess, train, evaluate, bless, export)"
    )
    run.add_argument("--from-run", help="with --stage: take upstream artifacts from this run id")
    run.add_argument(
        "--until", metavar="STAGE", help="stop after this stage, e.g. evaluate: no bless, no export"
    )
    run.add_argument(
        "--tune",
        action="store_true",
        help="search the tune.space hyperparameters first; train uses the best (tune.* settings)",
    )
    run.add_argument(
        "--tune-workers",
        type=int,
        metavar="N",
        help="with --tune: search with N worker processes, this run as KerasTuner's chief",
    )
    run.add_argument(
        "--pin-cores", action="store_true", help="with --tune-workers: one CPU core per worker"
    )
    run.add_argument("--run-id", help="name this run (default: start time and a random suffix)")
    run.add_argument("--artifacts-root", type=Path, default=Path("artifacts"))
    run.add_argument(
        "--no-cache",
        dest="use_cache",
        action="store_false",
        help="rerun every stage even if an earlier run did the same work",
    )
    run.set_defaults(handler=_run)

    worker = commands.add_parser(
        "tune-worker",
        help="run the trials a tuning chief hands out (KERASTUNER_* variables; make tune WORKERS=)",
    )
    _add_config_arguments(worker)
    worker.add_argument("--from-run", required=True, help="the chief's run id")
    worker.add_argument("--artifacts-root", type=Path, default=Path("artifacts"))
    worker.set_defaults(handler=_tune_worker)

    compare = commands.add_parser(
        "compare", help="table and plot comparing the finished runs of a pipeline in MLflow"
    )
    compare.add_argument("pipeline", choices=list(registry.PIPELINES))
    compare.add_argument("--last", type=int, help="only the latest N runs (default: all)")
    compare.add_argument(
        "--output-dir", type=Path, help="default: artifacts/<pipeline>/compare (also in MLflow)"
    )
    compare.set_defaults(handler=_compare)

    bench = commands.add_parser("bench", help="train and score every cell type on the full data")
    bench.add_argument("pipeline", choices=list(registry.PIPELINES))
    bench.add_argument(
        "--models", nargs="+", help="benchmark runs to do, e.g. bigru simplernn-last (default: all)"
    )
    bench.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        help="only these of a headline row's seeds; the others' results are kept from earlier runs",
    )
    bench.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    _add_override_arguments(bench)
    bench.set_defaults(handler=_bench)
    _add_artifact_commands(commands)
    return parser


def _add_artifact_commands(commands) -> None:
    """Commands about what runs produced: lineage, and the exported models (generate, forecast,
    rollback)."""
    lineage = commands.add_parser(
        "lineage", help="print the data, runs and artifacts behind an artifact or served version"
    )
    lineage.add_argument("target", type=Path, help="e.g. serving/models/sentiment/3")
    lineage.add_argument("--artifacts-root", type=Path, default=Path("artifacts"))
    lineage.add_argument("--json", action="store_true", help="the manifests as JSON")
    lineage.set_defaults(handler=_lineage)

    show = commands.add_parser("show-config", help="print the resolved config as YAML")
    _add_config_arguments(show)
    show.set_defaults(handler=_show_config)

    generate = commands.add_parser("generate", help="sample text from an exported language model")
    generate.add_argument("--model-name", default="lm_char", help="name under --serving-dir")
    generate.add_argument("--serving-dir", type=Path, default=Path("serving/models"))
    generate.add_argument("--version", type=int, help="default: the latest version")
    generate.add_argument("--prompt", default="")
    generate.add_argument("--length", type=int, default=300, help="tokens to generate")
    generate.add_argument("--temperature", type=float, default=0.8, help="0 picks the likeliest")
    generate.add_argument(
        "--top-k", type=int, default=0, help="sample among the k likeliest; 0: all"
    )
    generate.add_argument("--seed", type=int, default=42)
    generate.set_defaults(handler=_generate)

    forecast = commands.add_parser("forecast", help="forecast a sales CSV with an exported model")
    forecast.add_argument("--input", type=Path, required=True, help="CSV in the training format")
    forecast.add_argument("--output", type=Path, default=Path("forecast.csv"))
    forecast.add_argument("--model-name", default="sales", help="name under --serving-dir")
    forecast.add_argument("--serving-dir", type=Path, default=Path("serving/models"))
    forecast.add_argument("--version", type=int, help="default: the latest version")
    forecast.set_defaults(handler=_forecast)

    rollback = commands.add_parser(
        "rollback", help="serve a model's previous version again and make it the champion"
    )
    rollback.add_argument("--model-name", required=True, help="name under --serving-dir")
    rollback.add_argument("--serving-dir", type=Path, default=Path("serving/models"))
    rollback.set_defaults(handler=_rollback)


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", choices=list(registry.PIPELINES))
    parser.add_argument(
        "--config", type=Path, help="YAML config (default: configs/<pipeline>.yaml)"
    )
    parser.add_argument("--model", help="model preset, e.g. simplernn, lstm, gru, bilstm, bigru")
    _add_override_arguments(parser)


def _add_override_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value with a YAML value, e.g. --set train.epochs=3 or "
        "--set 'model.quantiles=[0.1, 0.5, 0.9]' (repeatable)",
    )
    parser.add_argument(
        "--overrides",
        dest="overrides",
        type=_override_items,
        action="extend",
        metavar="'KEY=VALUE ...'",
        help="several overrides in one argument, split at spaces outside brackets and quotes "
        "(what make's SET= passes)",
    )


def _override_items(text: str) -> list[str]:
    try:
        return split_overrides(text)
    except PipelineError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _run(args) -> int:
    from components import tracking
    from pipelines.runner import run_pipeline
    from pipelines.workers import worker_role

    spec = registry.get(args.pipeline)
    config = registry.resolve_config(args.pipeline, args.config, args.model, args.overrides)
    if args.until and args.stage:
        raise PipelineError("--until runs the stages up to one, --stage a single one: give one")
    stages = spec.stages_to_run(args.tune, args.until)  # an unknown --until fails here, at once
    if args.tune_workers is not None:
        return _run_with_tune_workers(args)
    # In a cluster (TF_CONFIG set) only the chief keeps what it makes: pipelines/workers.py.
    with worker_role(config, stages, args.artifacts_root, args.stage) as (stages, root, chief):
        result = run_pipeline(
            args.pipeline,
            config,
            stages,
            root,
            args.stage,
            args.from_run,
            use_cache=args.use_cache,
            run_id=args.run_id,
        )
        if not chief:
            print(f"\nworker done: its artifacts ({result.run_dir}) are discarded")
            return 0
    print(f"\nrun {result.run_id} finished")
    print(f"  artifacts:  {result.run_dir}")
    page = tracking.run_page_url(result.mlflow_run_id)
    local = page.startswith(tracking.LOCAL_UI)
    print(f"  MLflow run: {page}{' (`make mlflow-ui` serves it)' if local else ''}")
    if "export" in result.outputs:
        push = result.outputs["export"].load()
        print(f"  exported:   {push['path'] if push['pushed'] else 'nothing, ' + push['reason']}")
    if "evaluate" in result.outputs:
        print(f"  test:       {spec.headline(result.outputs['evaluate'].load())}")
    if args.until:
        print(f"  stopped:    after {args.until} (--until)")
    return 0


def _run_with_tune_workers(args) -> int:
    """The same run as KerasTuner's chief, beside ``--tune-workers`` worker processes."""
    from pipelines import tune_workers

    if not args.tune or args.stage or args.run_id:
        raise PipelineError("--tune-workers goes with --tune, on a whole run without --run-id")
    arguments = [*(["--config", str(args.config)] if args.config else [])]
    arguments += [*(["--model", args.model] if args.model else [])]
    arguments += [item for override in args.overrides for item in ("--set", override)]
    return tune_workers.launch(
        args.pipeline,
        args.tune_workers,
        arguments,
        args.artifacts_root,
        args.pin_cores,
        args.use_cache,
        args.until,
    )


def _tune_worker(args) -> int:
    from pipelines import tune_workers

    config = registry.resolve_config(args.pipeline, args.config, args.model, args.overrides)
    out_dir = tune_workers.run_worker(args.pipeline, config, args.artifacts_root, args.from_run)
    print(f"tuning worker done: {out_dir / 'hyperparameters.json'}")
    return 0


def _compare(args) -> int:
    from pipelines import compare

    output_dir = args.output_dir or Path("artifacts") / args.pipeline / "compare"
    table = compare.run(args.pipeline, output_dir, args.last)
    print(table.read_text())
    print(f"saved in {output_dir}; logged to MLflow as run 'compare' of '{args.pipeline}'")
    return 0


def _lineage(args) -> int:
    import json

    from pipelines import lineage

    chain = lineage.run(args.target, args.artifacts_root)
    print(json.dumps(chain, indent=2) if args.json else lineage.format_chain(chain))
    return 0


def _show_config(args) -> int:
    from pipelines.config import to_yaml

    print(to_yaml(registry.resolve_config(args.pipeline, args.config, args.model, args.overrides)))
    return 0


def _generate(args) -> int:
    """Calls the SavedModel's in-graph ``generate`` signature, exactly as TF Serving would."""
    import tensorflow as tf

    model = tf.saved_model.load(str(_exported_version(args, "make lm-char")))
    result = model.signatures["generate"](
        prompt=tf.constant(args.prompt),
        num_tokens=tf.constant(args.length),
        temperature=tf.constant(args.temperature),
        top_k=tf.constant(args.top_k),
        seed=tf.constant(args.seed, tf.int64),
    )
    print(result["text"].numpy().decode())
    return 0


def _forecast(args) -> int:
    from components.forecasting import requests

    table = requests.run(_exported_version(args, "make sales"), args.input, args.output)
    print(f"wrote {len(table):,} forecast rows to {args.output}")
    return 0


def _exported_version(args, how_to_train: str) -> Path:
    """``<serving_dir>/<model_name>/<version>``, the latest version unless one is named."""
    from components.errors import DataError
    from components.versions import list_versions

    base = args.serving_dir / args.model_name
    versions = list_versions(base)
    if not versions or (args.version is not None and args.version not in versions):
        raise DataError(
            f"no exported version {args.version or ''} under {base}; train one first, e.g. "
            f"`{how_to_train}` (exported versions: {versions or 'none'})"
        )
    return base / str(args.version or versions[-1])


def _rollback(args) -> int:
    from serving import rollback

    done = rollback.run(args.serving_dir, args.model_name)
    print(f"{done['model_name']}: version {done['rolled_back']['version']} rolled back")
    print(f"  moved to:   {done['rolled_back']['path']}")
    print(f"  serving:    version {done['serving']['version']} ({done['serving']['path']})")
    champion = done["champion"]
    print(f"  champion:   registered version {champion}" if champion else "  champion:   none")
    print(f"  rewrote:    {', '.join(done['deployment_files'])}")
    return 0


def _bench(args) -> int:
    from pipelines import benchmark

    return benchmark.run(args.pipeline, args.models, args.output, args.overrides, args.seeds)


if __name__ == "__main__":
    sys.exit(main())
