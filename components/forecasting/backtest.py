"""Scoring and backtesting of a forecaster, the work behind the evaluate and backtest stages.

``score`` measures the trained forecaster and the baselines on one fold's test block; ``backtest``
retrains and scores at earlier forecast origins and averages over every fold; ``summary_columns``
lays those averages out for benchmark tables. A pipeline passes in its config (the sections these
read: model, train, windows, baselines, evaluate, backtest) and its train function.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from components import bless, tracking
from components.artifacts import Metrics, SeriesWindows, TrainedModel
from components.errors import ConfigError
from components.forecasting import attention, baselines, combination, evaluate
from components.forecasting import windows as series_windows
from components.forecasting.model import median_index
from components.forecasting.windows import load_spec

ConfigT = TypeVar("ConfigT")


@dataclasses.dataclass
class BacktestConfig:
    folds: int = 3
    """Forecast origins one horizon apart, latest first; fold 0 is the test split. Every fold
    retrains on the weeks before its own validation block."""
    holiday_column: str | None = "IsHoliday"
    """Known-future column flagging holiday weeks (weighted in WMAE); null: no holidays."""

    def __post_init__(self):
        if self.folds < 1:
            raise ConfigError(f"backtest.folds={self.folds} must be >= 1")


def backtest(
    config: ConfigT,
    inputs: dict,
    out_dir: Path,
    train_fn: Callable[[ConfigT, SeriesWindows, Path], TrainedModel],
) -> Metrics:
    """Folds 1.. (earlier origins) retrained with ``train_fn`` and scored like fold 0, which the
    evaluate stage already scored; results averaged over all folds. Each fold's network is
    combined with the baselines on its own validation block (``combine``) before it is scored."""
    folds = [inputs["evaluate"].load()]
    train_seconds = [inputs["combine"].summary()["train_wall_time_s"]]
    for fold in range(1, config.backtest.folds):
        fold_dir = out_dir / f"fold_{fold}"
        with tracking.component_run(f"backtest_fold_{fold}"):
            windows = series_windows.run(
                config.windows, inputs["ingest"], fold, fold_dir / "windows"
            )
            trained = train_fn(config, windows, fold_dir / "train")
            trained = combine(config, windows, trained, fold_dir / "combine")
            train_seconds.append(trained.summary()["train_wall_time_s"])
            folds.append(score(config, windows, trained, fold_dir / "evaluate").load())
    summary = {**_backtest_summary(folds), "train_wall_time_s": sum(train_seconds)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    tracking.log_dict(summary, "backtest.json")
    metrics = {
        f"backtest_{name}_{metric}": value
        for name, scores in summary["mean"].items()
        for metric, value in scores.items()
        if value is not None
    }
    metrics |= evaluate.quantile_metrics(summary.get("quantiles", {}), "backtest_")
    for name, seconds in summary["baseline_fit_seconds"].items():
        metrics[f"backtest_{name}_fit_seconds"] = seconds
    tracking.log_metrics(metrics)
    return Metrics(out_dir)


def score(config: Any, windows: SeriesWindows, trained: TrainedModel, out_dir: Path) -> Metrics:
    """The trained forecaster and every baseline on the same test windows, so skill compares.

    ``config``: the pipeline's; scoring reads its model, train, baselines, evaluate and backtest.
    A combined model is fed the baseline forecasts it takes as inputs, as a request carries
    them, and the network inside it is scored alone too (``network_alone``).
    """
    spec, block = load_spec(windows), _block(config, windows, "test")
    model = trained.load()
    reference = block.fit_baselines(config.baselines, spec)
    raw_inputs = _raw_inputs(windows, "test", config.train.batch_size)
    batch = config.train.batch_size
    with_baselines = combination.with_external(raw_inputs, model, reference.forecasts)
    predicted = combination.predict(model, with_baselines, batch)
    network = combination.network_of(model)
    alone = (
        {} if network is model else {NETWORK_ALONE: combination.predict(network, raw_inputs, batch)}
    )
    quantiles = None
    if config.model.quantiles:
        quantiles = {q: predicted[:, :, i] for i, q in enumerate(config.model.quantiles)}
        predicted = predicted[:, :, median_index(config.model.quantiles)]
    name = model.name.removesuffix("_forecaster")
    windows_inputs = series_windows.make_dataset(windows, "test", batch).map(lambda x, y, w: x)
    attention.report(network, windows_inputs, spec.season_length, out_dir)
    weights_file = trained.path / combination.COMBINATION_FILE
    return evaluate.run(
        config.evaluate,
        actual=block.actual,
        forecasts={name: predicted, **alone, **reference.forecasts},
        holiday=block.holiday,
        histories=block.histories,
        series_ids=[spec.series_keys[s] for s in block.series],
        dates=block.dates,
        out_dir=out_dir,
        season_length=spec.season_length,
        quantiles=quantiles,
        model_name=name,
        baseline_fallbacks=reference.fallbacks,
        baseline_fallback_reasons=reference.fallback_reasons,
        baseline_fit_seconds=reference.fit_seconds,
        observed=block.observed,
        combination=json.loads(weights_file.read_text()) if weights_file.is_file() else None,
    )


def combine(config: Any, windows: SeriesWindows, trained: TrainedModel, out_dir: Path):
    """The trained network combined with ``combination.candidates``, weighted on the fold's
    validation block (the baselines fitted at its origin); the network alone without candidates.

    ``config``: the pipeline's; reads combination, baselines, evaluate, backtest and train.
    """
    names = config.combination.candidates
    spec, block = load_spec(windows), _block(config, windows, "validation")
    external = [name for name in names if name not in combination.IN_GRAPH]
    forecasts = {}
    if external:
        fitted = dataclasses.replace(config.baselines, names=external)
        forecasts = block.fit_baselines(fitted, spec).forecasts
    shape = combination.HistoryShape(
        spec.target, spec.horizon, spec.season_length, config.baselines.moving_average_window
    )
    return combination.run(
        trained,
        names,
        shape,
        _raw_inputs(windows, "validation", config.train.batch_size),
        np.where(block.observed, block.actual, np.nan),
        np.where(block.holiday, config.evaluate.holiday_weight, 1.0),
        forecasts,
        out_dir,
        config.combination.min_cells_per_weight,
    )


NETWORK_ALONE = "network_alone"
"""A combined model's network scored alone, beside the combination: what the baselines add."""


