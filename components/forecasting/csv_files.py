"""Reading the CSVs of a series ingest: where each file is, which file gives each column, and
rows parsed with errors that name the file, line and value (used by ``ingest``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from components.errors import DataError
from components.forecasting.ingest_config import SeriesIngestConfig

DATA_DIR_ENV = "RNN_DATA_DIR"  # the variable the other data sources read for the data mirror


class SeriesCsvFiles:
    """The main CSV and the join CSVs: where they are, their headers, which file gives a column."""

    def __init__(self, config: SeriesIngestConfig, root: Path):
        self.config, self.root = config, root
        self.names = [config.path, *(join.path for join in config.joins)]
        self.paths = [self._located(name) for name in self.names]
        self.headers = [_header(p, n) for p, n in zip(self.paths, self.names, strict=True)]
        self.origins = self._origins()
        self.on_panel: set[str] = set()

    @property
    def main_path(self) -> Path:
        return self.paths[0]

    def _located(self, path: str) -> Path:
        located = self.root / path
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
        wanted = set(columns)
        table = pd.read_csv(
            self.paths[index],
            usecols=lambda name: name.strip() in wanted,
            dtype=str,
            skip_blank_lines=False,
            na_values=config.na_values,
        ).dropna(how="all")
        table.columns = table.columns.str.strip()  # "Rose " in a header is the column Rose
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


def _header(path: Path, name: str) -> list[str]:
    """The column names, stripped of surrounding spaces."""
    try:
        return [column.strip() for column in pd.read_csv(path, nrows=0).columns]
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{name}: {path} is empty; expected a CSV with a header row") from error


def _require_complete(table: pd.DataFrame, name: str, column: str) -> None:
    empty = table[column].isna()
    if empty.any():
        raise DataError(
            f"{name}: line {empty.idxmax() + 2}: {column} is empty ({empty.sum()} such rows); "
            "expected a value"
        )


def _dates(table: pd.DataFrame, name: str, column: str, date_format: str) -> pd.Series:
    text = table[column]
    dates = pd.to_datetime(text, format=date_format, errors="coerce")
    bad = dates.isna()
    if bad.any():
        line = bad.idxmax()
        value = "empty" if pd.isna(text[line]) else repr(text[line])
        raise DataError(
            f"{name}: line {line + 2}: {column} is {value}, not a date in the format "
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
        line = bad.idxmax()
        raise DataError(
            f"{name}: line {line + 2}: {column} is {values[line]!r} ({bad.sum()} such rows); "
            "expected a number or TRUE/FALSE"
        )
    return numbers
