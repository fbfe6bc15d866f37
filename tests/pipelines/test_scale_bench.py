"""bench-scale's report: ratios, targets and the all-reduce size, from recorded stage outputs."""

from pipelines import scale_bench


def test_the_report_states_both_ratios_against_the_target():
    training = {
        1: {"train_reviews_per_s": 100.0, "final_val_loss": 0.5, "train_wall_time_s": 60.0},
        2: {"train_reviews_per_s": 180.0, "final_val_loss": 0.505, "train_wall_time_s": 33.3},
    }
    tuning = {1: {"tune_s": 400.0, "best_score": 0.6}, 2: {"tune_s": 250.0, "best_score": 0.6}}

    text = scale_bench.report(training, tuning, parameters=1_000_000)

    assert "| training: reviews_per_s | 100.0 | 180.0 | ×1.80 |" in text
    assert "| tuning: wall time of 8 trials (s) | 400.0 | 250.0 | ×1.60 |" in text
    assert "Training throughput ×1.80 with 2 workers (target ≥ ×1.7: met)" in text
    assert "final validation losses differ by 1.00%" in text
    assert "Tuning ×1.60 (target ≥ ×1.7: missed)" in text
    assert "1,000,000 float32 values (4.0 MB)" in text
