"""Evaluate forecasts (Evaluator): score the model's forecasts beside the baselines' on a test span.

Every forecast is scored on the same series and periods in original units, pooled over series and
horizon steps: MAE, RMSE, WAPE, sMAPE, seasonal MASE, holiday-weighted MAE (WMAE, the Kaggle
Walmart metric) and MAE per horizon step; plus pinball loss and interval coverage when the model
gives quantiles. Writes metrics.json, the forecasts in long form (forecasts.parquet), a plot of a
few series against their actuals and a plot of error by horizon step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from components import tracking
from components.artifacts import Metrics
from components.errors import ConfigError, DataError

REFERENCE = "seasonal_naive"
"""The baseline (as ``components.baselines`` names it) that skill is measured against."""
TABLE_COLUMNS = ("series", "date", "step", "holiday", "actual")


@dataclasses.dataclass
class ForecastEvaluateConfig:
    holiday_weight: float = 5.0
    """Weight of holiday periods in WMAE (5 in the Kaggle Walmart competition); others weigh 1."""
    plot_series: int = 4
    """Series drawn against their actuals: the largest by sales, then spread down the sizes."""

    def __post_init__(self):
        if self.holiday_weight <= 0:
            raise ConfigError(f"evaluate.holiday_weight={self.holiday_weight} must be positive")
        if self.plot_series < 1:
            raise ConfigError(f"evaluate.plot_series={self.plot_series} must be at least 1")


def run(
    config: ForecastEvaluateConfig,
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
    holiday: np.ndarray,
    histories: list[np.ndarray],
    series_ids: list[str],
    dates: np.ndarray,
    out_dir: Path,
    season_length: int,
    quantiles: dict[float, np.ndarray] | None = None,
    model_name: str = "model",
    baseline_fallbacks: dict[str, int] | None = None,
    observed: np.ndarray | None = None,
    baseline_fallback_reasons: dict[str, dict[str, int]] | None = None,
    baseline_fit_seconds: dict[str, float] | None = None,
    combination: dict | None = None,
) -> Metrics:
    """Score every forecast against ``actual``; write metrics, forecasts and plots to ``out_dir``.

    Args:
        config: Holiday weight and plot settings.
        actual: Observed values, shape (series, horizon).
        forecasts: Name -> point forecasts shaped like ``actual``; includes ``model_name``.
        holiday: Whether each (series, step) is a holiday period.
        histories: Each series' values up to the forecast origin, for the MASE scale and plots.
        series_ids: One name per series.
        dates: The date of each (series, step).
        out_dir: Where the files go; created when missing.
        season_length: Periods per season of the data, for seasonal MASE and the plots.
        quantiles: Quantile level (e.g. 0.1) -> the model's forecasts at that level, if any.
        model_name: The model's key in ``forecasts``; its MLflow metrics carry no name.
        baseline_fallbacks: Baseline name -> series it could not forecast as configured (e.g.
            fell back to naive): recorded, since a seasonal baseline that mostly fell back is not
            one.
        observed: Whether each (series, step) of ``actual`` was in the file rather than filled
            by ingest; only observed ones are scored (default: all).
        baseline_fallback_reasons: Baseline name -> why, and for how many series, it fell back.
        baseline_fit_seconds: Baseline name -> wall time of its fits.
        combination: A combined model's weights and validation scores (``combination.json``),
            recorded beside the scores.
    """
    actual = np.asarray(actual, dtype=float)
    observed = np.ones(actual.shape, bool) if observed is None else np.asarray(observed, bool)
    if observed.shape != actual.shape or not observed.any():
        raise DataError(
            f"observed has shape {observed.shape} with {int(observed.sum())} true; expected "
            f"{actual.shape} with at least one observed actual to score"
        )
    forecasts = {name: np.asarray(values, dtype=float) for name, values in forecasts.items()}
    quantiles = {
        float(q): np.asarray(values, dtype=float) for q, values in (quantiles or {}).items()
    }
    holiday, dates = np.asarray(holiday, dtype=bool), np.asarray(dates, dtype="datetime64[ns]")
    _validate(actual, forecasts, holiday, histories, series_ids, dates, quantiles, model_name)
    actual = np.where(observed, actual, np.nan)  # a filled period is no actual: not scored
    results = {
        "model_name": model_name,
        "season_length": season_length,
        "baseline_fallbacks": baseline_fallbacks or {},
        "baseline_fallback_reasons": baseline_fallback_reasons or {},
        "baseline_fit_seconds": baseline_fit_seconds or {},
        "filled_not_scored": int((~observed).sum()),
        **_results(config, actual, forecasts, holiday, histories, quantiles, season_length),
    }
    if combination:
        results["combination"] = combination
    if REFERENCE in forecasts:
        results["reference"] = skill_reference(
            results["baseline_fallbacks"], actual.shape[0], season_length
        )
        tracking.set_tags({"skill_reference": results["reference"]["label"]})
    if results["mase_excluded"]:
        results["mase_note"] = mase_note(results["mase_excluded"], actual.shape[0], season_length)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(_finite_or_none(results), indent=2))
    table = _forecast_table(actual, forecasts, holiday, series_ids, dates, quantiles, model_name)
    table.to_parquet(out_dir / "forecasts.parquet", index=False)
    plotted = _plot_forecasts(
        config,
        actual,
        forecasts,
        model_name,
        quantiles,
        histories,
        series_ids,
        dates,
        season_length,
    )
    _save_figure(plotted, out_dir / "forecast_vs_actual.png")
    _save_figure(_plot_error_by_horizon(results["by_horizon"]), out_dir / "error_by_horizon.png")
    tracking.log_metrics(_mlflow_metrics(results, model_name))
    tracking.log_dict(_finite_or_none(results), "metrics.json")
    return Metrics(out_dir)


def _validate(actual, forecasts, holiday, histories, series_ids, dates, quantiles, model_name):
    if actual.ndim != 2 or 0 in actual.shape:
        raise DataError(f"actual must be a non-empty (series, horizon) array, not {actual.shape}")
    if model_name not in forecasts:
        raise ConfigError(f"model_name={model_name!r} is not among the forecasts {list(forecasts)}")
    clashing = sorted(set(forecasts) & set(TABLE_COLUMNS))
    if clashing:
        raise ConfigError(f"forecast names {clashing} clash with table columns {TABLE_COLUMNS}")
    if not all(0 < q < 1 for q in quantiles):
        raise ConfigError(f"quantile levels {sorted(quantiles)} must lie between 0 and 1")
    values = {"actual": actual, **{f"forecasts[{name!r}]": v for name, v in forecasts.items()}}
    values.update({f"quantiles[{q}]": v for q, v in quantiles.items()})
    for label, array in {**values, "holiday": holiday, "dates": dates}.items():
        if array.shape != actual.shape:
            raise DataError(f"{label} has shape {array.shape}, but actual has {actual.shape}")
    for label, array in values.items():
        if not np.isfinite(array).all():
            raise DataError(
                f"{label} has {np.count_nonzero(~np.isfinite(array))} non-finite values"
            )
    for label, items in (("histories", histories), ("series_ids", series_ids)):
        if len(items) != actual.shape[0]:
            raise DataError(f"{label} has {len(items)} entries for {actual.shape[0]} series")


def _results(config, actual, forecasts, holiday, histories, quantiles, season_length) -> dict:
    """Scores over the observed actuals (the others are NaN)."""
    scales = _mase_scales(histories, season_length)
    weights = np.where(holiday, config.holiday_weight, 1.0) * ~np.isnan(actual)
    results = {
        "series": actual.shape[0],
        "mase_excluded": int(np.isnan(scales).sum()),
        "models": {
            name: _scores(actual, values, weights, scales) for name, values in forecasts.items()
        },
        "by_horizon": {
            name: _column_means(np.abs(values - actual)) for name, values in forecasts.items()
        },
    }
    if quantiles:
        results["quantiles"] = _quantile_scores(actual, quantiles)
    if REFERENCE in forecasts:
        reference = results["models"][REFERENCE]["wmae"]
        results["relative_to_seasonal_naive"] = {
            name: 1 - scores["wmae"] / reference if reference > 0 else math.nan
            for name, scores in results["models"].items()
        }
    return results


def skill_reference(fallbacks: dict[str, int], series: int, season_length: int) -> dict:
    """What ``relative_to_seasonal_naive`` compared with: seasonal naive falls back to naive for
    a history shorter than a season, and when every series did, the skill is over naive and the
    headline, metrics.json and MLflow must say so."""
    fell_back = fallbacks.get(REFERENCE, 0)
    if fell_back >= series:
        baseline, label = "naive", f"naive (seasonal naive needs {season_length} periods)"
    elif fell_back:
        baseline = REFERENCE
        label = (
            f"seasonal naive (naive for {fell_back} of {series} series shorter than "
            f"{season_length} periods)"
        )
    else:
        baseline, label = REFERENCE, "seasonal naive"
    return {"baseline": baseline, "label": label, "series_fell_back": fell_back}


def mase_note(excluded: int, series: int, season_length: int) -> str:
    """Why MASE leaves series out, or is null: it scales each series by its in-sample error of
    repeating the last season, which needs more than a season of history that changes."""
    reason = (
        f"MASE scales a series' error by its in-sample seasonal-naive error, which needs more "
        f"than {season_length} periods of history (one season) that are not all equal"
    )
    if excluded >= series:
        return f"MASE is not defined for any of the {series} series: {reason}"
    return f"MASE averages {series - excluded} of {series} series: {reason}"


def _mase_scales(histories: list[np.ndarray], season: int) -> np.ndarray:
    """Each series' in-sample mean |y_t - y_(t-season)|: NaN where the history is no longer than a
    season or the scale is zero, so those series drop out of MASE."""
    scales = np.full(len(histories), np.nan)
    for index, history in enumerate(histories):
        history = np.asarray(history, dtype=float)
        if len(history) > season:
            scale = np.abs(history[season:] - history[:-season]).mean()
            scales[index] = scale if scale > 0 else np.nan
    return scales


def _scores(actual, forecast, weights, scales) -> dict[str, float]:
    """Point-forecast scores over the finite (observed) entries of ``actual``."""
    seen = ~np.isnan(actual)
    errors = np.abs(forecast - actual)
    magnitude = np.abs(actual) + np.abs(forecast)
    # Actual and forecast both zero is a perfect forecast: the term counts as 0, not 0/0.
    smape_terms = np.divide(2 * errors, magnitude, out=np.zeros_like(errors), where=magnitude > 0)
    per_series = np.array(_row_means(np.where(seen, errors, np.nan)))
    scaled = per_series / scales
    total = np.abs(actual[seen]).sum()
    return {
        "mae": float(errors[seen].mean()),
        "rmse": float(np.sqrt(np.mean(errors[seen] ** 2))),
        "wape": float(errors[seen].sum() / total) if total > 0 else math.nan,
        "smape": float(smape_terms[seen].mean()),
        "mase": float(np.nanmean(scaled)) if np.isfinite(scaled).any() else math.nan,
        "wmae": float((weights * np.where(seen, errors, 0.0)).sum() / weights.sum()),
    }


def _row_means(values: np.ndarray) -> list[float]:
    """Mean of each row's finite entries; NaN for a row without any."""
    return [
        float(row[~np.isnan(row)].mean()) if (~np.isnan(row)).any() else math.nan for row in values
    ]


