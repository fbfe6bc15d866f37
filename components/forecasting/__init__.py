"""Forecasting: a table of series described by config, time-ordered windows, models, baselines."""

KERAS_PACKAGE = "components.forecast"
"""The Keras registration package of the forecasters' layers and losses: saved models name it."""
