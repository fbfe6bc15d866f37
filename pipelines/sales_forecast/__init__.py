"""Weekly sales forecasting with a backtest: the pipeline spec."""
