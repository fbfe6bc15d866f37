"""BENCHMARKS.md's ``scale`` section from what ``pipelines.scale_bench`` measured.

Throughput counts steady epochs only: reviews an epoch over the mean time of every epoch after the
first. Step times come from the same epochs, so a cost paid once an epoch (validation, checkpoint)
adds the same to ``2·t(B/2)`` as to ``t(B)`` and drops out of the fixed cost per step.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.reporting import machine_description, markdown_table, write_section

SECTION = "scale"
TARGET_RATIO = 1.7
LINK_MB_S = 125
"""A 1 Gbit/s network link."""


def amdahl_bound(step_s: float, half_batch_step_s: float) -> tuple[float, float]:
    """``(fixed, bound)``: the part of one worker's step at batch B that does not shrink with the
    batch (``2·t(B/2) - t(B)``), and the speed-up 2 workers at B/2 each can reach at most when
    the rest halves."""
    fixed = 2 * half_batch_step_s - step_s
    return fixed, step_s / (fixed + (step_s - fixed) / 2)


def rate(run: dict) -> float:
    """Reviews a second over the steady epochs."""
    return run["examples"] / run["epoch_s"]


def step_s(run: dict, global_batch: int) -> float:
    per_shard = global_batch // run["shards"]
    return run["epoch_s"] / math.ceil(run["examples_per_shard"] / per_shard)


def report(measured: dict, sizes: Any, command: str, parameters: int, duration_s: float) -> str:
    runs, batch = measured["training"], sizes.batch_per_worker
    weak = rate(runs["weak_2"]) / rate(runs["weak_1"])
    strong = rate(runs["strong_2"]) / rate(runs["strong_1"])
    control_rate = sum(rate(run) for run in runs["control"])
    control = control_rate / rate(runs["weak_1"])
    full, half = step_s(runs["strong_1"], 2 * batch), step_s(runs["weak_1"], batch)
    fixed, bound = amdahl_bound(full, half)
    gap = abs(runs["strong_2"]["val_loss"] / runs["strong_1"]["val_loss"] - 1)
    tuning = measured["tuning"]
    tune = tuning[1]["tune_s"] / tuning[2]["tune_s"]
    split = {key: sum(p[key] for p in measured["probes"]) / 2 for key in measured["probes"][0]}
    trained, compute, all_reduce = split["trained_s"], split["compute_s"], split["all_reduce_s"]
    waiting = trained - compute - all_reduce
    size_mb = parameters * 4 / 1e6

    def share(seconds: float) -> str:
        return f"{seconds * 1e3:,.0f} ms ({seconds / trained:.0%})"

    def verdict(ratio: float) -> str:
        return f"target ≥ ×{TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'missed'}"

    rows = [
        _row(f"weak: reviews/s ({batch} per worker a step)", runs, "weak", rate, weak),
        _row(f"weak: training loss after {sizes.epochs} epochs", runs, "weak", "loss"),
        _row(f"weak: validation loss after {sizes.epochs} epochs", runs, "weak", "val_loss"),
        _row(f"strong: reviews/s (global batch {2 * batch})", runs, "strong", rate, strong),
        _row("strong: final validation loss", runs, "strong", "val_loss"),
        {
            "measure": "control: reviews/s, 1 run vs 2 independent runs at once",
            "1 worker, 1 core": f"{rate(runs['weak_1']):,.1f}",
            "2 workers, 1 core each": f"{control_rate:,.1f}",
            "ratio": f"×{control:.2f}",
        },
        {
            "measure": f"tuning: wall time of {sizes.tuning_trials} trials (s)",
            "1 worker, 1 core": f"{tuning[1]['tune_s']:,.1f}",
            "2 workers, 1 core each": f"{tuning[2]['tune_s']:,.1f}",
            "ratio": f"×{tune:.2f}",
        },
    ]
    return "\n\n".join(
        [
            f"Machine: {machine_description()}",
            f"Measured {datetime.now(UTC):%Y-%m-%d} with `{command}` ({duration_s / 60:.0f} min "
            "in all): each worker process pinned to its own core (`taskset`), every run from "
            f"scratch, {sizes.epochs} epochs of which the first is not counted. Training: the "
            f"shipped sentiment model (no n-gram branch, no dropout) on {sizes.reviews} IMDB "
            f"reviews a split cut to {sizes.sequence_length} tokens. Weak scaling: {batch} "
            "reviews per worker a step, the learning rate doubled with 2 workers; strong "
            f"scaling: global batch {2 * batch}, one learning rate. Tuning: random search, "
            f"{sizes.tuning_trials} trials of {sizes.tuning_epochs} epoch(s) on "
            f"{sizes.tuning_reviews} reviews a split (smoke config; "
            f"{tuning[1]['tune_s'] / sizes.tuning_trials:.0f} s a trial with one worker).",
            markdown_table(rows),
            f"Training throughput ×{weak:.2f} with 2 workers (weak scaling; {verdict(weak)}): "
            f"{weak / control:.0%} of the ×{control:.2f} this machine gives two independent "
            f"runs, one per core. Tuning ×{tune:.2f} ({verdict(tune)}).",
            f"Strong scaling ×{strong:.2f}, against an Amdahl bound of ×{bound:.2f}: one "
            f"worker's step takes {full * 1e3:,.0f} ms at batch {2 * batch} and "
            f"{half * 1e3:,.0f} ms at {batch}, so {fixed * 1e3:,.0f} ms of it does not shrink "
            "with the batch (2·t(B/2) − t(B)); 2 workers halve the rest at best. Final "
            f"validation loss {gap:.2%} from one worker's.",
            f"Per step, 2 workers at global batch {2 * batch} ({trained * 1e3:,.0f} ms): "
            f"compute {share(compute)}, all-reduce {share(all_reduce)}, waiting "
            f"{share(waiting)} (`pipelines/scale_probe.py`: the same step with its all-reduce "
            "replaced by the identity, the all-reduce alone, and what the step takes beyond both).",
            f"Each step all-reduces the gradient of every trainable weight: {parameters:,} "
            f"float32 values ({size_mb:.1f} MB); a ring all-reduce sends and receives about "
            f"2(N-1)/N of that per worker, so 2 workers at the step above need "
            f"{size_mb / trained:,.0f} MB/s each way, against {LINK_MB_S} MB/s for a 1 Gbit/s "
            "link: faster steps (accelerators) make the network the limit unless each worker's "
            "batch grows.",
        ]
    )


def _row(name: str, runs: dict, kind: str, value, ratio: float | None = None) -> dict:
    one, two = runs[f"{kind}_1"], runs[f"{kind}_2"]
    pick = value if callable(value) else (lambda run: run[value])
    style = "{:,.1f}" if callable(value) else "{:.4f}"
    return {
        "measure": name,
        "1 worker, 1 core": style.format(pick(one)),
        "2 workers, 1 core each": style.format(pick(two)),
        "ratio": "-" if ratio is None else f"×{ratio:.2f}",
    }


def default_model_parameters() -> int:
    """Trainable parameters of the shipped sentiment model: what each step all-reduces."""
    from components.text_classification.model import build_text_classifier
    from pipelines.registry import resolve_config

    config = resolve_config("sentiment", None, None, [])
    model = build_text_classifier(
        config.model, config.preprocess.vocabulary_size, config.preprocess.sequence_length
    )
    return int(sum(int(weight.numpy().size) for weight in model.trainable_weights))


def write(path: Path, text: str) -> None:
    write_section(path, SECTION, text)
