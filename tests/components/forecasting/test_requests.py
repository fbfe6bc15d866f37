"""Forecast requests built from a hand-written history CSV, checked against hand-computed arrays.

Four weekly series (Fridays, W-FRI), lookback 3, horizon 2, a known-future ``promo`` in the main
file, a known-future ``holiday`` from a calendar join, a past covariate ``price`` and statics
``region`` (main file) and ``size`` (a join):

- S1: weeks 1-5 observed, a future row for week 6 (promo 1); week 7 is missing.
- S2: weeks 1, 2 and 4 observed (week 3 is missing: target 0); no future rows.
- S3: weeks 4-5 observed only: with its 2 added weeks it is shorter than lookback + horizon, so
  ingest drops it.
- S4: weeks 4-5 observed and future rows for weeks 6-8: long enough for ingest, but only 2
  observed periods before its origin, so the request builder skips it.
"""

import dataclasses
import json
import logging

import numpy as np
import pandas as pd
import pytest

from components.errors import DataError
from components.forecasting import requests
from components.forecasting.ingest_config import JoinConfig, SeriesIngestConfig

WEEK = {n: f"{pd.Timestamp('2024-01-05') + pd.Timedelta(weeks=n - 1):%Y-%m-%d}" for n in range(9)}
LOOKBACK, HORIZON = 3, 2
HISTORY = [
    # store, week, sales, promo, price, region
    ("S1", 1, "10", "0", "2.0", "N"),
    ("S1", 2, "11", "0", "2.1", "N"),
    ("S1", 3, "12", "0", "2.2", "N"),
    ("S1", 4, "13", "1", "2.3", "N"),
    ("S1", 5, "14", "0", "2.4", "N"),
    ("S1", 6, "", "1", "", "N"),  # the planned promotion of the first forecast week
    ("S2", 1, "20", "0", "3.0", "S"),
    ("S2", 2, "21", "1", "3.1", "S"),
    ("S2", 4, "23", "0", "3.3", "S"),
    ("S3", 4, "30", "0", "4.0", "N"),
    ("S3", 5, "31", "0", "4.1", "N"),
    ("S4", 4, "40", "0", "5.0", "S"),
    ("S4", 5, "41", "0", "5.1", "S"),
    ("S4", 6, "", "0", "", "S"),
    ("S4", 7, "", "1", "", "S"),
    ("S4", 8, "", "0", "", "S"),
]
HOLIDAY_WEEKS = {2, 6}
SIZE = {"S1": 100, "S2": 200, "S3": 300, "S4": 400}


def write_history(folder) -> SeriesIngestConfig:
    """History, calendar and stores CSVs in ``folder``; returns the ingest config reading them."""
    rows = [
        ",".join([s, WEEK[w], sales, promo, price, region])
        for s, w, sales, promo, price, region in HISTORY
    ]
    (folder / "history.csv").write_text(
        "\n".join(["store,week,sales,promo,price,region", *rows]) + "\n"
    )
    calendar = [f"{WEEK[w]},{'TRUE' if w in HOLIDAY_WEEKS else 'FALSE'}" for w in range(1, 9)]
    (folder / "calendar.csv").write_text("\n".join(["week,holiday", *calendar]) + "\n")
    stores = [f"{store},{size}" for store, size in SIZE.items()]
    (folder / "stores.csv").write_text("\n".join(["store,size", *stores]) + "\n")
    return SeriesIngestConfig(
        path="history.csv",
        data_dir=str(folder),
        date_column="week",
        target="sales",
        series_id=["store"],
        joins=[JoinConfig("calendar.csv", keys=["week"]), JoinConfig("stores.csv", keys=["store"])],
        known_future=["promo", "holiday"],
        past_covariates=["price"],
        static_categorical=["region"],
        static_numeric=["size"],
        frequency="W-FRI",
    )


def request_info(config: SeriesIngestConfig) -> dict:
    """What ``sales_forecast.run_export`` writes to ``assets.extra/forecast_request.json``."""
    ingest = dataclasses.asdict(config)
    return {"ingest": ingest, "lookback": LOOKBACK, "horizon": HORIZON, "quantiles": None}


def float32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).astype(np.float32)


