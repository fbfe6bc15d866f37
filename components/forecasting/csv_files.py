"""Reading the CSVs of a series ingest: where each file is, which file gives each column, and
rows parsed with errors that name the file, line and value (used by ``ingest``)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from components.errors import DataError
from components.forecasting import wide_periods
from components.forecasting.ingest_config import SeriesIngestConfig

DATA_DIR_ENV = "RNN_DATA_DIR"  # the variable the other data sources read for the data mirror


class SeriesCsvFiles:
    """The main CSV and the join CSVs: where they are, their headers, which file gives a column."""

    def __init__(self, config: SeriesIngestConfig, root: Path):
        self.config, self.root = config, root
        self.names = [config.path, *(join.path for join in config.joins)]
        self.paths = [self._located(name) for name in self.names]
        self.headers = [_header(p, n) for p, n in zip(self.paths, self.names, strict=True)]
        self.wide_header = self.headers[0]
        if config.layout != "long":
            self.headers[0] = long_header(config, self.wide_header)
        self.origins = self._origins()
        self.on_panel: set[str] = set()

    @property
    def main_path(self) -> Path:
        return self.paths[0]

    def _located(self, path: str) -> Path:
        located = self.root / path
        if not located.is_file() and not (self.config.data_dir or os.environ.get(DATA_DIR_ENV)):
            raise DataError(
                f"sales data {path} not found at {located}: neither ingest.data_dir nor "
                f"${DATA_DIR_ENV} is set, so it was looked for in the working directory, and "
                "sales data is never downloaded. Point ingest.data_dir (or "
                f"${DATA_DIR_ENV}) at a local copy holding {', '.join(self.names)}, or give "
                "absolute paths"
            )
        if not located.is_file():
            raise DataError(
                f"{path}: not found at {located}; relative paths resolve against ingest.data_dir, "
                f"else ${DATA_DIR_ENV}, else the working directory, which should point at the "
                f"data mirror (now {self.root})"
            )
        return located

    def _origins(self) -> dict[str, int]:
        """Each role column's file: 0 for the main file, ``i + 1`` for ``joins[i]``.

        A join that lists the column in its ``columns`` wins, then the main file, then a join
        that takes all its columns; two candidates at the same rank are an error.
        """
        joins, headers = self.config.joins, self.headers
        listed = [join.columns or [] for join in joins]
        unlisted = [
            [] if join.columns else [c for c in header if c not in join.keys]
            for join, header in zip(joins, headers[1:], strict=True)
        ]
        origins = {}
        for column in self.config.role_columns():
            for candidates in (
                [i + 1 for i, columns in enumerate(listed) if column in columns],
                [0] if column in headers[0] else [],
                [i + 1 for i, columns in enumerate(unlisted) if column in columns],
            ):
                if len(candidates) == 1:
                    origins[column] = candidates[0]
                    break
                if candidates:
                    raise DataError(
                        f"column {column} is in {[self.names[i] for i in candidates]}; list it in "
                        "the columns of the one join that should give it"
                    )
            else:
                found = "; ".join(f"{n} has {h}" for n, h in zip(self.names, headers, strict=True))
                raise DataError(f"column {column} is in none of the files: {found}")
        return origins

    def read_main(self) -> pd.DataFrame:
        config = self.config
        given = [column for column, origin in self.origins.items() if origin == 0]
        keys = [c for join in config.joins for c in join.keys if c in self.headers[0]]
        required = [*config.series_id, config.date_column, config.target]
        columns = list(dict.fromkeys([*required, *given, *keys]))
        table = self._read(0, columns)
        self.on_panel.update(columns)
        table[config.date_column] = _dates(
            table, config.path, config.date_column, config.date_format
        )
        return table

    def read_join(self, index: int) -> pd.DataFrame:
        """``joins[index]``'s keys and the role columns it gives."""
        config, join = self.config, self.config.joins[index]
        absent = [key for key in join.keys if key not in self.on_panel]
        if absent:
            raise DataError(
                f"{join.path}: join key(s) {absent} are not on the panel; keys must be columns "
                f"of {config.path} or of an earlier join"
            )
        given = [column for column, origin in self.origins.items() if origin == index + 1]
        self._require_columns(index + 1, [*join.keys, *(join.columns or [])])
        table = self._read(index + 1, [*join.keys, *given])
        if config.date_column in join.keys:
            date_format = join.date_format or config.date_format
            table[config.date_column] = _dates(table, join.path, config.date_column, date_format)
        self.on_panel.update(given)
        return table

    def _read(self, index: int, columns: list[str]) -> pd.DataFrame:
        """The file's rows with numbers parsed, indexed so that ``index + 2`` is the CSV line."""
        config, name = self.config, self.names[index]
        self._require_columns(index, columns)
        text = {
            *config.series_id,
            *config.static_categorical,
            *(c for j in config.joins for c in j.keys),
        }
        text = [c for c in columns if c in text and c != config.date_column]
        # Blank lines are kept while reading (then dropped) so that the index counts CSV lines.
        if index == 0 and config.layout != "long":
            table = read_wide(self.paths[0], config)[columns]
        else:
            table = _read_csv(self.paths[index], config.na_values, set(columns))
        if table.empty:
            raise DataError(f"{name}: has a header but no rows")
        for column in text:
            _require_complete(table, name, column)
        numeric = {
            config.target,
            *config.known_future,
            *config.past_covariates,
            *config.static_numeric,
        }
        for column in [c for c in columns if c in numeric]:
            table[column] = _numbers(table[column], name, column)
        return table

    def _require_columns(self, index: int, columns: list[str]) -> None:
        missing = [c for c in columns if c not in self.headers[index]]
        if missing:
            raise DataError(
                f"{self.names[index]}: has no column(s) {missing}; its columns are "
                f"{self.headers[index]}"
            )


