"""The application rows of ``make bench-scale``: one worker's epoch time over two workers'."""

from pipelines import scale_apps


def test_a_row_is_the_epoch_time_ratio_and_the_loss_gaps():
    measured = {
        "lm": {
            1: {"epoch_s": 30.0, "loss": 1.5, "val_loss": 1.6},
            2: {"epoch_s": 20.0, "loss": 1.52, "val_loss": 1.64},
        }
    }
    [row] = scale_apps.rows(measured)
    assert row["ratio"] == "×1.50"
    assert row["val_loss gap"] == "+2.5%"
    assert row["loss, 1 / 2 workers"] == "1.5000 / 1.5200"
    assert "×1.50" in scale_apps.report(measured, "python -m pipelines.scale_apps")
