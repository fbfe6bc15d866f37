"""bench-scale's per-step probe, as a cluster of one (the bench runs it as two workers)."""

from pipelines import scale_probe

TINY = ["preprocess.sequence_length=5", "model.dropout=0.0"]


def test_a_probe_times_the_step_its_compute_and_its_all_reduce():
    timings = scale_probe.probe(batch_size=16, steps=2, settings=TINY)
    assert set(timings) == {"trained_s", "compute_s", "all_reduce_s"}
    assert all(seconds > 0 for seconds in timings.values()), timings