def _column_means(values: np.ndarray) -> list[float]:
    return _row_means(values.T)


def _quantile_scores(actual: np.ndarray, quantiles: dict[float, np.ndarray]) -> dict:
    levels = sorted(quantiles)
    pinball = {}
    seen = ~np.isnan(actual)
    for q in levels:
        difference = (actual - quantiles[q])[seen]
        pinball[_level_name(q)] = float(np.maximum(q * difference, (q - 1) * difference).mean())
    results = {"pinball": pinball}
    if len(levels) > 1:
        low, high = levels[0], levels[-1]
        inside = (actual >= quantiles[low]) & (actual <= quantiles[high])
        results["coverage"] = {
            "interval": f"{_level_name(low)}_{_level_name(high)}",
            "observed": float(inside[seen].mean()),
            "nominal": round(high - low, 6),
        }
    return results


def _level_name(q: float) -> str:
    return f"p{q * 100:g}"  # 0.1 -> p10, 0.025 -> p2.5


def _finite_or_none(value):
    """``value`` with NaN and infinities as None, which JSON can hold."""
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _mlflow_metrics(results: dict, model_name: str) -> dict[str, float]:
    """Flat metrics: ``test_wmae`` for the model, ``test_<forecast>_wmae`` for the others."""

    def prefix(name: str) -> str:
        # MLflow names allow letters, digits and _-./ only; "/" would nest, so it goes too.
        return "test_" if name == model_name else f"test_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}_"

    metrics = {
        prefix(name) + metric: value
        for name, scores in results["models"].items()
        for metric, value in scores.items()
    }
    reference = results.get("reference", {}).get("baseline", REFERENCE)
    for name, skill in results.get("relative_to_seasonal_naive", {}).items():
        metrics[f"{prefix(name)}wmae_skill_vs_{reference}"] = skill
    metrics |= quantile_metrics(results.get("quantiles", {}), "test_")
    for name, count in results["baseline_fallbacks"].items():
        metrics[f"test_{name}_fallbacks"] = count
    for name, seconds in results["baseline_fit_seconds"].items():
        metrics[f"test_{name}_fit_seconds"] = seconds
    return {name: value for name, value in metrics.items() if math.isfinite(value)}


