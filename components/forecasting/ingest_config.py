"""What a user's sales table looks like, as config: files, joins, the role of every column.

``SeriesIngestConfig`` is the ``data:`` section of the sales pipeline; ingest reads the CSVs it
describes (``csv_files.py``) into a regular panel (``ingest.py``), and the exported model keeps it
so a forecast request can be built from a CSV of the same layout (``requests.py``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from components.errors import ConfigError, require_one_of
from components.forecasting.calendar import canonical_frequency, period_of

# Panel columns and the working columns ingest adds; no source column may take these names.
LAYOUTS = ("long", "wide_columns", "wide_rows")
RESERVED_COLUMNS = ("series", "date", "target", "filled", "_line", "_period", "_match")
WALMART = "sales/walmart_recruiting"
MARKDOWNS = [f"MarkDown{i}" for i in range(1, 6)]


@dataclasses.dataclass
class JoinConfig:
    path: str
    """CSV to left-join onto the panel; a relative path resolves against ``data_dir``."""
    keys: list[str]
    """Key columns; may include the main date column (parsed with this join's ``date_format``).
    Not called ``on``: YAML reads a bare ``on:`` key as the boolean true."""
    columns: list[str] | None = None
    """Columns to take from this file; default all but the keys."""
    date_format: str | None = None
    """strptime format of this file's dates; default the main ``date_format``."""

    def __post_init__(self):
        if not self.keys:
            raise ConfigError(f"ingest.joins[{self.path}].keys is empty; name the key columns")
        overlap = sorted(set(self.columns or ()) & set(self.keys))
        if overlap:
            raise ConfigError(f"ingest.joins[{self.path}].columns repeats key column(s) {overlap}")


def _walmart_joins() -> list[JoinConfig]:
    # IsHoliday from features.csv: it also covers weeks missing from train.csv (filled ones).
    weekly = ["Temperature", "Fuel_Price", *MARKDOWNS, "CPI", "Unemployment", "IsHoliday"]
    return [
        JoinConfig(f"{WALMART}/features.csv", keys=["Store", "Date"], columns=weekly),
        JoinConfig(f"{WALMART}/stores.csv", keys=["Store"]),
    ]


@dataclasses.dataclass
class SeriesIngestConfig:
    path: str = f"{WALMART}/train.csv"
    """The CSV of the target; a relative path resolves against ``data_dir``."""
    layout: str = "long"
    """How ``path`` lays out the target: ``long`` (a row per series and period), ``wide_columns``
    (a row per date, a column per series, named by the header; ``series_id`` names that one id)
    or ``wide_rows`` (a row per series, its ``series_id`` columns, then a column per period whose
    header is the date, or, with ``start``, the periods from ``start`` on)."""
    value_columns: list[str] | None = None
    """``wide_columns``: the series' columns; null: every column that has no other role."""
    start: str | None = None
    """``wide_rows``: the first period's date (ISO) when the headers are not dates (``V1``,
    ``2``, ...); the columns after the id and static columns are then consecutive periods."""
    period_columns: list[str] | None = None
    """``wide_rows``: the period columns, in file order; each entry a header, a range
    ``FIRST:LAST`` of headers (``W0:W51``) or a glob pattern (``W*``). Other columns without a
    role (summary columns) are left out. Null: every column without a role, which must then run
    unbroken (dates, or with ``start`` one prefix with consecutive numbers)."""
    data_dir: str | None = None
    """Root of relative paths (the data mirror); default $RNN_DATA_DIR, else the working dir."""
    date_column: str = "Date"
    date_format: str = "%Y-%m-%d"
    """strptime format of ``date_column``, e.g. ``%d-%m-%Y``."""
    target: str = "Weekly_Sales"
    """The column to forecast; the panel calls it ``target``."""
    series_id: list[str] = dataclasses.field(default_factory=lambda: ["Store", "Dept"])
    """Columns whose values together name one series (joined with ``_`` in ``series``)."""
    joins: list[JoinConfig] = dataclasses.field(default_factory=_walmart_joins)
    """Files joined in order for covariates and static attributes."""
    known_future: list[str] = dataclasses.field(default_factory=lambda: ["IsHoliday", *MARKDOWNS])
    """Covariates known ahead of time (holiday flags, planned markdowns)."""
    past_covariates: list[str] = dataclasses.field(
        default_factory=lambda: ["Temperature", "Fuel_Price", "CPI", "Unemployment"]
    )
    """Covariates known only up to the forecast origin."""
    static_categorical: list[str] = dataclasses.field(default_factory=lambda: ["Type"])
    static_numeric: list[str] = dataclasses.field(default_factory=lambda: ["Size"])
    frequency: str = "W-FRI"
    """pandas offset alias of the regular grid every date must lie on (W-FRI, MS, D, h, ...;
    the old M, Q, H are read as ME, QE, h)."""
    season_length: int | None = None
    """Periods per season, for seasonal naive, MASE and the seasonal residual; null: what the
    frequency suggests (weekly 52, monthly 12, quarterly 4, daily 7, hourly 24, yearly 1)."""
    na_values: list[str] = dataclasses.field(default_factory=list)
    """Cell values that mean "missing" besides an empty cell (e.g. ``"*"``, ``"-"``, ``"n/a"``):
    a missing target is a missing period (``fill_missing``), a missing covariate is filled."""
    filled_are_actuals: bool = False
    """False: a filled period's value is unknown, so it is neither trained on nor scored. True:
    the fill is the truth (a missing row means nothing was sold), trained on and scored."""
    fill_missing: str = "zero"
    """Target of a missing period: ``zero``, ``interpolate`` (linear) or ``ffill``."""
    covariate_fill: str = "zero"
    """Empty covariates: ``zero``, or ``ffill`` within the series (then zero before the first)."""
    negative_target: str = "keep"
    """Negative targets (returns): ``keep``, ``clip`` to zero, or ``error``."""
    duplicate_rows: str = "error"
    """Several rows for one key: ``error``, or keep the ``first`` and count the rest."""
    future_rows: bool = False
    """Keep the rows after a series' last target (target empty): they carry the known-future
    covariates of the periods to forecast. On when forecasting from a CSV, off for training."""
    max_series: int | None = None
    """Keep only the first this-many usable series, in sorted order (smoke runs and tests)."""

    def __post_init__(self):
        require_one_of("ingest.fill_missing", self.fill_missing, ("zero", "interpolate", "ffill"))
        require_one_of("ingest.covariate_fill", self.covariate_fill, ("zero", "ffill"))
        require_one_of("ingest.negative_target", self.negative_target, ("keep", "clip", "error"))
        require_one_of("ingest.duplicate_rows", self.duplicate_rows, ("error", "first"))
        if not self.series_id:
            raise ConfigError(
                "ingest.series_id is empty; name the column(s) that identify a series"
            )
        self.frequency = canonical_frequency(self.frequency)
        suggested = period_of(self.frequency).season_length
        if self.season_length is not None and self.season_length < 1:
            raise ConfigError(f"ingest.season_length={self.season_length} must be >= 1 (or null)")
        if self.season_length is None and suggested is None:
            raise ConfigError(
                f"ingest.frequency={self.frequency!r} suggests no season length; set "
                "ingest.season_length (1: no seasonality)"
            )
        _check_layout(self)
        _check_roles(self)

    @property
    def periods_per_season(self) -> int:
        """``season_length``, or what the frequency suggests."""
        return self.season_length or period_of(self.frequency).season_length

    def role_columns(self) -> list[str]:
        """Covariate and static columns, taken from the main file or a join."""
        return [column for role in ROLES for column in getattr(self, role)]


ROLES = ("known_future", "past_covariates", "static_categorical", "static_numeric")


def _check_layout(config: SeriesIngestConfig) -> None:
    require_one_of("ingest.layout", config.layout, LAYOUTS)
    if config.layout == "wide_columns" and len(config.series_id) != 1:
        raise ConfigError(
            f"ingest.layout=wide_columns takes one series_id, the name for the series headers; "
            f"got {config.series_id}"
        )
    if config.layout == "wide_columns" and (config.known_future or config.past_covariates):
        per_date = [*config.known_future, *config.past_covariates]
        clash = set(per_date) & set(config.value_columns or ())
        if clash:
            raise ConfigError(f"ingest.value_columns {sorted(clash)} also have a covariate role")
    if config.period_columns is not None and config.layout != "wide_rows":
        raise ConfigError("ingest.period_columns is for layout: wide_rows")
    if config.period_columns == []:
        raise ConfigError("ingest.period_columns is empty; name the period columns, or null")
    if config.value_columns is not None and config.layout != "wide_columns":
        raise ConfigError("ingest.value_columns is for layout: wide_columns")
    if config.start is not None:
        if config.layout != "wide_rows":
            raise ConfigError("ingest.start is for layout: wide_rows")
        try:
            dt.date.fromisoformat(config.start)
        except ValueError as error:
            raise ConfigError(
                f"ingest.start={config.start!r} is not an ISO date (YYYY-MM-DD)"
            ) from error


def _check_roles(config: SeriesIngestConfig) -> None:
    roles: dict[str, list[str]] = {}
    for role in ("series_id", "date_column", "target", *ROLES):
        value = getattr(config, role)
        for column in [value] if isinstance(value, str) else value:
            roles.setdefault(column, []).append(role)
    repeated = {column: found for column, found in roles.items() if len(found) > 1}
    if repeated:
        raise ConfigError(f"ingest: a column may have one role only; got {repeated}")
    renamed = [
        c for c, name in ((config.date_column, "date"), (config.target, "target")) if c != name
    ]
    clashes = [
        c for c in [*config.series_id, *config.role_columns(), *renamed] if c in RESERVED_COLUMNS
    ]
    if clashes:
        raise ConfigError(
            f"ingest: column(s) {clashes} clash with the panel's {list(RESERVED_COLUMNS)}"
        )