@dataclasses.dataclass(frozen=True)
class _Block:
    """One forecast window per series at a split's origin: what scoring and weighting read."""

    series: np.ndarray
    steps: np.ndarray
    """[series, horizon] grid index of each forecast period."""
    dates: np.ndarray
    """[series, horizon] each forecast period's date."""
    actual: np.ndarray
    holiday: np.ndarray
    observed: np.ndarray
    histories: list[np.ndarray]
    groups: tuple[list | None, str]
    """Each series' ``baselines.svd_group_by`` value (or None) and why not."""

    def fit_baselines(self, config: baselines.BaselineConfig, spec) -> baselines.BaselineForecasts:
        """``config``'s baselines fitted on the block's histories, forecasting its periods."""
        return baselines.forecast(
            config,
            self.histories,
            spec.horizon,
            spec.season_length,
            *self.groups,
            forecast_dates=self.dates,
        )


def _block(config: Any, windows: SeriesWindows, split: str) -> _Block:
    spec, values, pairs = load_spec(windows), windows.values(), windows.origins(split)
    series, origins = pairs[:, 0], pairs[:, 1]
    steps = origins[:, None] + np.arange(1, spec.horizon + 1)[None, :]
    histories = [values[s, : o + 1, 0] for s, o in pairs]
    histories = [h[~np.isnan(h)] for h in histories]
    holiday = np.zeros(steps.shape, bool)
    if config.backtest.holiday_column:
        column = 1 + spec.known_future.index(config.backtest.holiday_column)
        holiday = values[series[:, None], steps, column] > 0.5
    return _Block(
        series=series,
        steps=steps,
        dates=np.asarray(windows.grid_dates(), "datetime64[D]")[steps],
        actual=values[series[:, None], steps, 0],
        holiday=holiday,
        observed=windows.observed()[series[:, None], steps],
        histories=histories,
        groups=_baseline_groups(config.baselines, windows, spec.series_keys, series),
    )


def _raw_inputs(windows: SeriesWindows, split: str, batch_size: int) -> dict[str, np.ndarray]:
    """The model's raw inputs of every window of ``split``, in origin order, as arrays."""
    batches = [
        inputs
        for inputs, _, _ in series_windows.make_dataset(
            windows, split, batch_size
        ).as_numpy_iterator()
    ]
    return {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}


def _baseline_groups(
    config: baselines.BaselineConfig, windows: SeriesWindows, keys: list[str], series: np.ndarray
) -> tuple[list | None, str]:
    """Each scored series' value of ``baselines.svd_group_by`` (an id or static column), or None
    and why not."""
    column = config.svd_group_by
    if "svd_seasonal_naive" not in config.names or not column:
        return None, "no baselines.svd_group_by"
    statics = windows.statics().set_index("series")
    if column not in statics.columns:
        return None, f"no column {column!r} among the id and static columns {list(statics)}"
    by_key = statics[column].astype(str)
    return [by_key[keys[s]] for s in series], ""