def quantile_metrics(quantiles: dict, prefix: str) -> dict[str, float]:
    """``quantiles`` (pinball per level, coverage) as flat MLflow metrics: ``<prefix>pinball_p10``,
    ``<prefix>coverage_p10_p90``; the backtest logs its fold means the same way."""
    metrics = {
        f"{prefix}pinball_{level}": loss for level, loss in quantiles.get("pinball", {}).items()
    }
    if "coverage" in quantiles:
        coverage = quantiles["coverage"]
        metrics[f"{prefix}coverage_{coverage['interval']}"] = coverage["observed"]
    return metrics


def _forecast_table(actual, forecasts, holiday, series_ids, dates, quantiles, model_name):
    """One row per series and step: actual, each forecast, and ``<model>_p<level>`` quantiles."""
    series_count, horizon = actual.shape
    columns = {
        "series": np.repeat(np.asarray(series_ids, dtype=str), horizon),
        "date": dates.reshape(-1),
        "step": np.tile(np.arange(1, horizon + 1), series_count),
        "holiday": holiday.reshape(-1),
        "actual": actual.reshape(-1),
    }
    columns.update({name: values.reshape(-1) for name, values in forecasts.items()})
    columns.update(
        {f"{model_name}_{_level_name(q)}": quantiles[q].reshape(-1) for q in sorted(quantiles)}
    )
    return pd.DataFrame(columns)