def long_header(config: SeriesIngestConfig, wide_header: list[str]) -> list[str]:
    """The main file's columns once a wide layout is read as one row per series and period."""
    if config.layout == "wide_columns":
        per_date = [c for c in wide_header if c in {config.date_column, *config.role_columns()}]
        return [*per_date, config.series_id[0], config.target]
    per_series = [c for c in wide_header if c in {*config.series_id, *config.role_columns()}]
    return [*per_series, config.date_column, config.target]


def read_wide(path: Path, config: SeriesIngestConfig) -> pd.DataFrame:
    """A wide file (``config.layout``) as one row per series and period, as text, in the columns
    of ``long_header``; each row is indexed by its line in the file, so errors still name the
    line. An empty cell is no observation (a missing period, once inside a series)."""
    table = _read_csv(path, config.na_values)
    header = long_header(config, list(table.columns))
    name = config.path
    if config.layout == "wide_columns":
        per_date = header[:-2]
        values = config.value_columns or [c for c in table.columns if c not in per_date]
        missing = [c for c in [config.date_column, *values] if c not in table.columns]
        if missing or not values:
            raise DataError(
                f"{name}: layout wide_columns needs {config.date_column} and series columns; "
                f"missing {missing or 'series columns'} (its columns are {list(table.columns)})"
            )
        wide_periods.require_numeric_series(table, values, config)
        long = table.melt(per_date, values, config.series_id[0], config.target, ignore_index=False)
    else:
        per_series = header[:-2]
        periods = [c for c in table.columns if c not in per_series]
        if periods and set(config.series_id) <= set(table.columns):
            periods = wide_periods.period_columns(list(table.columns), per_series, config)
        if not set(config.series_id) <= set(table.columns) or not periods:
            raise DataError(
                f"{name}: layout wide_rows needs the series_id column(s) {config.series_id} and "
                f"period columns; its columns are {list(table.columns)}"
            )
        long = table.melt(
            per_series, periods, config.date_column, config.target, ignore_index=False
        )
        long[config.date_column] = long[config.date_column].map(_period_dates(periods, config))
    return long.loc[long[config.target].notna(), header]


def _period_dates(headers: list[str], config: SeriesIngestConfig) -> dict[str, str]:
    """``wide_rows`` period header -> its date, in ``date_format`` (as a long file has it)."""
    if config.start is not None:
        dates = pd.date_range(config.start, periods=len(headers), freq=config.frequency)
        return {h: f"{d:{config.date_format}}" for h, d in zip(headers, dates, strict=True)}
    parsed = pd.to_datetime(pd.Series(headers), format=config.date_format, errors="coerce")
    if parsed.isna().any():
        bad = headers[int(parsed.isna().to_numpy().argmax())]
        raise DataError(
            f"{config.path}: column header {bad!r} is not a date in the format "
            f"{config.date_format!r}; name the series columns in ingest.series_id, set "
            "ingest.start when the period columns are numbered, or name the period columns in "
            "ingest.period_columns (a summary column after them?)"
        )
    return dict(zip(headers, headers, strict=True))


def _read_csv(path: Path, na_values: list[str], wanted: set[str] | None = None) -> pd.DataFrame:
    """The file's rows as text, headers stripped ("Rose " is the column Rose), blank lines
    dropped but counted, so that ``index + 2`` is each row's line in the file."""
    table = pd.read_csv(
        path,
        usecols=None if wanted is None else (lambda column: column.strip() in wanted),
        dtype=str,
        skip_blank_lines=False,
        na_values=na_values,
    ).dropna(how="all")
    table.columns = table.columns.str.strip()
    return table


def _header(path: Path, name: str) -> list[str]:
    """The column names, stripped of surrounding spaces."""
    try:
        return [column.strip() for column in pd.read_csv(path, nrows=0).columns]
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{name}: {path} is empty; expected a CSV with a header row") from error


def first_line(rows: pd.Series) -> int:
    """The file line of the first row where ``rows`` is true (a wide file's rows share lines)."""
    return int(rows.index[int(rows.to_numpy().argmax())]) + 2


def _require_complete(table: pd.DataFrame, name: str, column: str) -> None:
    empty = table[column].isna()
    if empty.any():
        raise DataError(
            f"{name}: line {first_line(empty)}: {column} is empty ({empty.sum()} such rows); "
            "expected a value"
        )


def _dates(table: pd.DataFrame, name: str, column: str, date_format: str) -> pd.Series:
    text = table[column]
    dates = pd.to_datetime(text, format=date_format, errors="coerce")
    bad = dates.isna()
    if bad.any():
        found = text.iloc[int(bad.to_numpy().argmax())]
        value = "empty" if pd.isna(found) else repr(found)
        raise DataError(
            f"{name}: line {first_line(bad)}: {column} is {value}, not a date in the format "
            f"{date_format!r} ({bad.sum()} such rows)"
        )
    return dates.astype("datetime64[ns]")


def _numbers(values: pd.Series, name: str, column: str) -> pd.Series:
    """Floats from numbers or TRUE/FALSE flags (any case); an empty value stays NaN."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    flags = values.astype(str).str.strip().str.lower().replace({"true": "1", "false": "0"})
    numbers = pd.to_numeric(flags.where(values.notna()), errors="coerce").astype("float64")
    bad = numbers.isna() & values.notna()
    if bad.any():
        found = values.iloc[int(bad.to_numpy().argmax())]
        raise DataError(
            f"{name}: line {first_line(bad)}: {column} is {found!r} ({bad.sum()} such rows); "
            "expected a number or TRUE/FALSE"
        )
    return numbers
