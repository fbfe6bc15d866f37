"""Forecasting: a table of series described by config, time-ordered windows, models, baselines."""