def _save_figure(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=100)
    tracking.log_figure(figure, path.name)


def _plotted_series(actual: np.ndarray, count: int) -> list[int]:
    """The largest series by sales, then series evenly spread down the ranking; the smallest,
    mostly noise, are left out."""
    ranking = np.argsort(-np.nansum(np.abs(actual), axis=1), kind="stable")
    positions = np.unique(np.linspace(0, len(ranking), count, endpoint=False).astype(int))
    return ranking[positions].tolist()


def _plot_forecasts(
    config, actual, forecasts, model_name, quantiles, histories, series_ids, dates, season_length
) -> Figure:
    """The last season of history, the actuals, the model, seasonal naive and the outermost
    quantile band, against steps from the forecast origin."""
    chosen = _plotted_series(actual, config.plot_series)
    columns = min(2, len(chosen))
    # A bare Figure (no pyplot) needs no GUI backend and no global state.
    figure = Figure(figsize=(6.5 * columns, 3.5 * math.ceil(len(chosen) / columns)))
    axes = figure.subplots(math.ceil(len(chosen) / columns), columns, squeeze=False).reshape(-1)
    steps = np.arange(1, actual.shape[1] + 1)
    levels = sorted(quantiles)
    for axis, index in zip(axes, chosen, strict=False):
        recent = np.asarray(histories[index], dtype=float)[-season_length:]
        axis.plot(np.arange(1 - len(recent), 1), recent, color="0.55", label="history")
        axis.plot(steps, actual[index], color="black", label="actual")
        if len(levels) > 1:
            low, high = quantiles[levels[0]][index], quantiles[levels[-1]][index]
            band = f"{_level_name(levels[0])}-{_level_name(levels[-1])}".upper()
            axis.fill_between(steps, low, high, color="C0", alpha=0.2, label=band)
        axis.plot(steps, forecasts[model_name][index], color="C0", label=model_name)
        if REFERENCE in forecasts:
            reference = forecasts[REFERENCE][index]
            axis.plot(steps, reference, color="C1", linestyle="--", label="seasonal naive")
        first = np.datetime_as_string(dates[index, 0], unit="D")
        axis.set(title=str(series_ids[index]), xlabel=f"steps from origin (step 1: {first})")
    for axis in axes[len(chosen) :]:
        axis.set_visible(False)
    axes[0].legend(fontsize="small")
    figure.tight_layout()
    return figure


def _plot_error_by_horizon(by_horizon: dict[str, list[float]]) -> Figure:
    figure = Figure(figsize=(7, 4))
    axis = figure.subplots()
    for name, errors in by_horizon.items():
        axis.plot(np.arange(1, len(errors) + 1), errors, marker="o", markersize=3, label=name)
    axis.set(title="Test MAE by horizon step", xlabel="steps ahead", ylabel="MAE")
    axis.legend(fontsize="small")
    figure.tight_layout()
    return figure
