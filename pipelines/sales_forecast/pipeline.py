"""Weekly sales forecasting (Walmart store x department series, or any CSV described by config).

ingest (config-driven CSV reading, joins, regular weekly grid) -> preprocess (time-ordered split,
scaling fitted on training weeks, lookback/horizon windows) -> [tune] -> train (recurrent encoder,
direct, encoder-decoder or attention head, MAE or quantile loss; or an ensemble of such members,
or seeds, averaged)
-> evaluate (test block; naive, seasonal-naive, moving-average, AutoETS, AutoTheta and MSTL
baselines on the same series) -> backtest (the same at earlier origins, retrained each time)
-> bless (backtest bars, no worse than what serves) -> export (if blessed: SavedModel taking raw
history, returning original units).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from components import bless, ensemble, export, tracking, train, tune
from components.artifacts import (
    Hyperparameters,
    Metrics,
    PushedModel,
    SeriesWindows,
    TimeSeries,
    TrainedModel,
)
from components.errors import ConfigError
from components.forecasting import (
    backtest,
    baselines,
    combination,
    evaluate,
    holidays,
    ingest,
    requests,
    signatures,
)
from components.forecasting import windows as series_windows
from components.forecasting.csv_files import DATA_DIR_ENV
from components.forecasting.ingest_config import SeriesIngestConfig
from components.forecasting.model import ForecastModelConfig, build_forecaster, forecast_loss
from components.forecasting.windows import load_spec
from components.forecasting.worker_windows import WorkerWindows
from pipelines import cache
from pipelines.config import with_overrides
from pipelines.spec import HEADLINE_SEEDS, Benchmark, BenchmarkRun, PipelineSpec, Stage
from pipelines.stages import bless_stage
from serving import deployment


@dataclasses.dataclass
class SalesForecastConfig:
    ingest: SeriesIngestConfig = dataclasses.field(default_factory=SeriesIngestConfig)
    windows: series_windows.SeriesWindowConfig = dataclasses.field(
        default_factory=series_windows.SeriesWindowConfig
    )
    model: ForecastModelConfig = dataclasses.field(default_factory=ForecastModelConfig)
    ensemble: ensemble.EnsembleConfig = dataclasses.field(default_factory=ensemble.EnsembleConfig)
    tune: tune.TuneConfig = dataclasses.field(default_factory=tune.TuneConfig)
    train: train.TrainConfig = dataclasses.field(
        default_factory=lambda: train.TrainConfig(epochs=10, batch_size=256)
    )
    baselines: baselines.BaselineConfig = dataclasses.field(
        default_factory=baselines.BaselineConfig
    )
    combination: combination.CombinationConfig = dataclasses.field(
        default_factory=combination.CombinationConfig
    )
    evaluate: evaluate.ForecastEvaluateConfig = dataclasses.field(
        default_factory=evaluate.ForecastEvaluateConfig
    )
    backtest: backtest.BacktestConfig = dataclasses.field(default_factory=backtest.BacktestConfig)
    blessing: bless.BlessingConfig = dataclasses.field(default_factory=bless.BlessingConfig)
    export: export.ExportConfig = dataclasses.field(
        default_factory=lambda: export.ExportConfig(model_name="sales")
    )

    def __post_init__(self):
        holiday = self.backtest.holiday_column
        if holiday is not None and holiday not in self.ingest.known_future:
            raise ConfigError(
                f"backtest.holiday_column={holiday!r} must be one of ingest.known_future "
                f"{self.ingest.known_future} (or null)"
            )
        holidays.require_supported(self.ingest.frequency, self.model.holidays)
        combination.require_consistent(self.combination, self.baselines.names, self.model.quantiles)
        member_configs(self)  # a misspelt or disallowed member override fails before ingest


Config = SalesForecastConfig
# What an ensemble member may change: its model and its training, not the data it sees. The
# quantiles stay the ensemble's, so every member outputs the same shape.
MEMBER_SECTIONS = ("model.", "train.")


def member_configs(config: Config) -> list[Config]:
    """The config of each model the ensemble trains: the pipeline's with that member's overrides
    (each member once per seed with ``ensemble.seeds``); empty for a single model."""
    configs = []
    seeds = config.ensemble.seeds
    for i, overrides in enumerate(config.ensemble.member_overrides(config.train.seed)):
        where = f"ensemble.members[{i // seeds}]"
        outside = [key for key in overrides if not key.startswith(MEMBER_SECTIONS)]
        if outside or "model.quantiles" in overrides:
            raise ConfigError(
                f"{where} sets {outside or ['model.quantiles']}; a member may change model.* "
                "and train.* keys except model.quantiles (set that for the whole ensemble)"
            )
        single = {"ensemble.members": [], "ensemble.seeds": 1}
        configs.append(with_overrides(config, {**overrides, **single}))
    return configs


def run_ingest(config: Config, inputs: dict, out_dir: Path) -> TimeSeries:
    min_length = config.windows.lookback + config.windows.horizon
    return ingest.run(config.ingest, out_dir, min_length)


def source_files(config: Config) -> dict:
    """The CSVs ingest reads, with sizes and times: part of its cache key, so new data reruns it."""
    root = Path(config.ingest.data_dir or os.environ.get(DATA_DIR_ENV) or Path.cwd())
    names = [config.ingest.path, *(join.path for join in config.ingest.joins)]
    return cache.files_state([root / name for name in names])


def run_preprocess(config: Config, inputs: dict, out_dir: Path) -> SeriesWindows:
    return series_windows.run(config.windows, inputs["ingest"], 0, out_dir)


def run_tune(config: Config, inputs: dict, out_dir: Path) -> Hyperparameters:
    setup = training_setup(config, inputs["preprocess"])
    return tune.search(config.tune, config.train, config.model, setup, out_dir)


def run_train(config: Config, inputs: dict, out_dir: Path) -> TrainedModel:
    return _train(config, inputs["preprocess"], out_dir)


def run_combine(config: Config, inputs: dict, out_dir: Path) -> TrainedModel:
    return backtest.combine(config, inputs["preprocess"], inputs["train"], out_dir)


def run_evaluate(config: Config, inputs: dict, out_dir: Path) -> Metrics:
    return backtest.score(config, inputs["preprocess"], inputs["combine"], out_dir)


def run_backtest(config: Config, inputs: dict, out_dir: Path) -> Metrics:
    """Folds 1.. (earlier origins) retrained and scored like fold 0; results averaged over all."""
    return backtest.backtest(config, inputs, out_dir, train_fn=_train_alone)


def run_export(config: Config, inputs: dict, out_dir: Path) -> PushedModel:
    windows, trained = inputs["preprocess"], inputs["combine"]
    example, _, _ = next(iter(series_windows.make_dataset(windows, "test", 2)))
    example = {
        **example,
        **_example_baseline_inputs(trained, inputs["evaluate"], len(example["forecast_start"])),
    }
    request = {
        "ingest": dataclasses.asdict(config.ingest),
        "lookback": config.windows.lookback,
        "horizon": config.windows.horizon,
        "season_length": load_spec(windows).season_length,
        "quantiles": config.model.quantiles,
        # A combined model's baselines that the request carries, and how the client fits them.
        "baseline_inputs": _baseline_inputs(config, trained),
    }
    return export.run(
        config.export,
        lambda: signatures.serving_archive(trained.load(), config.model.quantiles),
        example,
        inputs["bless"],
        trained,
        out_dir,
        extra_files={requests.REQUEST_INFO: json.dumps(request, indent=2)},
        write_deployment=deployment.write_deployment,
    )


def _example_baseline_inputs(trained: TrainedModel, scored: Metrics, rows: int) -> dict:
    """The baseline forecasts a combined model takes, for the first ``rows`` test windows (the
    export's example request): as the evaluate stage computed and scored them."""
    names = combination.served_baselines(trained)
    if not names:
        return {}
    table = pd.read_parquet(scored.path / "forecasts.parquet")
    horizon = len(table) // table["series"].nunique()
    return {
        combination.EXTERNAL_PREFIX + name: tf.constant(
            table[name].to_numpy(np.float32)[: rows * horizon].reshape(rows, horizon)
        )
        for name in names
    }


def _baseline_inputs(config: Config, trained: TrainedModel) -> dict | None:
    """How the client fits the baselines a combined model takes (None: it takes none)."""
    names = combination.served_baselines(trained)
    return {**dataclasses.asdict(config.baselines), "names": names} if names else None


def headline(metrics: dict) -> str:
    name = metrics["model_name"]
    scores = metrics["models"][name]
    skill = metrics.get("relative_to_seasonal_naive", {}).get(name)
    reference = metrics.get("reference", {}).get("label", "seasonal naive")
    versus = f", {skill:+.1%} WMAE vs {reference}" if skill is not None else ""
    wmae, mae = backtest.format_amount(scores["wmae"]), backtest.format_amount(scores["mae"])
    comparison = bless.baseline_comparison(  # the bar the blessing holds it to, named
        "wmae",
        False,
        scores["wmae"],
        {n: s["wmae"] for n, s in metrics["models"].items() if n in baselines.BASELINES},
    )
    if comparison["best_baseline"] is not None:
        best, bar = comparison["best_baseline"], comparison["baseline"]
        versus += (
            f", {1 - scores['wmae'] / bar:+.1%} vs the best baseline, {best} "
            f"({backtest.format_amount(bar)})"
        )
    return f"{name}: WMAE {wmae}, MAE {mae}{versus}"


def benchmark_columns(metrics: dict) -> dict[str, str]:
    minutes = metrics["train_wall_time_s"] / 60
    return {
        **backtest.summary_columns(metrics, metrics["model_name"]),
        "train wall time, all folds": f"{minutes:.1f} min",
    }


def benchmark_reference_rows(metrics: dict) -> list[dict[str, str]]:
    """One row per baseline, scored on the same folds as the model; its fit time over the folds
    stands where a model's training time does. A combined model's network alone has one too."""
    fit_seconds = metrics.get("baseline_fit_seconds", {})

    def label(name: str) -> str:
        if name == backtest.NETWORK_ALONE:  # differs by seed: the last seed's is shown
            return f"network alone of {metrics['model_name']} (last seed run)"
        return f"baseline: {name}"

    return [
        {
            "run": label(name),
            **backtest.summary_columns(metrics, name),
            **(
                {"train wall time, all folds": f"{fit_seconds[name]:.1f} s (fit)"}
                if name in fit_seconds
                else {}
            ),
        }
        for name in metrics["mean"]
        if name != metrics["model_name"]
    ]


def training_setup(config: Config, windows: SeriesWindows) -> train.TrainingSetup:
    """One fold's window datasets and a forecaster builder, shared by tune and train."""
    keras.utils.set_random_seed(config.train.seed)  # the shuffle order depends on the config alone
    batch, weighting = config.train.batch_size, config.model.loss_weighting
    data = train.TrainingData(
        series_windows.make_dataset(
            windows, "train", batch, shuffle_seed=config.train.seed, weighting=weighting
        ),
        series_windows.make_dataset(windows, "validation", batch, weighting=weighting),
        samples_per_epoch=len(windows.origins("train")),
        sample_unit="windows",
        train_shards=WorkerWindows(windows, weighting),
    )
    return train.TrainingSetup(
        build_model=lambda model_config: build_forecaster(model_config, load_spec(windows)),
        data=data,
        loss=forecast_loss(config.model),
        metrics=[],
    )


def _train(config: Config, windows: SeriesWindows, out_dir: Path) -> TrainedModel:
    """One model, or each ensemble member in turn (own directory and MLflow run) and their mean."""
    overrides = config.ensemble.member_overrides(config.train.seed)
    if not overrides:
        return train.fit(config.train, config.model, training_setup(config, windows), out_dir)
    members = []
    # On workers only the chief has the members an interrupted run finished: all retrain them.
    keep_finished = config.train.distribution != "multi_worker"
    for i, member in enumerate(member_configs(config)):
        member_dir = out_dir / f"member_{i}"
        if keep_finished and (member_dir / "training.json").is_file():  # finished before a kill
            members.append(TrainedModel(member_dir))
            continue
        with tracking.component_run(f"ensemble_member_{i}"):
            tracking.log_params(overrides[i])
            setup = training_setup(member, windows)
            members.append(train.fit(member.train, member.model, setup, member_dir))
    names = [trained.summary()["model"].removesuffix("_forecaster") for trained in members]
    unique = list(dict.fromkeys(names))
    described = f"{len(names)}_{unique[0]}" if len(unique) == 1 else "_and_".join(names)
    return ensemble.run(members, f"ensemble_of_{described}_forecaster", out_dir)


def _train_alone(config: Config, windows: SeriesWindows, out_dir: Path) -> TrainedModel:
    """A backtest fold's model, trained by this process alone: on a cluster only the chief runs
    past train, so the other workers are gone by then."""
    if config.train.distribution == "multi_worker":
        config = with_overrides(config, {"train.distribution": "none"})
    return _train(config, windows, out_dir)


RECURRENT_ONLY = ("combination.candidates=[]",)
"""Bench rows measured before the combination keep their meaning: the network alone."""
ENSEMBLE = "ensemble.members=[{model.architecture: direct}, {model.architecture: encoder_decoder}]"

# Scoring reads the model's quantiles, the batch size, the baselines and the holiday column.
EVALUATE_SECTIONS = ("model", "train", "baselines", "evaluate", "backtest")
# Weighing the combination reads the validation block's baselines, its holiday weights and the
# batch size.
COMBINE_SECTIONS = ("combination", "baselines", "evaluate", "backtest", "train")
SPEC = PipelineSpec(
    name="sales_forecast",
    config_class=Config,
    default_config="sales_forecast.yaml",
    stages=[
        Stage(
            "ingest",
            run_ingest,
            TimeSeries,
            config_sections=("ingest", "windows"),
            external_state=source_files,
        ),
        Stage(
            "preprocess", run_preprocess, SeriesWindows, ("ingest",), config_sections=("windows",)
        ),
        Stage(
            "train",
            run_train,
            TrainedModel,
            ("preprocess",),
            config_sections=("model", "ensemble", "train"),
            resumable=True,
        ),
        Stage(
            "combine",
            run_combine,
            TrainedModel,
            ("preprocess", "train"),
            config_sections=COMBINE_SECTIONS,
        ),
        Stage(
            "evaluate",
            run_evaluate,
            Metrics,
            ("preprocess", "combine"),
            config_sections=EVALUATE_SECTIONS,
        ),
        Stage(
            "backtest",
            run_backtest,
            Metrics,
            ("ingest", "combine", "evaluate"),
            config_sections=tuple(
                dict.fromkeys(("windows", "ensemble", *EVALUATE_SECTIONS, *COMBINE_SECTIONS))
            ),
        ),
        bless_stage("backtest"),  # means over every fold say more than the test fold alone
        Stage(
            "export",
            run_export,
            PushedModel,
            ("preprocess", "combine", "evaluate", "bless"),
            config_sections=("ingest", "windows", "model", "baselines", "export"),
        ),
    ],
    tune_stage=Stage(
        "tune",
        run_tune,
        Hyperparameters,
        ("preprocess",),
        config_sections=("tune", "model", "train"),
    ),
    # A preset names one model, so it also clears the shipped config's ensemble.
    model_presets={
        name: {
            "model.cell": cell,
            "model.architecture": architecture,
            "ensemble.members": [],
            "ensemble.seeds": 1,
        }
        for cell, short in (("simple_rnn", "simplernn"), ("lstm", "lstm"), ("gru", "gru"))
        for architecture, suffix in (
            ("direct", ""),
            ("encoder_decoder", "-seq2seq"),
            ("encoder_decoder_attention", "-attention"),
        )
        for name in [f"{short}{suffix}"]
    },
    # Test-fold metrics the evaluate stage logs to MLflow.
    compare_metrics=[
        "test_wmae",
        "test_wmae_skill_vs_seasonal_naive",
        "test_mae",
        "test_rmse",
        "test_wape",
    ],
    headline=headline,
    benchmark=Benchmark(
        make_target="bench-sales",
        # Walmart department series, 3-fold backtest; every model retrains per fold. The
        # baselines (scored on the same folds by the evaluate component) are rows of their own.
        runs={
            # The shipped config: the GRU encoder-decoder combined with the classical forecasts.
            "gru-seq2seq-combined": BenchmarkRun("sales_forecast.yaml", seeds=HEADLINE_SEEDS),
            # The rows below were measured before the combination: the network alone.
            "gru": BenchmarkRun("sales_forecast.yaml", "gru", RECURRENT_ONLY),
            "lstm": BenchmarkRun("sales_forecast.yaml", "lstm", RECURRENT_ONLY),
            "simplernn": BenchmarkRun("sales_forecast.yaml", "simplernn", RECURRENT_ONLY),
            "gru-seq2seq": BenchmarkRun("sales_forecast.yaml", "gru-seq2seq", RECURRENT_ONLY),
            "gru-attention": BenchmarkRun("sales_forecast.yaml", "gru-attention", RECURRENT_ONLY),
            # The single GRU encoder-decoder trained with 3 seeds, averaged.
            "gru-seq2seq-3-seeds": BenchmarkRun(
                "sales_forecast.yaml", "gru-seq2seq", (*RECURRENT_ONLY, "ensemble.seeds=3")
            ),
            "bigru": BenchmarkRun(
                "sales_forecast.yaml", "gru", (*RECURRENT_ONLY, "model.bidirectional=true")
            ),
            "gru-stacked": BenchmarkRun(
                "sales_forecast.yaml", "gru", (*RECURRENT_ONLY, "model.layers=2")
            ),
            "gru-quantiles": BenchmarkRun(
                "sales_forecast.yaml", "gru", (*RECURRENT_ONLY, "model.quantiles=[0.1,0.5,0.9]")
            ),
            "gru-no-residual": BenchmarkRun(
                "sales_forecast.yaml", "gru", (*RECURRENT_ONLY, "model.seasonal_residual=false")
            ),
            # The direct GRU and the GRU encoder-decoder, averaged (shipped until the combination).
            "gru-ensemble": BenchmarkRun(
                "sales_forecast.yaml", overrides=(*RECURRENT_ONLY, ENSEMBLE), seeds=HEADLINE_SEEDS
            ),
            # The same with the moving-holiday flags, Easter the one IsHoliday lacks (fold 2's
            # validation block holds it, 16 days earlier in 2012 than in 2011).
            "gru-ensemble-holidays": BenchmarkRun(
                "sales_forecast.yaml",
                overrides=(
                    *RECURRENT_ONLY,
                    ENSEMBLE,
                    "model.holidays=[easter,thanksgiving,christmas,super_bowl]",
                ),
            ),
            # The two-GRU ensemble combined with the classical forecasts.
            "gru-ensemble-combined": BenchmarkRun(
                "sales_forecast.yaml", overrides=(ENSEMBLE,), seeds=HEADLINE_SEEDS
            ),
            # A second data set: Walmart's store-level file (45 series, other columns and dates).
            "stores-gru": BenchmarkRun(
                "sales_forecast.stores.yaml", overrides=RECURRENT_ONLY, dataset="stores"
            ),
            # Its shipped config: the GRU combined with the classical forecasts.
            "stores-gru-combined": BenchmarkRun(
                "sales_forecast.stores.yaml", dataset="stores", seeds=HEADLINE_SEEDS
            ),
        },
        columns=benchmark_columns,
        stage="backtest",  # backtest means, not the test fold alone
        reference_rows=benchmark_reference_rows,
    ),
)
