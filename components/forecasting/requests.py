"""Forecast from a CSV with an exported sales model, through its ``serving_default`` signature.

The CSV has the training source's columns (as the model's ingest config names them). Each series'
last row with a target is its forecast origin; rows after it with an empty target carry the
known-future covariates (holidays, planned markdowns) of the forecast weeks. Missing future rows
are added, so the ingest joins (e.g. Walmart's features.csv) can fill them, else they count as 0.
:func:`requests_from_csv` builds the request without TensorFlow, so a REST client can send it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from components.errors import DataError
from components.forecasting import baselines, ingest, ingest_config
from components.forecasting.csv_files import read_wide

log = logging.getLogger(__name__)
REQUEST_INFO = "forecast_request.json"


def run(saved_model_dir: Path, input_csv: Path, output_csv: Path) -> pd.DataFrame:
    """Forecast every series in ``input_csv`` with enough history; write and return the table."""
    import tensorflow as tf

    info_path = saved_model_dir / "assets.extra" / REQUEST_INFO
    if not info_path.is_file():
        raise DataError(f"{saved_model_dir} is not an exported sales model (no {info_path.name})")
    request = requests_from_csv(info_path, input_csv)
    model = tf.saved_model.load(str(saved_model_dir))
    tensors = {name: tf.constant(values) for name, values in request.inputs.items()}
    outputs = model.signatures["serving_default"](**tensors)
    table = request.forecast_table({name: value.numpy() for name, value in outputs.items()})
    write_csv(table, output_csv)
    return table


@dataclasses.dataclass(frozen=True)
class ForecastRequest:
    """The named input arrays of ``serving_default``, a row per series, and what each row is."""

    inputs: dict[str, np.ndarray]
    index: list
    """Per row: the series key, its id columns and the ``horizon`` dates forecast."""
    config: ingest_config.SeriesIngestConfig
    horizon: int

    def forecast_table(self, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
        """A row per series and step: ids, date, step and every ``[rows, horizon]`` output."""
        return _forecast_table(self.index, outputs, self.config, self.horizon)


def requests_from_csv(request_info: Path | dict, input_csv: Path) -> ForecastRequest:
    """The model's inputs for every series in ``input_csv`` with ``lookback`` observed periods.

    Args:
        request_info: ``assets.extra/forecast_request.json`` of the export (or its content):
            the ingest config, ``lookback`` and ``horizon`` the model was trained with.
        input_csv: history in the training source's columns.
    """
    info = request_info
    if not isinstance(info, dict):
        if not Path(info).is_file():
            raise DataError(f"{info}: request info not found (an export's {REQUEST_INFO})")
        info = json.loads(Path(info).read_text())
    config = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(ingest_config.SeriesIngestConfig), info["ingest"])
    )
    lookback, horizon = info["lookback"], info["horizon"]
    with tempfile.TemporaryDirectory() as scratch:
        extended = Path(scratch) / "input.csv"
        source = Path(input_csv)
        if config.layout != "long":  # from here on, the rows of a long file
            source = Path(scratch) / "long.csv"
            read_wide(Path(input_csv), config).to_csv(source, index=False)
            config.layout, config.value_columns, config.start = "long", None, None
            config.period_columns = None
        _with_future_rows(source, config, horizon, extended)
        config.path, config.max_series, config.future_rows = str(extended), None, True
        try:
            series = ingest.run(config, Path(scratch) / "panel", lookback + horizon)
        except DataError as error:
            # Rows keep their line numbers (future rows are appended), so the user's file is meant.
            message = str(error).replace(str(extended), str(input_csv))
            raise DataError(message.replace(str(source), str(input_csv))) from error
        panel, statistics = series.load(), series.statistics()
    inputs, index, histories = _requests(panel, config, lookback, horizon)
    if info.get("baseline_inputs"):
        inputs |= _baseline_inputs(info, panel, index, histories, horizon)
    too_short = statistics["series"]["dropped_too_short"]["count"]
    if too_short:
        log.warning(
            "%s: %d series have fewer than %d periods (lookback + horizon) and are not forecast",
            input_csv,
            too_short,
            lookback + horizon,
        )
    return ForecastRequest(inputs, index, config, horizon)


def write_csv(table: pd.DataFrame, output_csv: Path) -> None:
    """Write ``table`` whole or not at all (through a temporary file)."""
    output_csv.parent.mkdir(parents=True, exist_ok=True)
    temporary = output_csv.with_suffix(".tmp")
    table.to_csv(temporary, index=False)
    temporary.replace(output_csv)


def _with_future_rows(source: Path, config, horizon: int, destination: Path) -> None:
    """Append, per series, rows for the ``horizon`` periods after its last target (if missing)."""
    if not source.is_file():
        raise DataError(f"{source}: input CSV not found")
    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    table.columns = table.columns.str.strip()
    missing = [c for c in [*config.series_id, config.date_column, config.target] if c not in table]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; it has {list(table.columns)}")
    dates = pd.to_datetime(table[config.date_column], format=config.date_format, errors="coerce")
    target = table[config.target].str.strip()
    observed = (target != "") & ~target.isin(config.na_values)
    step = pd.tseries.frequencies.to_offset(config.frequency)
    keys = list(zip(*(table[c] for c in config.series_id), strict=True))
    existing = set(zip(keys, dates, strict=True))
    time_varying = [config.target, *config.known_future, *config.past_covariates]
    rows = []
    for _, series in table[observed].assign(_date=dates[observed]).groupby(config.series_id):
        last = series.loc[series["_date"].idxmax()]
        key = tuple(last[config.series_id])
        for k in range(1, horizon + 1):
            date = last["_date"] + k * step
            if (key, date) not in existing:
                row = last.drop("_date").copy()
                row[config.date_column] = date.strftime(config.date_format)
                row[[c for c in time_varying if c in row.index]] = ""
                rows.append(row)
    pd.concat([table, pd.DataFrame(rows)], ignore_index=True).to_csv(destination, index=False)


def _requests(panel: pd.DataFrame, config, lookback: int, horizon: int):
    """A request row per series: its last ``lookback`` observed periods, the next ``horizon``."""
    inputs: dict[str, list] = {config.target: [], "forecast_start": []}
    inputs |= {c: [] for c in [*config.known_future, *config.past_covariates]}
    inputs |= {c: [] for c in [*config.series_id, *config.static_categorical]}
    inputs |= {c: [] for c in config.static_numeric}
    index, histories, skipped = [], [], 0
    for key, series in panel.groupby("series", sort=False):
        observed = np.flatnonzero(~series["filled"].to_numpy())
        origin = observed[-1] if len(observed) else -1
        if origin + 1 < lookback or origin + horizon >= len(series):
            skipped += 1
            continue
        past = series.iloc[origin + 1 - lookback : origin + 1]
        window = series.iloc[origin + 1 - lookback : origin + 1 + horizon]
        inputs[config.target].append(past["target"].to_numpy(np.float32))
        inputs["forecast_start"].append(f"{window['date'].iloc[lookback]:%Y-%m-%d}")
        for column in config.known_future:
            inputs[column].append(window[column].to_numpy(np.float32))
        for column in config.past_covariates:
            inputs[column].append(past[column].to_numpy(np.float32))
        for column in [*config.series_id, *config.static_categorical]:
            inputs[column].append(str(series[column].iloc[0]))
        for column in config.static_numeric:
            inputs[column].append(np.float32(series[column].iloc[0]))
        index.append((key, series[config.series_id].iloc[0], window["date"].iloc[lookback:]))
        history = series["target"].to_numpy(np.float64)[: origin + 1]
        histories.append(history[~np.isnan(history)])
    if skipped:
        log.warning(
            "%d series have fewer than %d observed periods; not forecast", skipped, lookback
        )
    if not index:
        raise DataError(f"no series in the input has {lookback} observed periods to forecast from")
    return {name: np.stack(values) for name, values in inputs.items()}, index, histories


def _baseline_inputs(info: dict, panel: pd.DataFrame, index, histories, horizon: int) -> dict:
    """The ``baseline_<name>`` inputs of a combined model: the baselines it was weighted with,
    fitted on each series' whole history in the CSV as the backtest fitted them."""
    config = baselines.BaselineConfig(**info["baseline_inputs"])
    groups, missing = None, "no baselines.svd_group_by"
    if config.svd_group_by:
        if config.svd_group_by not in panel.columns:
            raise DataError(
                f"the model combines svd_seasonal_naive, grouped by {config.svd_group_by!r}, "
                f"which the input has no column for"
            )
        first = panel.groupby("series", sort=False)[config.svd_group_by].first().astype(str)
        groups = [first[key] for key, _, _ in index]
    dates = np.array([window_dates.to_numpy("datetime64[D]") for _, _, window_dates in index])
    forecasts = baselines.forecast(
        config, histories, horizon, info["season_length"], groups, missing, dates
    ).forecasts
    return {
        baselines.INPUT_PREFIX + name: values.astype(np.float32)
        for name, values in forecasts.items()
    }


def _forecast_table(index, outputs: dict, config, horizon: int) -> pd.DataFrame:
    columns = {name: np.asarray(value) for name, value in outputs.items()}
    rows = []
    for i, (_, ids, dates) in enumerate(index):
        for step, date in enumerate(dates):
            rows.append(
                {
                    **ids.to_dict(),
                    config.date_column: date.strftime(config.date_format),
                    "step": step + 1,
                    **{name: float(values[i, step]) for name, values in columns.items()},
                }
            )
    return pd.DataFrame(rows)
