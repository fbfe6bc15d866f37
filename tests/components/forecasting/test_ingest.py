import numpy as np
import pandas as pd
import pytest

from components.errors import ConfigError, DataError
from components.forecasting import ingest
from components.forecasting.ingest_config import JoinConfig, SeriesIngestConfig
from pipelines.config import load_config
from tests.conftest import SHARED_DATA

# Mondays, written the way the tiny shop's export writes them (%d/%m/%Y).
WEEKS = ["01/01/2024", "08/01/2024", "15/01/2024", "22/01/2024", "29/01/2024"]


def shop_config(tmp_path, **overrides) -> SeriesIngestConfig:
    """A sku,week,units,promo file: nothing like Walmart's column names, dates or frequency."""
    settings = dict(
        path="sales.csv",
        data_dir=str(tmp_path),
        date_column="week",
        date_format="%d/%m/%Y",
        target="units",
        series_id=["sku"],
        joins=[],
        known_future=["promo"],
        past_covariates=[],
        static_categorical=[],
        static_numeric=[],
        frequency="W-MON",
    )
    return SeriesIngestConfig(**{**settings, **overrides})


def write_sales(tmp_path, rows: list[str], header: str = "sku,week,units,promo") -> None:
    (tmp_path / "sales.csv").write_text("\n".join([header, *rows]) + "\n")


def ingested(tmp_path, config=None, min_length: int = 1):
    series = ingest.run(config or shop_config(tmp_path), tmp_path / "out", min_length)
    return series.load(), series.statistics()


