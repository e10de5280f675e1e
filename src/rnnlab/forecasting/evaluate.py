"""Rolling-origin backtests: error by horizon against honest baselines.

For every origin ``o`` in the held-out part, each method forecasts ``x[o:o+H]`` from
``x[:o]``; MAE and RMSE are averaged over origins for each horizon ``h = 1..H``.
MASE divides the MAE by the in-sample MAE of the one-step naive forecast on the
training part (the seasonal naive with ``season`` m), so MASE < 1 means better than
naive was in-sample.

Baselines: ``naive`` (last value), ``seasonal`` (the value one season earlier, with
``season``), ``drift`` (last value plus the average step so far), ``mean`` (mean of
the history), and ``ar`` (AR(tau) by least squares on the training part, through
statsmodels' AutoReg when it is installed).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from rnnlab.errors import DataError, UsageError


def _ar_coefficients(train: np.ndarray, lags: int) -> tuple[np.ndarray, str]:
    """(intercept, a_1..a_p) with ``x_t = c + sum_i a_i x_{t-i}``; and which fitter was used."""
    try:
        from statsmodels.tsa.ar_model import AutoReg  # lazy: optional dependency (the forecast extra)
        with warnings.catch_warnings():  # small-sample warnings about the covariance, not the coefficients
            warnings.simplefilter("ignore")
            params = np.asarray(AutoReg(train, lags=lags, trend="c").fit().params, dtype=np.float64)
        return params, "statsmodels AutoReg"
    except ImportError:
        index = np.arange(lags, len(train))
        design = np.column_stack([np.ones(len(index))] + [train[index - i] for i in range(1, lags + 1)])
        params, *_ = np.linalg.lstsq(design, train[index], rcond=None)
        return params, "least squares"


def baseline_forecasts(series: np.ndarray, origins: np.ndarray, steps: int, train_end: int, tau: int,
                       season: int | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Forecast paths ``(len(origins), steps)`` of every baseline; plus notes on how they were fitted."""
    x = np.asarray(series, dtype=np.float64)
    origins = np.asarray(origins, dtype=np.int64)
    h = np.arange(1, steps + 1)
    last = x[origins - 1][:, None]
    paths = {"naive": np.repeat(last, steps, axis=1)}
    if season:
        if origins.min() < season:
            raise UsageError(f"--season {season} needs {season} values before the first origin")
        paths["seasonal"] = x[origins[:, None] - season + (h[None, :] - 1) % season]
    slope = (x[origins - 1] - x[0]) / np.maximum(origins - 1, 1)
    paths["drift"] = last + slope[:, None] * h[None, :]
    cumulative = np.concatenate([[0.0], np.cumsum(x)])
    paths["mean"] = np.repeat((cumulative[origins] / origins)[:, None], steps, axis=1)
    params, fitter = _ar_coefficients(x[:train_end], tau)
    window = np.stack([x[o - tau:o] for o in origins])  # oldest first
    ar = np.empty((len(origins), steps))
    for step in range(steps):
        ar[:, step] = params[0] + window[:, ::-1] @ params[1:]
        window = np.concatenate([window[:, 1:], ar[:, step:step + 1]], axis=1)
    paths["ar"] = ar
    return paths, {"ar": f"AR({tau}) by {fitter} on the training part"}


def naive_scale(train: np.ndarray, season: int | None = None) -> float:
    """In-sample MAE of the (seasonal) naive one-step forecast: the MASE denominator."""
    lag = season or 1
    if len(train) <= lag:
        raise DataError(f"the training part has {len(train)} values; MASE needs more than {lag}")
    scale = float(np.mean(np.abs(train[lag:] - train[:-lag])))
    return scale if scale > 0 else float("nan")


@dataclass
class Backtest:
    horizon: int
    origins: np.ndarray
    actual: np.ndarray                       # (origins, horizon)
    paths: dict[str, np.ndarray]             # method -> (origins, horizon)
    scale: float
    notes: dict = field(default_factory=dict)

    def mae_by_horizon(self) -> dict[str, list[float]]:
        return {name: np.mean(np.abs(p - self.actual), axis=0).tolist() for name, p in self.paths.items()}

    def rmse_by_horizon(self) -> dict[str, list[float]]:
        return {name: np.sqrt(np.mean((p - self.actual) ** 2, axis=0)).tolist() for name, p in self.paths.items()}

    def mase(self) -> dict[str, float]:
        """Mean over horizons of MAE(h) / in-sample naive MAE."""
        return {name: float(np.mean(mae) / self.scale) for name, mae in self.mae_by_horizon().items()}


def backtest(forecaster, series: np.ndarray, train_end: int, horizon: int, stride: int = 1,
             season: int | None = None) -> Backtest:
    """Rolling-origin evaluation of ``forecaster`` and the baselines over ``series[train_end:]``."""
    x = np.asarray(series, dtype=np.float64)
    if horizon < 1:
        raise UsageError(f"horizon must be >= 1, got {horizon}")
    first = max(train_end, forecaster.config.window, season or 0)
    origins = np.arange(first, len(x) - horizon + 1, max(1, stride))
    if len(origins) == 0:
        raise DataError(f"the series has {len(x)} values: no origin after the training part ({train_end}) "
                        f"leaves a horizon of {horizon}; use a smaller --horizon or --n-train")
    actual = x[origins[:, None] + np.arange(horizon)]
    paths, notes = baseline_forecasts(x, origins, horizon, train_end, forecaster.config.tau, season)
    paths = {forecaster.config.model: forecaster.predict_paths(x, origins, horizon), **paths}
    return Backtest(horizon, origins, actual, paths, naive_scale(x[:train_end], season), notes)
