"""Blessing (TFX Evaluator's verdict): may the candidate model replace the one being served?

Runs after evaluation and before export, which pushes only a blessed model. By default a candidate
must (1) beat the best simple baseline its evaluation scored on the same test data (the
``baseline_comparison`` block of metrics.json: TF-IDF logistic regression, a Kneser-Ney bigram,
seasonal naive, ...) and (2) be no more than ``champion_tolerance`` worse on that metric than the
model serving now, which must have been trained on the same data set. Thresholds add absolute
bounds on any metric (TFX's GenericValueThreshold) and/or change bounds against what serves
(GenericChangeThreshold). What serves is the registered version the MLflow registry's ``champion``
alias names, with the evaluation that blessed it read from the registry (so machines sharing a
tracking server agree, and a stale local folder cannot lower the bar); the newest local version
directory only when there is no registry to ask (no active run, no champion). A champion whose
evaluation cannot be read blesses nothing. A first model has no baseline and skips the change
checks. blessing.json says yes or no with one line per check, so a model that was not pushed says
why, and names its baseline, which export checks is still the champion before replacing it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from pathlib import Path, PurePosixPath
from typing import Any

from components import tracking
from components.artifacts import Blessing, Metrics
from components.errors import ConfigError, DataError, require_one_of
from components.versions import EVALUATION_FILE, child, list_versions, read_evaluation

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ThresholdConfig:
    metric: str
    """Dotted path into the candidate's metrics.json, e.g. ``accuracy`` or ``test.perplexity``.
    ``{key}`` is replaced by that top-level string of the same file: ``mean.{model_name}.wmae``
    names the trained model's scores whichever cell it has."""
    higher_is_better: bool = True
    """Which direction is worse, for the comparison with the baseline."""
    lower_bound: float | None = None
    """The metric must be at least this."""
    upper_bound: float | None = None
    """The metric must be at most this."""
    max_regression: float | None = None
    """How much worse than the baseline's value (in the metric's units) still passes."""
    max_relative_regression: float | None = None
    """How much worse than the baseline, as a fraction of its value (0.02: 2%), still passes."""

    def __post_init__(self):
        where = f"blessing.thresholds[{self.metric}]"
        checks = ("lower_bound", "upper_bound", "max_regression", "max_relative_regression")
        if all(getattr(self, check) is None for check in checks):
            raise ConfigError(f"{where} checks nothing; set at least one of {', '.join(checks)}")
        if None not in (self.lower_bound, self.upper_bound) and self.lower_bound > self.upper_bound:
            raise ConfigError(
                f"{where}.lower_bound={self.lower_bound} must not exceed "
                f"upper_bound={self.upper_bound}"
            )
        for check in ("max_regression", "max_relative_regression"):
            if (getattr(self, check) or 0.0) < 0:
                raise ConfigError(f"{where}.{check}={getattr(self, check)} must be >= 0 (or null)")


@dataclasses.dataclass
class BlessingConfig:
    baseline: str = "require"
    """``require``: not blessed unless the model beats the best simple baseline on the evaluation's
    primary metric; ``warn``: blessed anyway, with a warning in the log, blessing.json and MLflow
    (tag ``below_baseline``); ``ignore``: no comparison (YAML reads a bare ``off`` as false)."""
    champion_tolerance: float | None = 0.02
    """How much worse than the serving model's primary metric still passes, as a fraction of its
    value (0.02: 2%); null: no comparison with what serves."""
    thresholds: list[ThresholdConfig] = dataclasses.field(default_factory=list)
    """Further checks; every check of every threshold must pass."""

    def __post_init__(self):
        require_one_of("blessing.baseline", self.baseline, ("require", "warn", "ignore"))
        if self.champion_tolerance is not None and self.champion_tolerance < 0:
            raise ConfigError(
                f"blessing.champion_tolerance={self.champion_tolerance} must be >= 0 (or null)"
            )


def baseline_comparison(
    metric: str, higher_is_better: bool, model: float, baselines: dict[str, float]
) -> dict[str, Any]:
    """The ``baseline_comparison`` block an evaluation writes into metrics.json: its primary
    metric for the model and for the best of the simple baselines scored beside it."""
    scored = {name: value for name, value in baselines.items() if value is not None}
    best = (max if higher_is_better else min)(scored, key=scored.get) if scored else None
    return {
        "metric": metric,
        "higher_is_better": higher_is_better,
        "model": model,
        "best_baseline": best,
        "baseline": scored.get(best),
    }