def summary_columns(summary: dict, name: str) -> dict[str, str]:
    """A benchmark table's score cells for ``name`` (the model or a baseline), read from the
    backtest summary, so the table's layout lives beside the summary's."""
    scores = summary["mean"][name]
    skill = summary.get("relative_to_seasonal_naive", {}).get(name)

    def number(value, pattern: str) -> str:
        return "n/a" if value is None else format(value, pattern)

    def amount(value) -> str:
        return "n/a" if value is None else format_amount(value)

    return {
        f"backtest WMAE ({summary['folds']} folds)": f"**{amount(scores['wmae'])}**",
        "vs seasonal naive": number(skill, "+.1%"),
        "MAE": amount(scores["mae"]),
        "RMSE": amount(scores["rmse"]),
        "WAPE": number(scores["wape"], ".3f"),
        "sMAPE": number(scores["smape"], ".3f"),
        "MASE": number(scores["mase"], ".3f"),
        "test-fold WMAE": amount(summary["per_fold"][0][name]["wmae"]),
    }


def format_amount(value: float) -> str:
    """An error in the target's units: whole numbers with separators from 100 on (1,422), three
    significant digits below (4.37, 0.0712), so small-unit data keeps its precision."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _backtest_summary(folds: list[dict]) -> dict:
    names = list(folds[0]["models"])
    metrics = list(folds[0]["models"][names[0]])
    mean = {
        name: {
            metric: _mean([fold["models"][name][metric] for fold in folds]) for metric in metrics
        }
        for name in names
    }
    summary = {
        "folds": len(folds),
        "model_name": folds[0]["model_name"],
        "season_length": folds[0]["season_length"],
        "baseline_fallbacks": {
            name: sum(fold["baseline_fallbacks"].get(name, 0) for fold in folds)
            for name in folds[0]["baseline_fallbacks"]
        },
        "baseline_fallback_reasons": _summed_reasons(folds),
        "baseline_fit_seconds": {
            name: sum(fold.get("baseline_fit_seconds", {}).get(name, 0.0) for fold in folds)
            for name in folds[0].get("baseline_fit_seconds", {})
        },
        "mean": mean,
    }
    series = sum(fold["series"] for fold in folds)
    excluded = sum(fold["mase_excluded"] for fold in folds)
    if excluded:
        summary["mase_note"] = evaluate.mase_note(excluded, series, summary["season_length"])
    if "seasonal_naive" in mean:
        summary["reference"] = evaluate.skill_reference(
            summary["baseline_fallbacks"], series, summary["season_length"]
        )
        reference = mean["seasonal_naive"]["wmae"]
        summary["relative_to_seasonal_naive"] = {
            name: 1.0 - scores["wmae"] / reference for name, scores in mean.items()
        }
    summary["baseline_comparison"] = bless.baseline_comparison(
        "wmae",
        False,
        mean[summary["model_name"]]["wmae"],
        {name: scores["wmae"] for name, scores in mean.items() if name in baselines.BASELINES},
    )
    if "combination" in folds[0]:
        summary["combination_weights"] = [fold["combination"]["weights"] for fold in folds]
    if "quantiles" in folds[0]:
        summary["quantiles"] = _quantile_summary([fold["quantiles"] for fold in folds])
    summary["per_fold"] = [fold["models"] for fold in folds]
    return summary


def _summed_reasons(folds: list[dict]) -> dict[str, dict[str, int]]:
    """Each baseline's fallback reasons with their series counted over all folds."""
    summed: dict[str, dict[str, int]] = {}
    for fold in folds:
        for name, reasons in fold.get("baseline_fallback_reasons", {}).items():
            counts = summed.setdefault(name, {})
            for reason, count in reasons.items():
                counts[reason] = counts.get(reason, 0) + count
    return summed


def _quantile_summary(folds: list[dict]) -> dict:
    """Pinball loss per level and interval coverage, averaged over the folds."""
    levels = folds[0]["pinball"]
    summary = {"pinball": {level: _mean([f["pinball"][level] for f in folds]) for level in levels}}
    if "coverage" in folds[0]:
        summary["coverage"] = {
            **folds[0]["coverage"],
            "observed": _mean([fold["coverage"]["observed"] for fold in folds]),
        }
    return summary


def _mean(values: list[float | None]) -> float | None:
    """Mean over the folds where the metric is defined (not None)."""
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None