@pytest.fixture
def history(tmp_path, monkeypatch) -> SeriesIngestConfig:
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory either
    return write_history(tmp_path)


def test_missing_future_weeks_are_added_after_each_series_last_target(history, tmp_path):
    extended = tmp_path / "extended.csv"
    requests._with_future_rows(tmp_path / "history.csv", history, HORIZON, extended)
    table = pd.read_csv(extended, dtype=str, keep_default_na=False)
    original, added = table.iloc[: len(HISTORY)], table.iloc[len(HISTORY) :]
    assert original.equals(pd.read_csv(tmp_path / "history.csv", dtype=str, keep_default_na=False))
    # S1 has week 6 already; S4 has weeks 6-8, so nothing is added for it.
    assert list(zip(added["store"], added["week"], strict=True)) == [
        ("S1", WEEK[7]),
        ("S2", WEEK[5]),
        ("S2", WEEK[6]),
        ("S3", WEEK[6]),
        ("S3", WEEK[7]),
    ]
    # Time-varying columns are left empty for the fill policy or a join; statics are copied.
    assert (added[["sales", "promo", "price"]] == "").all().all()
    assert added["region"].tolist() == ["N", "S", "S", "N", "N"]


def test_requests_hold_each_series_last_lookback_and_its_known_future(history, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        request = requests.requests_from_csv(request_info(history), tmp_path / "history.csv")
    inputs = request.inputs
    assert set(inputs) == {
        "sales", "forecast_start", "promo", "holiday", "price", "store", "region", "size"
    }  # fmt: skip
    assert inputs["store"].tolist() == ["S1", "S2"]  # S3 and S4 are too short to forecast
    np.testing.assert_array_equal(inputs["sales"], float32([[12, 13, 14], [21, 0, 23]]))
    assert inputs["forecast_start"].tolist() == [WEEK[6], WEEK[5]]
    # Known-future covariates span lookback + horizon weeks: S1 weeks 3-7, S2 weeks 2-6. S1's
    # promo of week 6 comes from its future row; added weeks have none (0); the calendar join
    # gives every week's holiday, added weeks included.
    np.testing.assert_array_equal(inputs["promo"], float32([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0]]))
    np.testing.assert_array_equal(inputs["holiday"], float32([[0, 0, 0, 1, 0], [1, 0, 0, 0, 1]]))
    # Past covariates span the lookback only; S2's missing week 3 has no price (0).
    np.testing.assert_array_equal(inputs["price"], float32([[2.2, 2.3, 2.4], [3.1, 0.0, 3.3]]))
    assert inputs["region"].tolist() == ["N", "S"]
    np.testing.assert_array_equal(inputs["size"], float32([100, 200]))
    numeric = {name for name, array in inputs.items() if array.dtype == np.float32}
    assert numeric == {"sales", "promo", "holiday", "price", "size"}
    assert all(inputs[name].dtype.kind == "U" for name in ("forecast_start", "store", "region"))

    keys = [key for key, _, _ in request.index]
    assert keys == ["S1", "S2"]
    dates = [[f"{date:%Y-%m-%d}" for date in forecast] for _, _, forecast in request.index]
    assert dates == [[WEEK[6], WEEK[7]], [WEEK[5], WEEK[6]]]
    assert [ids.to_dict() for _, ids, _ in request.index] == [{"store": "S1"}, {"store": "S2"}]

    messages = [record.getMessage() for record in caplog.records]
    assert "ingested 3 series (1 shorter than 5 periods dropped)" in " ".join(messages)  # S3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "1 series have fewer than 3 observed periods; not forecast",  # S4
        # S3, which ingest dropped: the user hears of every series that gets no forecast.
        f"{tmp_path / 'history.csv'}: 1 series have fewer than 5 periods (lookback + horizon) "
        "and are not forecast",
    ]


def test_the_forecast_table_has_a_row_per_series_and_forecast_week(history, tmp_path):
    request = requests.requests_from_csv(request_info(history), tmp_path / "history.csv")
    forecast = np.array([[1.5, 2.5], [3.5, 4.5]], dtype=np.float32)
    table = request.forecast_table({"forecast": forecast})
    assert table.to_dict("records") == [
        {"store": "S1", "week": WEEK[6], "step": 1, "forecast": 1.5},
        {"store": "S1", "week": WEEK[7], "step": 2, "forecast": 2.5},
        {"store": "S2", "week": WEEK[5], "step": 1, "forecast": 3.5},
        {"store": "S2", "week": WEEK[6], "step": 2, "forecast": 4.5},
    ]