def run(
    config: BlessingConfig,
    candidate: Metrics,
    model_dir: Path | str,
    out_dir: Path,
    dataset: str | None = None,
) -> Blessing:
    """Judge ``candidate`` against the thresholds and the version serving now of the model in
    ``model_dir`` (``<serving_dir>/<model_name>``, a path or a URI). ``dataset`` names the data
    the candidate was trained and scored on: a version serving under the same name for other data
    is no baseline (its scores are on other data), so such a candidate is not blessed."""
    metrics = candidate.load()
    name = PurePosixPath(str(model_dir)).name
    baseline = _baseline(model_dir)
    values, reasons, passed = {}, [], []
    if baseline and baseline.get("unreadable"):
        passed.append(False)
        reasons.append(f"{baseline['unreadable']}; refusing to judge without it: FAIL")
    served_on = baseline and baseline.get("dataset")
    if dataset and served_on and served_on != dataset:
        passed.append(False)
        reasons.append(
            f"version {baseline['version']} of {name} serves a model of data set "
            f"{served_on!r}, this one is of {dataset!r}: scores on other data do not compare; "
            "give this data set its own export.model_name: FAIL"
        )
    comparison = metrics.get("baseline_comparison")
    below_baseline = None
    if config.baseline != "ignore":
        below_baseline, reason = _baseline_check(comparison)
        if below_baseline is not None and config.baseline == "require":
            passed.append(not below_baseline)
            reason = f"{reason}: {'FAIL' if below_baseline else 'pass'}"
        elif below_baseline:
            reason = f"{reason}: WARNING, blessed anyway (blessing.baseline=warn)"
            log.warning("the candidate does NOT beat the simple baseline: %s", reason)
        reasons.append(reason)
    if config.champion_tolerance is not None and comparison:
        ok, reason = _champion_check(comparison, baseline, config.champion_tolerance)
        if ok is not None:
            passed.append(ok)
            reason = f"{reason}: {'pass' if ok else 'FAIL'}"
        reasons.append(reason)
    for threshold in config.thresholds:
        values[threshold.metric] = _value(metrics, threshold.metric, required=True)
        shown = _filled_in(metrics, threshold.metric) or threshold.metric
        for ok, reason in _checks(threshold, values[threshold.metric], baseline, shown):
            if ok is not None:
                passed.append(ok)
                reason = f"{reason}: {'pass' if ok else 'FAIL'}"
            reasons.append(reason)
    record = {
        "blessed": all(passed),
        "model_name": name,
        "dataset": dataset,
        "reasons": reasons or ["no checks configured"],
        "below_baseline": below_baseline,
        "candidate": values,
        "baseline": baseline and _summary(baseline, list(values)),
        "metrics": metrics,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "blessing.json").write_text(json.dumps(record, indent=2))
    tracking.log_dict(record, "blessing.json")
    tracking.set_tags({"blessed": record["blessed"]})
    if below_baseline is not None:
        tracking.set_tags({"below_baseline": below_baseline})
    log.info("%s: %s", "blessed" if record["blessed"] else "NOT blessed", "; ".join(reasons))
    return Blessing(out_dir)


def serving_baseline(model_dir: Path | str) -> dict[str, Any]:
    """What a blessing depends on besides its inputs: part of the stage's cache key, so a push, a
    rollback or another machine's new champion since the last run makes the runner judge again."""
    return {"baseline": _baseline(model_dir)}


def _baseline(model_dir: Path | str) -> dict[str, Any] | None:
    """The version serving now with the metrics and data set its evaluation recorded: the
    registry's champion, else (no registry to ask) the newest local version directory; None when
    nothing is served. ``unreadable`` says why a champion's evaluation could not be read."""
    name = PurePosixPath(str(model_dir)).name
    champion = tracking.champion(name)
    if champion is not None:
        baseline = {
            "version": champion["serving_version"],
            "registered_version": champion["registered_version"],
            "source": "registry",
        }
        try:
            recorded = tracking.registered_file(
                name, champion["registered_version"], f"assets.extra/{EVALUATION_FILE}"
            )
        except DataError as error:
            return {**baseline, "metrics": None, "dataset": None, "unreadable": str(error)}
        return {**baseline, "metrics": recorded.get("metrics"), "dataset": recorded.get("dataset")}
    versions = list_versions(model_dir)
    if not versions:
        return None
    recorded = read_evaluation(child(model_dir, str(versions[-1])))
    why = "no champion in the MLflow registry" if tracking.active() else "no active MLflow run"
    return {
        "version": versions[-1],
        "registered_version": None,
        "source": f"local folder ({why})",
        "metrics": recorded.get("metrics"),
        "dataset": recorded.get("dataset"),
    }


def _baseline_check(comparison: dict | None) -> tuple[bool | None, str]:
    """``(below the best baseline?, reason)``; None when the evaluation scored no baseline."""
    if not comparison or comparison.get("baseline") is None:
        return None, "no simple baseline was scored: baseline check skipped"
    name, model, reference = comparison["metric"], comparison["model"], comparison["baseline"]
    better = model > reference if comparison["higher_is_better"] else model < reference
    verb = "beats" if better else "ties" if model == reference else "does not beat"
    return not (better or model == reference), (
        f"{name} {model:.6g} {verb} the best simple baseline, {comparison['best_baseline']} "
        f"{reference:.6g}"
    )


