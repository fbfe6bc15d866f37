"""Series ingest (ExampleGen for forecasting): read a sales CSV and its joins into a regular panel.

Everything task-specific is config: the file, which columns are the series key, the date and the
target, which files to join for covariates and static attributes, and what to do about the
problems real sales data has (missing periods, empty covariates, negative sales, short series).
The output is one long panel with a row for every period of the ``frequency`` grid from each
series' first to its last observation, and statistics.json saying what was filled, clipped or
dropped. The windowing transform reads ``statistics["columns"]`` to learn each column's role.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from components import tracking
from components.artifacts import TimeSeries
from components.errors import ConfigError, DataError
from components.forecasting.csv_files import DATA_DIR_ENV, SeriesCsvFiles, first_line
from components.forecasting.ingest_config import ROLES, JoinConfig, SeriesIngestConfig

log = logging.getLogger(__name__)


def run(config: SeriesIngestConfig, out_dir: Path, min_length: int) -> TimeSeries:
    """Ingest ``config.path`` and its joins; series shorter than ``min_length`` periods are dropped.

    The panel (``panel.parquet``) is sorted by series, then date. Columns: ``series`` (the
    ``series_id`` values joined with ``_``), each ``series_id`` column as text, ``date``,
    ``target`` (float, after the fill policy), ``filled`` (the period was missing or its target
    empty in the file), the ``known_future`` and ``past_covariates`` as floats (TRUE/FALSE as 1/0),
    the ``static_categorical`` as text and the ``static_numeric`` as floats.

    Raises:
        DataError: a file is missing or empty, or its rows break the contract (see the messages).
    """
    if min_length < 1:
        raise ConfigError(f"min_length={min_length} must be >= 1")
    root = Path(config.data_dir or os.environ.get(DATA_DIR_ENV) or Path.cwd())
    files = SeriesCsvFiles(config, root)
    table = files.read_main()
    statistics: dict = {"dataset": config.path, "files": {config.path: {"rows": len(table)}}}
    table = _deduplicated(table, [*config.series_id, config.date_column], config, statistics)
    grid = _grid(table, config)
    table = _sorted_series(_checked_target(table, config, statistics), config)
    panel = _regularized(table, grid, config)
    for index, join in enumerate(config.joins):
        joined = files.read_join(index)
        statistics["files"][join.path] = {"rows": len(joined)}
        joined = _deduplicated(joined, join.keys, config, statistics, join.path)
        panel = _left_joined(panel, joined, join, config)
    panel, statistics["covariate_na_before_fill"] = _filled(panel, config)
    series_read = panel["series"].nunique()
    lengths = panel.groupby("series", sort=False).size()
    short = lengths[lengths < min_length]
    if len(short) == len(lengths):
        raise DataError(
            f"{config.path}: no series has min_length={min_length} periods; the longest has "
            f"{lengths.max()}"
        )
    kept = lengths.index[~lengths.index.isin(short.index)][: config.max_series]
    panel = _output(panel[panel["series"].isin(kept)], config)
    statistics.update(_statistics(panel, config, series_read, short, min_length))
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / "panel.parquet", lambda path: panel.to_parquet(path, index=False))
    text = json.dumps(statistics, indent=2)
    _write(out_dir / "statistics.json", lambda path: path.write_text(text))
    _log(panel, statistics, files.main_path, config)
    log.info(
        "ingested %d series (%d shorter than %d periods dropped); %d of %d periods filled",
        len(lengths) - len(short),
        len(short),
        min_length,
        statistics["periods"]["filled"],
        len(panel),
    )
    return TimeSeries(out_dir)


def _shown(value, config: SeriesIngestConfig) -> str:
    return value.strftime(config.date_format) if isinstance(value, pd.Timestamp) else str(value)


def _deduplicated(
    table: pd.DataFrame, keys: list[str], config: SeriesIngestConfig, statistics: dict, name=None
) -> pd.DataFrame:
    name = name or config.path
    repeated = table.duplicated(keys, keep=False)
    if not repeated.any():
        return table
    if config.duplicate_rows == "first":
        kept = ~table.duplicated(keys, keep="first")
        statistics.setdefault("duplicate_rows_dropped", {})[name] = int((~kept).sum())
        return table[kept]
    lines = (table.index[repeated].to_series() + 2).groupby(
        [table.loc[repeated, k] for k in keys], sort=False
    )
    examples = [
        ", ".join(f"{k}={_shown(v, config)}" for k, v in zip(keys, key, strict=True))
        + f" on lines {', '.join(map(str, group))}"
        for key, group in list(lines)[:5]
    ]
    raise DataError(
        f"{name}: {lines.ngroups} {'+'.join(keys)} value(s) appear on several rows; expected one "
        f"row each (or set ingest.duplicate_rows=first): {'; '.join(examples)}"
    )


def _grid(table: pd.DataFrame, config: SeriesIngestConfig) -> pd.DatetimeIndex:
    """The ``frequency`` grid over the file's dates (each must lie on it); adds ``_period``."""
    dates = table[config.date_column]
    grid = pd.date_range(dates.min(), dates.max(), freq=config.frequency).astype("datetime64[ns]")
    table["_period"] = grid.get_indexer(dates)
    off = table["_period"] < 0
    if off.any():
        date = dates.iloc[int(off.to_numpy().argmax())]
        position = grid.searchsorted(date)
        nearest = [_shown(d, config) for d in grid[max(position - 1, 0) : position + 1]]
        raise DataError(
            f"{config.path}: line {first_line(off)}: {config.date_column}={_shown(date, config)} "
            f"is not on the {config.frequency} grid ({off.sum()} such rows); nearest dates on "
            f"it: {', '.join(nearest)}"
        )
    return grid


