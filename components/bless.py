"""Blessing (TFX Evaluator's verdict): may the candidate model replace the one being served?

Runs after evaluation and before export, which pushes only a blessed model. Each threshold bounds
one metric absolutely (TFX's GenericValueThreshold) and/or bounds how much worse it may be than the
baseline's (GenericChangeThreshold). The baseline is the model serving now: the version the MLflow
registry's ``champion`` alias names, else the newest version directory. A first model has none and
is judged on the absolute bounds alone. blessing.json says yes or no with one line per check, so a
model that was not pushed says why; the exporter copies it into the version it pushes
(``assets.extra/evaluation.json``), where the next candidate finds its baseline.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from components import tracking
from components.artifacts import Blessing, Metrics
from components.errors import ConfigError
from components.versions import EVALUATION_FILE, list_versions

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
    thresholds: list[ThresholdConfig] = dataclasses.field(default_factory=list)
    """Every check of every threshold must pass; with none, every model is blessed."""


def run(
    config: BlessingConfig,
    candidate: Metrics,
    model_dir: Path,
    out_dir: Path,
    dataset: str | None = None,
) -> Blessing:
    """Judge ``candidate`` against the thresholds and the version serving now from
    ``model_dir`` (``<serving_dir>/<model_name>``). ``dataset`` names the data the candidate
    was trained and scored on: a version serving under the same name for other data is no
    baseline (its scores are on other data), so such a candidate is not blessed."""
    metrics = candidate.load()
    baseline = _baseline(model_dir)
    values, reasons, passed = {}, [], []
    served_on = baseline and baseline.get("dataset")
    if dataset and served_on and served_on != dataset:
        passed.append(False)
        reasons.append(
            f"version {baseline['version']} of {model_dir.name} serves a model of data set "
            f"{served_on!r}, this one is of {dataset!r}: scores on other data do not compare; "
            "give this data set its own export.model_name: FAIL"
        )
    for threshold in config.thresholds:
        values[threshold.metric] = _value(metrics, threshold.metric, required=True)
        for ok, reason in _checks(threshold, values[threshold.metric], baseline):
            if ok is not None:
                passed.append(ok)
                reason = f"{reason}: {'pass' if ok else 'FAIL'}"
            reasons.append(reason)
    record = {
        "blessed": all(passed),
        "model_name": model_dir.name,
        "dataset": dataset,
        "reasons": reasons or ["no thresholds configured"],
        "candidate": values,
        "baseline": baseline and _summary(baseline, list(values)),
        "metrics": metrics,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "blessing.json").write_text(json.dumps(record, indent=2))
    tracking.log_dict(record, "blessing.json")
    tracking.set_tags({"blessed": record["blessed"]})
    log.info("%s: %s", "blessed" if record["blessed"] else "NOT blessed", "; ".join(reasons))
    return Blessing(out_dir)


def serving_baseline(model_dir: Path) -> dict[str, Any]:
    """What a blessing depends on besides its inputs: part of the stage's cache key, so a push or a
    rollback since the last run makes the runner judge the candidate again."""
    return {"baseline": _baseline(model_dir)}


def _baseline(model_dir: Path) -> dict[str, Any] | None:
    """The version serving now (the champion, else the newest directory) with the metrics its
    evaluation.json recorded (None: pushed without one); None when nothing is served."""
    champion = tracking.champion_serving_path(model_dir.name)
    versions = list_versions(model_dir)
    if champion is not None and champion.parent == model_dir and champion.is_dir():
        version_dir, source = champion, f"MLflow alias {tracking.CHAMPION}"
    elif versions:
        version_dir, source = model_dir / str(versions[-1]), "newest version directory"
    else:
        return None
    evaluation = version_dir / "assets.extra" / EVALUATION_FILE
    recorded = json.loads(evaluation.read_text()) if evaluation.is_file() else {}
    return {
        "version": int(version_dir.name),
        "source": source,
        "metrics": recorded.get("metrics"),
        "dataset": recorded.get("dataset"),
    }


def _summary(baseline: dict, metrics: list[str]) -> dict[str, Any]:
    scores = {metric: _value(baseline["metrics"] or {}, metric) for metric in metrics}
    return {"version": baseline["version"], "source": baseline["source"], "values": scores}


def _checks(
    threshold: ThresholdConfig, value: float | None, baseline: dict | None
) -> list[tuple[bool | None, str]]:
    """``(passed, reason)`` for each check the threshold sets; passed is None for a skipped one."""
    name = threshold.metric
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
    reference = _value(baseline["metrics"] or {}, name)
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


def _value(metrics: dict, metric: str, required: bool = False) -> float | None:
    """The number at ``metric``'s dotted path; a missing path is a ConfigError when ``required``
    (the candidate) and None otherwise (a baseline scored before the metric existed)."""
    strings = {key: value for key, value in metrics.items() if isinstance(value, str)}
    try:
        path = re.sub(r"\{(\w+)\}", lambda match: strings[match.group(1)], metric)
    except KeyError as error:
        if not required:
            return None
        raise ConfigError(
            f"blessing.thresholds metric {metric!r}: {{{error.args[0]}}} is not a top-level string "
            f"of metrics.json; those are {sorted(strings)}"
        ) from None
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