def test_a_differently_shaped_file_is_ingested_by_config_alone(tmp_path):
    write_sales(
        tmp_path,
        [
            f"B2,{WEEKS[1]},5,FALSE",
            f"A7,{WEEKS[0]},3,TRUE",
            f"B2,{WEEKS[0]},4,1",
            f"A7,{WEEKS[1]},6,false",
        ],
    )
    panel, statistics = ingested(tmp_path)
    assert list(panel.columns) == ["series", "sku", "date", "target", "filled", "promo"]
    assert panel["series"].tolist() == ["A7", "A7", "B2", "B2"]
    assert panel["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-01", "2024-01-08"] * 2
    assert panel["target"].tolist() == [3.0, 6.0, 4.0, 5.0]
    assert panel["promo"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert panel["target"].dtype == np.float64 and panel["promo"].dtype == np.float64
    assert pd.api.types.is_datetime64_dtype(panel["date"]) and not panel["filled"].any()
    assert statistics["files"] == {"sales.csv": {"rows": 4}}
    assert statistics["columns"]["target"] == "units"
    assert (tmp_path / "out" / "panel.parquet").is_file()
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_ids_sort_numerically_and_join_with_underscores(tmp_path):
    write_sales(
        tmp_path,
        [f"10,1,{WEEKS[0]},1,0", f"2,1,{WEEKS[0]},1,0", f"2,10,{WEEKS[0]},1,0"],
        header="store,dept,week,units,promo",
    )
    panel, _ = ingested(tmp_path, shop_config(tmp_path, series_id=["store", "dept"]))
    assert panel["series"].tolist() == ["2_1", "2_10", "10_1"]
    assert panel["dept"].tolist() == ["1", "10", "1"]


@pytest.mark.parametrize(
    "policy, expected", [("zero", 0.0), ("interpolate", 30.0), ("ffill", 20.0)]
)
def test_missing_weeks_are_filled_and_flagged(tmp_path, policy, expected):
    write_sales(tmp_path, [f"A,{WEEKS[0]},10,0", f"A,{WEEKS[1]},20,0", f"A,{WEEKS[3]},40,1"])
    panel, statistics = ingested(tmp_path, shop_config(tmp_path, fill_missing=policy))
    assert panel["target"].tolist() == [10.0, 20.0, expected, 40.0]
    assert panel["filled"].tolist() == [False, False, True, False]
    assert panel["date"].iloc[2] == pd.Timestamp("2024-01-15")
    assert statistics["periods"]["filled"] == 1


def test_an_empty_target_counts_as_a_missing_week(tmp_path):
    write_sales(tmp_path, [f"A,{WEEKS[0]},10,0", f"A,{WEEKS[1]},,1", f"A,{WEEKS[2]},30,0"])
    panel, statistics = ingested(tmp_path, shop_config(tmp_path, fill_missing="interpolate"))
    assert panel["target"].tolist() == [10.0, 20.0, 30.0]
    assert panel["filled"].tolist() == [False, True, False]
    assert panel["promo"].tolist() == [0.0, 1.0, 0.0]  # the row's covariates are kept
    assert statistics["target"]["empty"] == 1


@pytest.mark.parametrize("policy, expected", [("zero", [0, 1, 0, 0]), ("ffill", [0, 1, 1, 1])])
def test_empty_covariates_are_filled(tmp_path, policy, expected):
    rows = [f"A,{WEEKS[0]},1,", f"A,{WEEKS[1]},1,TRUE", f"A,{WEEKS[2]},1,NA", f"A,{WEEKS[4]},1,"]
    write_sales(tmp_path, rows)
    panel, statistics = ingested(tmp_path, shop_config(tmp_path, covariate_fill=policy))
    assert panel["promo"].tolist() == expected + [float(expected[-1])]
    assert statistics["covariate_na_before_fill"] == {"promo": {"read": 3, "inserted": 1}}


@pytest.mark.parametrize("policy, expected", [("keep", -2.0), ("clip", 0.0)])
def test_negative_sales_are_kept_or_clipped_and_counted(tmp_path, policy, expected):
    write_sales(tmp_path, [f"A,{WEEKS[0]},5,0", f"A,{WEEKS[1]},-2,0"])
    panel, statistics = ingested(tmp_path, shop_config(tmp_path, negative_target=policy))
    assert panel["target"].tolist() == [5.0, expected]
    assert statistics["target"]["negative"] == 1
    assert statistics["target"]["negative_policy"] == policy


def test_negative_sales_can_be_an_error(tmp_path):
    write_sales(tmp_path, [f"A,{WEEKS[0]},5,0", f"A,{WEEKS[1]},-2.5,0"])
    with pytest.raises(DataError, match=r"sales.csv: line 3: units=-2.5 is negative"):
        ingested(tmp_path, shop_config(tmp_path, negative_target="error"))


def test_too_short_series_are_dropped_and_counted(tmp_path):
    rows = [f"A,{week},1,0" for week in WEEKS] + [f"B,{WEEKS[0]},1,0", f"B,{WEEKS[2]},1,0"]
    write_sales(tmp_path, rows)
    panel, statistics = ingested(tmp_path, min_length=4)
    assert set(panel["series"]) == {"A"}
    dropped = statistics["series"]["dropped_too_short"]
    assert dropped == {"count": 1, "min_length": 4, "examples": ["B"]}
    assert statistics["series"]["read"] == 2 and statistics["series"]["kept"] == 1
    assert statistics["length"] == {"min": 5, "median": 5.0, "max": 5}


def test_no_series_long_enough_is_an_error(tmp_path):
    write_sales(tmp_path, [f"A,{WEEKS[0]},1,0"])
    with pytest.raises(DataError, match="no series has min_length=3 periods; the longest has 1"):
        ingested(tmp_path, min_length=3)


def test_duplicate_rows_are_named_with_their_lines(tmp_path):
    rows = [f"A,{WEEKS[0]},1,0", f"A,{WEEKS[1]},2,0", f"A,{WEEKS[0]},3,0"]
    write_sales(tmp_path, rows)
    with pytest.raises(DataError, match=r"sku=A, week=01/01/2024 on lines 2, 4"):
        ingested(tmp_path)
    panel, statistics = ingested(tmp_path, shop_config(tmp_path, duplicate_rows="first"))
    assert panel["target"].tolist() == [1.0, 2.0]
    assert statistics["duplicate_rows_dropped"] == {"sales.csv": 1}


@pytest.mark.parametrize(
    "row, message",
    [
        (
            "A,2024-01-15,3,0",
            r"sales.csv: line 4: week is '2024-01-15', not a date in the format '%d/%m/%Y'",
        ),
        ("A,,3,0", r"sales.csv: line 4: week is empty, not a date"),
        ("A,15/01/2024,ten,0", r"sales.csv: line 4: units is 'ten' .*expected a number"),
        ("A,15/01/2024,3,maybe", r"sales.csv: line 4: promo is 'maybe' .*or TRUE/FALSE"),
        ("A,17/01/2024,3,0", r"line 4: week=17/01/2024 is not on the W-MON grid .*15/01/2024"),
        (",15/01/2024,3,0", r"sales.csv: line 4: sku is empty"),
    ],
)
def test_bad_values_are_named_with_line_and_value(tmp_path, row, message):
    write_sales(tmp_path, [f"A,{WEEKS[0]},1,0", f"A,{WEEKS[1]},2,0", row])
    with pytest.raises(DataError, match=message):
        ingested(tmp_path)


def test_line_numbers_count_blank_lines(tmp_path):
    write_sales(tmp_path, [f"A,{WEEKS[0]},1,0", "", "A,bad,2,0"])
    with pytest.raises(DataError, match="line 4: week is 'bad'"):
        ingested(tmp_path)


def test_missing_file_says_where_it_was_expected(tmp_path):
    with pytest.raises(DataError, match=r"sales.csv: not found at .*RNN_DATA_DIR"):
        ingested(tmp_path)


def test_missing_file_resolves_against_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_DATA_DIR", str(tmp_path / "mirror"))
    with pytest.raises(DataError, match=f"not found at {tmp_path / 'mirror' / 'sales.csv'}"):
        ingested(tmp_path, shop_config(tmp_path, data_dir=None))


def test_empty_files_are_errors(tmp_path):
    (tmp_path / "sales.csv").write_text("")
    with pytest.raises(DataError, match="sales.csv: .* is empty"):
        ingested(tmp_path)
    write_sales(tmp_path, [])
    with pytest.raises(DataError, match="sales.csv: has a header but no rows"):
        ingested(tmp_path)


def test_missing_column_lists_the_columns_the_file_has(tmp_path):
    write_sales(tmp_path, [f"A,{WEEKS[0]},1,0"], header="sku,week,sold,promo")
    with pytest.raises(DataError, match=r"has no column\(s\) \['units'\]; its columns are"):
        ingested(tmp_path)


def write_store_files(tmp_path) -> SeriesIngestConfig:
    """Sales, a weekly price file (ISO dates) and an attribute file with old-Mac line endings."""
    write_sales(tmp_path, [f"A,{WEEKS[0]},1,0", f"A,{WEEKS[2]},3,0", f"B,{WEEKS[0]},2,1"])
    prices = ["sku,week,price,promo", "A,2024-01-01,9.5,1", "A,2024-01-08,9.0,1"]
    prices += ["A,2024-01-15,NA,0", "B,2024-01-01,4.0,0", "C,2024-01-01,1.0,0"]
    (tmp_path / "prices.csv").write_text("\n".join(prices) + "\n")
    (tmp_path / "items.csv").write_bytes(b"sku,category,pack\rA,food,6\rB,toys,1\r")
    return shop_config(
        tmp_path,
        joins=[
            JoinConfig(
                "prices.csv", keys=["sku", "week"], columns=["price"], date_format="%Y-%m-%d"
            ),
            JoinConfig("items.csv", keys=["sku"]),
        ],
        past_covariates=["price"],
        static_categorical=["category"],
        static_numeric=["pack"],
    )


def test_joins_bring_covariates_and_statics_to_every_week(tmp_path):
    panel, statistics = ingested(tmp_path, write_store_files(tmp_path))
    assert list(panel.columns)[-4:] == ["promo", "price", "category", "pack"]
    a = panel[panel["series"] == "A"]
    assert a["price"].tolist() == [9.5, 9.0, 0.0]  # the inserted week gets the file's price
    assert a["promo"].tolist() == [0.0, 0.0, 0.0]  # promo comes from sales.csv, not prices.csv
    assert panel["category"].tolist() == ["food", "food", "food", "toys"]
    assert panel["pack"].tolist() == [6.0, 6.0, 6.0, 1.0]
    assert statistics["files"]["items.csv"] == {"rows": 2}
    assert statistics["covariate_na_before_fill"] == {
        "promo": {"read": 0, "inserted": 1},
        "price": {"read": 1, "inserted": 0},
    }


def test_a_join_column_listed_explicitly_wins_over_the_main_file(tmp_path):
    config = write_store_files(tmp_path)
    config.joins[0].columns = ["price", "promo"]
    panel, _ = ingested(tmp_path, config)
    assert panel["promo"].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_a_join_without_a_match_names_the_keys(tmp_path):
    config = write_store_files(tmp_path)
    (tmp_path / "items.csv").write_bytes(b"sku,category,pack\rA,food,6\r")
    with pytest.raises(DataError, match=r"items.csv: has no row for 1 row\(s\).*sku=B \(sales.csv"):
        ingested(tmp_path, config)


def test_a_static_column_must_be_constant_within_a_series(tmp_path):
    write_sales(tmp_path, [f"A,{WEEKS[0]},1,s", f"A,{WEEKS[1]},1,m"], header="sku,week,units,size")
    config = shop_config(tmp_path, known_future=[], static_categorical=["size"])
    with pytest.raises(DataError, match=r"static column size takes several values.*\['A'\]"):
        ingested(tmp_path, config)


def test_a_column_offered_by_two_files_must_be_chosen(tmp_path):
    config = write_store_files(tmp_path)
    (tmp_path / "items.csv").write_bytes(b"sku,category,pack,price\rA,food,6,1\rB,toys,1,2\r")
    config.joins[0].columns = None  # prices.csv now offers price too
    with pytest.raises(DataError, match=r"column price is in \['prices.csv', 'items.csv'\]"):
        ingested(tmp_path, config)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"fill_missing": "mean"}, "ingest.fill_missing='mean' is not valid; choose one of: zero"),
        ({"negative_target": "drop"}, "ingest.negative_target='drop' is not valid"),
        ({"frequency": "fortnightly"}, "ingest.frequency='fortnightly' is not a pandas offset"),
        ({"past_covariates": ["promo"]}, r"one role only.*'promo': \['known_future', 'past_co"),
        ({"known_future": ["filled"]}, r"\['filled'\] clash with the panel's"),
        ({"target": "series"}, r"\['series'\] clash with the panel's"),
    ],
)
def test_invalid_config_names_the_field(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        shop_config(tmp_path, **overrides)


def test_date_and_target_may_already_carry_the_panel_names(tmp_path):
    write_sales(tmp_path, [f"A,{WEEKS[0]},1,0", f"A,{WEEKS[2]},3,1"], "sku,date,target,promo")
    panel, _ = ingested(tmp_path, shop_config(tmp_path, date_column="date", target="target"))
    assert panel["target"].tolist() == [1.0, 0.0, 3.0]
    assert panel["date"].tolist() == list(pd.date_range("2024-01-01", periods=3, freq="W-MON"))


def test_config_loads_through_omegaconf_with_join_overrides(tmp_path):
    yaml = tmp_path / "ingest.yaml"
    yaml.write_text("joins:\n  - path: items.csv\n    keys: [sku]\n")
    config = load_config(SeriesIngestConfig, yaml, ["series_id=[sku]", "frequency=D"])
    assert config.joins == [JoinConfig("items.csv", keys=["sku"])]
    assert config.series_id == ["sku"] and config.frequency == "D"
    default = load_config(SeriesIngestConfig)
    assert [join.path for join in default.joins][-1] == "sales/walmart_recruiting/stores.csv"


def test_the_walmart_mirror_ingests_with_its_defaults_and_by_config(tmp_path):
    config = SeriesIngestConfig(data_dir=str(SHARED_DATA))
    series = ingest.run(config, tmp_path / "recruiting", min_length=1)
    panel, statistics = series.load(), series.statistics()
    assert statistics["files"]["sales/walmart_recruiting/train.csv"]["rows"] == 421_570
    assert statistics["series"]["kept"] == 3_331
    assert statistics["target"]["negative"] == 1_285
    assert (~panel["filled"]).sum() == 421_570  # every source row, plus the inserted weeks
    assert statistics["periods"]["filled"] == 27_667
    assert not panel.isna().any().any()
    assert panel["Type"].isin(["A", "B", "C"]).all()

    store_sales = SeriesIngestConfig(
        data_dir=str(SHARED_DATA),
        path="sales/walmart_store_sales/Walmart_Store_sales.csv",
        series_id=["Store"],
        date_format="%d-%m-%Y",
        joins=[],
        known_future=["Holiday_Flag"],
        static_categorical=[],
        static_numeric=[],
    )
    panel = ingest.run(store_sales, tmp_path / "store_sales", min_length=52).load()
    assert panel["series"].nunique() == 45 and len(panel) == 6_435
    assert panel.loc[panel["date"] == "2010-02-12", "Holiday_Flag"].eq(1.0).all()


def wide_config(tmp_path, **overrides) -> SeriesIngestConfig:
    settings = dict(
        path="wide.csv",
        data_dir=str(tmp_path),
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
        layout="wide_columns",
    )
    return SeriesIngestConfig(**{**settings, **overrides})


def test_a_column_per_series_is_read_by_config(tmp_path):
    """One row per month, one column per wine (a header padded with a space), '*' = missing."""
    (tmp_path / "wide.csv").write_text(
        "month,Rose ,Sparkling\n2020-01,10,100\n2020-02,*,110\n2020-03,12,\n"
    )
    with pytest.raises(DataError, match=r"wide.csv: line 3: sales is '\*'"):
        ingested(tmp_path, wide_config(tmp_path))
    panel, statistics = ingested(tmp_path, wide_config(tmp_path, na_values=["*"]))
    rose = panel[panel["series"] == "Rose"]
    assert rose["target"].tolist() == [10.0, 0.0, 12.0]  # February filled (fill_missing: zero)
    assert rose["filled"].tolist() == [False, True, False]
    sparkling = panel[panel["series"] == "Sparkling"]
    assert sparkling["target"].tolist() == [100.0, 110.0]  # its series ends with its last value
    assert sparkling["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-01-01", "2020-02-01"]
    assert statistics["columns"]["series_id"] == ["wine"]


def test_a_row_per_series_with_dates_or_numbered_periods_is_read_by_config(tmp_path):
    (tmp_path / "wide.csv").write_text("store,2020-01,2020-02,2020-03\nA,1,2,3\nB,,5,6\n")
    config = wide_config(tmp_path, layout="wide_rows", series_id=["store"])
    panel, _ = ingested(tmp_path, config)
    assert panel.groupby("series")["target"].apply(list).to_dict() == {
        "A": [1.0, 2.0, 3.0],
        "B": [5.0, 6.0],  # starts at its first value
    }
    (tmp_path / "wide.csv").write_text("store,V1,V2,V3\nA,1,2,3\nB,4,x,6\n")
    with pytest.raises(DataError, match="column header 'V1' is not a date .* set ingest.start"):
        ingested(tmp_path, config)
    numbered = wide_config(
        tmp_path,
        layout="wide_rows",
        series_id=["store"],
        start="2021-06-01",
        date_format="%Y-%m-%d",
    )
    with pytest.raises(DataError, match=r"wide.csv: line 3: sales is 'x'"):
        ingested(tmp_path, numbered)
    (tmp_path / "wide.csv").write_text("store,V1,V2,V3\nA,1,2,3\nB,4,5,6\n")
    panel, _ = ingested(tmp_path, numbered)
    dates = panel[panel["series"] == "B"]["date"]
    assert dates.dt.strftime("%Y-%m-%d").tolist() == ["2021-06-01", "2021-07-01", "2021-08-01"]


def test_wide_layout_settings_are_checked():
    with pytest.raises(ConfigError, match="wide_columns takes one series_id"):
        SeriesIngestConfig(layout="wide_columns")  # Walmart's default: Store and Dept
    with pytest.raises(ConfigError, match="ingest.layout='tall' is not valid"):
        SeriesIngestConfig(layout="tall")
    with pytest.raises(ConfigError, match="ingest.start is for layout: wide_rows"):
        SeriesIngestConfig(start="2020-01-01")
    with pytest.raises(ConfigError, match="ingest.start='January' is not an ISO date"):
        SeriesIngestConfig(layout="wide_rows", start="January")


def test_summary_columns_after_numbered_weeks_stop_ingest_naming_the_first(tmp_path):
    """Weeks W0..W3, then a minimum, a maximum and normalized weeks, as public sales tables
    have them: read as weeks they would be the last periods the backtest scores against."""
    (tmp_path / "wide.csv").write_text(
        "store,W0,W1,W2,W3,MIN,MAX,Normalized 0,Normalized 1\n"
        "A,1,2,3,4,1,4,0.0,0.3\nB,5,6,7,8,5,8,0.0,0.3\n"
    )
    numbered = dict(layout="wide_rows", series_id=["store"], start="2021-06-01")
    with pytest.raises(DataError, match=r"column 'MIN' breaks the run .*'W0' to 'W3'.*'W4'"):
        ingested(tmp_path, wide_config(tmp_path, **numbered, date_format="%Y-%m-%d"))
    for named in (["W0:W3"], ["W*"], ["W0", "W1", "W2", "W3"]):
        config = wide_config(tmp_path, **numbered, period_columns=named)
        panel, _ = ingested(tmp_path, config)
        assert panel.groupby("series")["target"].apply(list).to_dict() == {
            "A": [1.0, 2.0, 3.0, 4.0],
            "B": [5.0, 6.0, 7.0, 8.0],
        }, named
    with pytest.raises(DataError, match=r"period_columns range 'W3:W0' needs two headers"):
        ingested(tmp_path, wide_config(tmp_path, **numbered, period_columns=["W3:W0"]))
    with pytest.raises(ConfigError, match="ingest.period_columns is for layout: wide_rows"):
        wide_config(tmp_path, period_columns=["W*"])


def test_summary_column_after_date_headers_names_period_columns(tmp_path):
    (tmp_path / "wide.csv").write_text("store,2020-01,2020-02,total\nA,1,2,3\n")
    by_date = dict(layout="wide_rows", series_id=["store"])
    with pytest.raises(DataError, match="'total' is not a date .* ingest.period_columns"):
        ingested(tmp_path, wide_config(tmp_path, **by_date))
    panel, _ = ingested(tmp_path, wide_config(tmp_path, **by_date, period_columns=["2020-*"]))
    assert panel["target"].tolist() == [1.0, 2.0]


def test_a_text_column_in_a_column_per_series_table_is_named(tmp_path):
    (tmp_path / "wide.csv").write_text(
        "month,Rose,Sparkling,Notes\n2020-01,10,100,\n2020-02,11,110,promo week\n"
    )
    with pytest.raises(DataError, match=r"column 'Notes' is not numeric \(line 3: 'promo week'\)"):
        ingested(tmp_path, wide_config(tmp_path))
    panel, _ = ingested(tmp_path, wide_config(tmp_path, value_columns=["Rose", "Sparkling"]))
    assert sorted(panel["series"].unique()) == ["Rose", "Sparkling"]