def _checked_target(table: pd.DataFrame, config: SeriesIngestConfig, statistics: dict):
    target = table[config.target]
    negative = target < 0
    if negative.any() and config.negative_target == "error":
        value = target.iloc[int(negative.to_numpy().argmax())]
        raise DataError(
            f"{config.path}: line {first_line(negative)}: {config.target}={value} is negative "
            f"({negative.sum()} such rows); expected >= 0 (or set ingest.negative_target to "
            "keep or clip)"
        )
    statistics["target"] = {
        "negative": int(negative.sum()),
        "negative_policy": config.negative_target,
        "empty": int(target.isna().sum()),
    }
    if config.negative_target == "clip":
        target = target.clip(lower=0.0)
    return table.assign(**{config.target: target, "_line": table.index + 2})


def _sorted_series(table: pd.DataFrame, config: SeriesIngestConfig) -> pd.DataFrame:
    """Rows ordered by series (numeric ids numerically) then period, named in ``series``."""

    def natural(column: pd.Series) -> pd.Series:
        numbers = pd.to_numeric(column, errors="coerce")
        return numbers if numbers.notna().all() else column

    table = table.sort_values([*config.series_id, "_period"], key=natural, ignore_index=True)
    first, *rest = config.series_id
    return table.assign(series=table[first].str.cat([table[c] for c in rest], sep="_"))


def _regularized(table: pd.DataFrame, grid: pd.DatetimeIndex, config: SeriesIngestConfig):
    """Every grid period from each series' first to its last non-empty target, in order (to its
    last row with ``future_rows``)."""
    observed = table[table[config.target].notna()]
    bounds = observed.groupby("series", sort=False)["_period"].agg(["min", "max"])
    if config.future_rows:
        bounds["max"] = table.groupby("series", sort=False)["_period"].max().reindex(bounds.index)
    lengths = (bounds["max"] - bounds["min"] + 1).to_numpy()
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    periods = np.repeat(bounds["min"].to_numpy(), lengths) + offsets
    index = pd.MultiIndex.from_arrays(
        [np.repeat(bounds.index, lengths), periods], names=["series", "_period"]
    )
    panel = table.set_index(["series", "_period"]).reindex(index).reset_index()
    # Each series starts with an observed row, so a forward fill restores ids on inserted periods.
    panel[config.series_id] = panel[config.series_id].ffill()
    panel[config.date_column] = grid[panel["_period"].to_numpy()]
    panel["filled"] = panel[config.target].isna()
    return panel


def _left_joined(panel, table, join: JoinConfig, config: SeriesIngestConfig) -> pd.DataFrame:
    """The panel with ``table``'s columns; every row read from the main file must find a match."""
    merged = panel.merge(table, on=join.keys, how="left", indicator="_match")
    # Inserted periods may lack a match (e.g. a store closed that week); covariate_fill fills them.
    unmatched = (merged["_match"] == "left_only") & merged["_line"].notna()
    if unmatched.any():
        rows = merged.loc[unmatched].drop_duplicates(join.keys).head(5)
        examples = "; ".join(
            ", ".join(f"{key}={_shown(row[key], config)}" for key in join.keys)
            + f" ({config.path} line {int(row['_line'])})"
            for _, row in rows.iterrows()
        )
        raise DataError(
            f"{join.path}: has no row for {unmatched.sum()} row(s) of {config.path}; expected "
            f"one for every {'+'.join(join.keys)} there, missing e.g. {examples}"
        )
    return merged.drop(columns="_match")


