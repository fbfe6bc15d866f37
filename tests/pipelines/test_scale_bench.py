"""bench-scale's report: ratios, the Amdahl bound, the per-step split, from recorded runs."""

import pytest

from pipelines import scale_bench, scale_report


def run(epoch_s: float, loss: float = 0.5, val_loss: float = 0.6) -> dict:
    # 8 shards of 400: 3,200 reviews an epoch; 25 steps of 128, 13 of 256.
    return {
        "epoch_s": epoch_s,
        "examples": 3200,
        "examples_per_shard": 400,
        "shards": 8,
        "loss": loss,
        "val_loss": val_loss,
    }


MEASURED = {
    "training": {
        "weak_1": run(20.0),  # 160 reviews/s; 0.8 s a step of 128
        "weak_2": run(12.5, loss=0.48),  # 256 reviews/s: x1.60
        "strong_1": run(18.2),  # 1.4 s a step of 256: 0.2 s of it fixed
        "strong_2": run(13.0, val_loss=0.606),  # x1.40; 1% above one worker's
        "control": [run(21.0), run(22.0)],  # 152.4 + 145.5 = 297.8 reviews/s: x1.86
    },
    "probes": [
        {"trained_s": 1.0, "compute_s": 0.7, "all_reduce_s": 0.1},
        {"trained_s": 1.0, "compute_s": 0.6, "all_reduce_s": 0.1},
    ],
    "tuning": {1: {"tune_s": 400.0}, 2: {"tune_s": 250.0}},
}


def test_the_amdahl_bound_halves_what_is_not_fixed():
    fixed, bound = scale_report.amdahl_bound(step_s=1.4, half_batch_step_s=0.8)
    assert fixed == pytest.approx(0.2)
    assert bound == pytest.approx(1.4 / (0.2 + 0.6))  # x1.75
    assert scale_report.amdahl_bound(1.0, 0.5) == pytest.approx((0.0, 2.0))  # nothing fixed


def test_the_report_states_each_ratio_its_bound_and_the_split():
    text = scale_report.report(
        MEASURED, scale_bench.Sizes(), "python -m pipelines.scale_bench", 1_000_000, 900.0
    )
    assert "| weak: reviews/s (128 per worker a step) | 160.0 | 256.0 | ×1.60 |" in text
    assert "| weak: training loss after 4 epochs | 0.5000 | 0.4800 | - |" in text
    assert "| strong: reviews/s (global batch 256) | 175.8 | 246.2 | ×1.40 |" in text
    assert (
        "| control: reviews/s, 1 run vs 2 independent runs at once | 160.0 | 297.8 | ×1.86 |"
        in (text)
    )
    assert "| tuning: wall time of 8 trials (s) | 400.0 | 250.0 | ×1.60 |" in text
    assert "Training throughput ×1.60 with 2 workers (weak scaling; target ≥ ×1.7: missed)" in text
    assert "86% of the ×1.86 this machine gives two independent runs" in text
    assert "Tuning ×1.60 (target ≥ ×1.7: missed)" in text
    # t(256) = 18.2 / 13 = 1.4 s, t(128) = 20 / 25 = 0.8 s: 0.2 s fixed, bound x1.75.
    assert "Strong scaling ×1.40, against an Amdahl bound of ×1.75" in text
    assert "so 200 ms of it does not shrink" in text
    assert "Final validation loss 1.00% from one worker's" in text
    assert "compute 650 ms (65%), all-reduce 100 ms (10%), waiting 250 ms (25%)" in text
    assert "`python -m pipelines.scale_bench` (15 min in all)" in text
    assert "1,000,000 float32 values (4.0 MB)" in text