def test_request_info_is_read_from_the_export_file_like_the_dict(history, tmp_path):
    path = tmp_path / requests.REQUEST_INFO
    path.write_text(json.dumps(request_info(history)))
    from_file = requests.requests_from_csv(path, tmp_path / "history.csv")
    from_dict = requests.requests_from_csv(request_info(history), tmp_path / "history.csv")
    assert set(from_file.inputs) == set(from_dict.inputs)
    for name, values in from_dict.inputs.items():
        np.testing.assert_array_equal(from_file.inputs[name], values)


def test_no_series_long_enough_is_an_error(history, tmp_path):
    info = {**request_info(history), "lookback": 6}  # S1 has 5 observed weeks, the most
    with pytest.raises(DataError, match="no series has min_length=8 periods"):
        requests.requests_from_csv(info, tmp_path / "history.csv")


def test_forecast_dates_are_written_in_the_input_format(history, tmp_path):
    for name in ("history.csv", "calendar.csv"):
        path = tmp_path / name
        day_first = {iso: f"{pd.Timestamp(iso):%d/%m/%Y}" for iso in WEEK.values()}
        text = path.read_text()
        for iso, written in day_first.items():
            text = text.replace(iso, written)
        path.write_text(text)
    config = dataclasses.replace(history, date_format="%d/%m/%Y")
    request = requests.requests_from_csv(request_info(config), tmp_path / "history.csv")
    table = request.forecast_table({"forecast": np.zeros((2, HORIZON), np.float32)})
    assert table["week"].tolist() == [f"{pd.Timestamp(WEEK[w]):%d/%m/%Y}" for w in (6, 7, 5, 6)]


def test_errors_name_the_users_file_not_a_temporary_copy(history, tmp_path):
    path = tmp_path / "history.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",12,", ",twelve,")  # S1 week 3
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as error:
        requests.requests_from_csv(request_info(history), path)
    assert f"{path}: line 4: sales is 'twelve'" in str(error.value)
    assert "input.csv" not in str(error.value)


def test_missing_markers_and_padded_headers_are_read(history, tmp_path):
    path = tmp_path / "history.csv"
    lines = path.read_text().splitlines()
    lines[0] = "store , week,sales ,promo,price,region"
    lines[3] = lines[3].replace(",12,", ",*,")  # S1 week 3: not recorded
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="sales is '\\*'"):
        requests.requests_from_csv(request_info(history), path)
    marked = dataclasses.replace(history, na_values=["*"])
    request = requests.requests_from_csv(request_info(marked), path)
    np.testing.assert_array_equal(request.inputs["sales"][0], float32([0, 13, 14]))


def test_a_wide_history_is_forecast_like_its_long_form(tmp_path):
    (tmp_path / "wide.csv").write_text(
        "month,Rose,Sparkling\n2020-01,10,100\n2020-02,11,110\n2020-03,12,120\n2020-04,13,\n"
    )
    config = SeriesIngestConfig(
        path="wide.csv",
        data_dir=str(tmp_path),
        layout="wide_columns",
        date_column="month",
        date_format="%Y-%m",
        target="sales",
        series_id=["wine"],
        joins=[],
        known_future=[],
        past_covariates=[],
        static_categorical=[],
        static_numeric=[],
        frequency="MS",
    )
    request = requests.requests_from_csv(request_info(config), tmp_path / "wide.csv")
    assert request.inputs["wine"].tolist() == ["Rose", "Sparkling"]
    np.testing.assert_array_equal(request.inputs["sales"], float32([[11, 12, 13], [100, 110, 120]]))
    assert request.inputs["forecast_start"].tolist() == ["2020-05-01", "2020-04-01"]
    table = request.forecast_table({"forecast": np.zeros((2, HORIZON), np.float32)})
    assert table["month"].tolist() == ["2020-05", "2020-06", "2020-04", "2020-05"]