def _filled(panel: pd.DataFrame, config: SeriesIngestConfig) -> tuple[pd.DataFrame, dict]:
    """Apply the fill policies; return the panel and, per covariate, how many values were empty
    in rows read and in inserted periods."""
    for column in config.static_categorical + config.static_numeric:
        by_series = panel.groupby("series", sort=False)[column]
        varying = by_series.nunique() > 1
        if varying.any():
            raise DataError(
                f"static column {column} takes several values within series "
                f"{list(varying.index[varying][:5])}; expected one value per series"
            )
        panel[column] = by_series.transform("first")
        empty = panel.loc[panel[column].isna(), "series"].unique()
        if len(empty):
            raise DataError(
                f"static column {column} is empty for series {list(empty[:5])}; expected a value"
            )
    covariates = config.known_future + config.past_covariates
    read = panel["_line"].notna()
    counts = {
        column: {"read": int(empty[read].sum()), "inserted": int(empty[~read].sum())}
        for column, empty in panel[covariates].isna().items()
    }
    if config.covariate_fill == "ffill":
        panel[covariates] = panel.groupby("series", sort=False)[covariates].ffill()
    panel[covariates] = panel[covariates].fillna(0.0)
    # Every series begins and ends with an observed target (its grid spans exactly those), so no
    # gap reaches across two series and the whole column can be filled in one pass.
    target = panel[config.target]
    if config.fill_missing == "zero":
        panel[config.target] = target.fillna(0.0)
    elif config.fill_missing == "ffill":
        panel[config.target] = target.ffill()
    else:
        panel[config.target] = target.interpolate(method="linear")
    return panel, counts


def _output(panel: pd.DataFrame, config: SeriesIngestConfig) -> pd.DataFrame:
    """The published columns, in order, with their declared types."""
    numeric = config.known_future + config.past_covariates
    types = {
        "series": "str",
        **dict.fromkeys(config.series_id, "str"),
        "date": "datetime64[ns]",
        "target": "float64",
        "filled": "bool",
        **dict.fromkeys(numeric, "float64"),
        **dict.fromkeys(config.static_categorical, "str"),
        **dict.fromkeys(config.static_numeric, "float64"),
    }
    panel = panel.rename(columns={config.date_column: "date", config.target: "target"})
    return panel[list(types)].astype(types).reset_index(drop=True)


def _statistics(panel, config, series_read: int, short: pd.Series, min_length: int) -> dict:
    lengths = panel.groupby("series", sort=False).size()
    return {
        "columns": {
            "series_id": config.series_id,
            "date": config.date_column,
            "target": config.target,
            **{role: getattr(config, role) for role in ROLES},
        },
        "frequency": config.frequency,
        "season_length": config.periods_per_season,
        "filled_are_actuals": config.filled_are_actuals,
        "date_range": {
            "first": f"{panel['date'].min():%Y-%m-%d}",
            "last": f"{panel['date'].max():%Y-%m-%d}",
        },
        "series": {
            "read": int(series_read),
            "kept": len(lengths),
            "dropped_too_short": {
                "count": len(short),
                "min_length": min_length,
                "examples": list(short.index[:5]),
            },
        },
        "periods": {
            "total": len(panel),
            "filled": int(panel["filled"].sum()),
            "series_with_filled": int(panel.groupby("series")["filled"].any().sum()),
            "fill_policy": config.fill_missing,
        },
        "length": {
            "min": int(lengths.min()),
            "median": float(lengths.median()),
            "max": int(lengths.max()),
        },
    }


def _write(path: Path, write) -> None:
    """Write through a temporary file so that a crash never leaves a half-written ``path``."""
    partial = path.with_name(f".{path.name}.partial")
    write(partial)
    partial.replace(path)


def _log(panel: pd.DataFrame, statistics: dict, source: Path, config: SeriesIngestConfig) -> None:
    name = Path(config.path).with_suffix("").as_posix()
    tracking.log_dataset(panel, name, source.resolve().as_uri(), "panel", targets="target")
    tracking.log_dict(statistics, "statistics.json")
    tracking.log_metrics(
        {
            "rows_read": statistics["files"][config.path]["rows"],
            "series_kept": statistics["series"]["kept"],
            "series_dropped_too_short": statistics["series"]["dropped_too_short"]["count"],
            "periods_filled": statistics["periods"]["filled"],
            "negative_targets": statistics["target"]["negative"],
        }
    )
