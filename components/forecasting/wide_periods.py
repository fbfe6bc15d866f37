"""Which columns of a wide table hold the series' values (used by ``csv_files.read_wide``).

Public sales tables often follow a column per week with summary columns (a minimum, a maximum,
normalized copies of every week). Read as periods, those would become the last "weeks" of every
series and the backtest would score against them. So the period columns are either named in
``ingest.period_columns`` or must form one unbroken run of headers, and the first header that
breaks the run stops ingest with its name.
"""

from __future__ import annotations

import fnmatch
import re

import pandas as pd

from components.errors import DataError
from components.forecasting.ingest_config import SeriesIngestConfig

_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def period_columns(columns: list[str], per_series: list[str], config: SeriesIngestConfig) -> list:
    """The ``wide_rows`` period columns, in file order: those ``config.period_columns`` names, or
    every column without another role when they run unbroken (see ``_require_run``)."""
    if config.period_columns is not None:
        return _named(columns, config)
    periods = [c for c in columns if c not in per_series]
    _require_run(periods, config)
    return periods


def _named(columns: list[str], config: SeriesIngestConfig) -> list[str]:
    """Each entry of ``period_columns``: a header, a range ``FIRST:LAST`` of headers (inclusive,
    in file order) or a glob pattern such as ``W*``."""
    chosen: set[str] = set()
    for entry in config.period_columns:
        if entry in columns:
            chosen.add(entry)
        elif ":" in entry:
            first, last = entry.split(":", 1)
            missing = [end for end in (first, last) if end not in columns]
            if missing or columns.index(first) > columns.index(last):
                raise DataError(
                    f"{config.path}: ingest.period_columns range {entry!r} needs two headers of "
                    f"the file, the first before the last; its columns are {columns}"
                )
            chosen.update(columns[columns.index(first) : columns.index(last) + 1])
        else:
            matched = fnmatch.filter(columns, entry)
            if not matched:
                raise DataError(
                    f"{config.path}: ingest.period_columns entry {entry!r} is no header, range "
                    f"or pattern matching one; its columns are {columns}"
                )
            chosen.update(matched)
    return [c for c in columns if c in chosen]


def _require_run(periods: list[str], config: SeriesIngestConfig) -> None:
    """Without ``start`` the headers are dates; with it, one prefix and consecutive numbers
    (``W0, W1, ...`` or ``1, 2, ...``). Raise a DataError naming the first header that breaks it."""
    if config.start is None:
        return  # ``_period_dates`` names the first header that is not a date
    first = _NUMBERED.match(periods[0]) if periods else None
    for index, header in enumerate(periods):
        if not _continues(first, header, index):
            want = f"{first.group(1)}{int(first.group(2)) + index}" if first else "a numbered one"
            run = f"{periods[0]!r} to {periods[index - 1]!r}" if index else "none"
            raise DataError(
                f"{config.path}: column {header!r} breaks the run of period columns ({run}; "
                f"expected {want!r}: one prefix with consecutive numbers from ingest.start); a "
                "summary column? Name the period columns in ingest.period_columns: a list of "
                "headers, a range such as [W0:W51] or a pattern such as [W*]"
            )


def _continues(first: re.Match | None, header: str, index: int) -> bool:
    """Whether ``header`` is the ``index``-th after ``first``: its prefix, its number + index
    (``W09`` then ``W10``: zero padding may change)."""
    found = _NUMBERED.match(header)
    return bool(
        first
        and found
        and found.group(1) == first.group(1)
        and int(found.group(2)) == int(first.group(2)) + index
    )


def require_numeric_series(table: pd.DataFrame, values: list[str], config: SeriesIngestConfig):
    """``wide_columns``: raise a DataError naming the first series column with no number in it
    (a text column such as a region or a note, not a series)."""
    for column in values:
        cells = table[column].dropna().astype(str).str.strip()
        flags = cells.str.lower().replace({"true": "1", "false": "0"})
        if len(cells) and pd.to_numeric(flags, errors="coerce").isna().all():
            raise DataError(
                f"{config.path}: column {column!r} is not numeric (line {cells.index[0] + 2}: "
                f"{cells.iloc[0]!r}), so it is no series; name the series columns in "
                "ingest.value_columns, or give the column a role (known_future, past_covariates)"
            )
