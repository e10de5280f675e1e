"""Time-series forecasting: autoregressive and latent autoregressive models (d2l 8.1).

``series`` loads data, ``models`` defines and trains forecasters, ``evaluate``
backtests them against baselines over the horizon.
"""
from rnnlab.forecasting.evaluate import Backtest, backtest, baseline_forecasts
from rnnlab.forecasting.models import FORECASTERS, Forecaster
from rnnlab.forecasting.series import DATASETS, Series, load_series, sine_series

__all__ = ["Backtest", "backtest", "baseline_forecasts", "FORECASTERS", "Forecaster", "DATASETS",
           "Series", "load_series", "sine_series"]