def _champion_check(
    comparison: dict, baseline: dict | None, tolerance: float
) -> tuple[bool | None, str]:
    """``(no worse than what serves within tolerance?, reason)``; None when there is nothing to
    compare with."""
    name = comparison["metric"]
    served = (baseline or {}).get("metrics") or {}
    reference = (served.get("baseline_comparison") or {}).get("model")
    if baseline is None:
        return None, f"{name}: no model is served yet, champion check skipped"
    if reference is None or served["baseline_comparison"].get("metric") != name:
        return None, f"version {baseline['version']} has no recorded {name}: champion check skipped"
    value = comparison["model"]
    worse_by = (reference - value) if comparison["higher_is_better"] else (value - reference)
    allowed = tolerance * abs(reference)
    return _at_most(worse_by, allowed), (
        f"{name} {value:.6g} vs {reference:.6g} of serving version {baseline['version']}: worse "
        f"by {worse_by:.6g}, at most {tolerance:.1%} = {allowed:.6g}"
    )


def _summary(baseline: dict, metrics: list[str]) -> dict[str, Any]:
    """The baseline as blessing.json names it; export checks ``registered_version`` is still the
    champion before it moves the alias."""
    scores = {metric: _value(baseline["metrics"] or {}, metric) for metric in metrics}
    keys = ("version", "registered_version", "source")
    return {**{key: baseline[key] for key in keys}, "values": scores}


def _checks(
    threshold: ThresholdConfig, value: float | None, baseline: dict | None, name: str
) -> list[tuple[bool | None, str]]:
    """``(passed, reason)`` for each check the threshold sets, naming the metric ``name``;
    passed is None for a skipped one."""
    if value is None or not math.isfinite(value):
        return [(False, f"{name} is {value}, not a finite number")]
    checks = []
    if threshold.lower_bound is not None:
        bound = threshold.lower_bound
        checks.append((value >= bound, f"{name} {value:.6g} >= lower bound {bound:g}"))
    if threshold.upper_bound is not None:
        bound = threshold.upper_bound
        checks.append((value <= bound, f"{name} {value:.6g} <= upper bound {bound:g}"))
    absolute, relative = threshold.max_regression, threshold.max_relative_regression
    if absolute is None and relative is None:
        return checks
    if baseline is None:
        return [*checks, (None, f"{name}: no model is served yet, change checks skipped")]
    reference = _value(baseline["metrics"] or {}, threshold.metric)
    if reference is None:
        skipped = f"version {baseline['version']} has no recorded {name} to compare with"
        return [*checks, (None, f"{skipped}, change checks skipped")]
    worse_by = (reference - value) if threshold.higher_is_better else (value - reference)
    compared = (
        f"{name} {value:.6g} vs {reference:.6g} of version {baseline['version']}: "
        f"worse by {worse_by:.6g}"
    )
    if absolute is not None:
        checks.append((_at_most(worse_by, absolute), f"{compared}, at most {absolute:g}"))
    if relative is not None:
        allowed = relative * abs(reference)
        reason = f"{compared}, at most {relative:.1%} = {allowed:.6g}"
        checks.append((_at_most(worse_by, allowed), reason))
    return checks


def _at_most(difference: float, limit: float) -> bool:
    """``difference <= limit``, where a difference that equals the limit up to rounding passes
    (0.88 - 0.87 is 0.010000000000000009)."""
    return difference <= limit or math.isclose(difference, limit)


def _filled_in(metrics: dict, metric: str) -> str | None:
    """``test.nats_per_{unit}`` -> ``test.nats_per_char`` from metrics.json's top-level strings;
    None when one is missing."""
    strings = {key: value for key, value in metrics.items() if isinstance(value, str)}
    try:
        return re.sub(r"\{(\w+)\}", lambda match: strings[match.group(1)], metric)
    except KeyError:
        return None


def _value(metrics: dict, metric: str, required: bool = False) -> float | None:
    """The number at ``metric``'s dotted path; a missing path is a ConfigError when ``required``
    (the candidate) and None otherwise (a baseline scored before the metric existed)."""
    path = _filled_in(metrics, metric)
    if path is None:
        if not required:
            return None
        strings = sorted(key for key, value in metrics.items() if isinstance(value, str))
        missing = next(name for name in re.findall(r"\{(\w+)\}", metric) if name not in strings)
        raise ConfigError(
            f"blessing.thresholds metric {metric!r}: {{{missing}}} is not a top-level string "
            f"of metrics.json; those are {strings}"
        )
    node: Any = metrics
    for depth, key in enumerate(path.split(".")):
        if not isinstance(node, dict) or key not in node:
            if not required:
                return None
            where = ".".join(path.split(".")[:depth]) or "the top level"
            keys = sorted(node) if isinstance(node, dict) else []
            raise ConfigError(
                f"blessing.thresholds metric {path!r} is not in metrics.json: no {key!r} at "
                f"{where}; keys there: {keys}"
            )
        node = node[key]
    if node is not None and not isinstance(node, int | float):
        if not required:
            return None
        raise ConfigError(f"blessing.thresholds metric {path!r} is {node!r}, not a number")
    return node
