"""One forecasting run as the CLI shows it: fit, backtest, the book's k-step curves, figure."""
from __future__ import annotations

import numpy as np

from rnnlab.errors import DataError, UsageError
from rnnlab.forecasting.evaluate import backtest
from rnnlab.forecasting.models import ForecastConfig, Forecaster
from rnnlab.forecasting.series import Series
from rnnlab.plots import forecast_figure

BOOK_K = (1, 4, 16, 64)


def default_n_train(series: Series, tau: int) -> int:
    """The book's 600 windows for its sine; otherwise the first 75% of the series is training."""
    return 600 if series.name == "sine" and len(series) == 1000 else max(1, int(0.75 * len(series)) - tau)


def run_forecast(series: Series, config: ForecastConfig, horizon: int = 64, n_train: int | None = None,
                 stride: int = 1, season: int | None = None, plot: str | None = None, out: str | None = None) -> dict:
    """Fit on ``series[:n_train + tau]`` (the first ``n_train`` AR windows), backtest on the rest.

    The split depends on ``tau`` only, so every model with the same ``tau`` is scored on
    the same origins. Returns the ``--json`` dict.
    """
    config.validate()
    x = series.values
    window = config.window
    n_train = default_n_train(series, config.tau) if n_train is None else n_train
    if n_train < 1:
        raise UsageError(f"n-train must be >= 1, got {n_train}")
    if stride < 1:
        raise UsageError(f"stride must be >= 1, got {stride}")
    if season is not None and season < 1:  # a period of 0 or less would read values after the origin
        raise UsageError(f"season must be >= 1, got {season}")
    train_end = n_train + config.tau
    if len(x) < window + horizon + 1 or train_end + horizon > len(x):
        raise DataError(f"series '{series.name}' has {len(x)} values: too short for a window of {window}, "
                        f"{n_train} training windows and a horizon of {horizon} (needs at least "
                        f"{max(window + horizon + 1, train_end + horizon)})")
    forecaster = Forecaster(config).fit(x[:train_end])
    result = backtest(forecaster, x, train_end, horizon, stride=stride, season=season)
    mae, rmse, mase = result.mae_by_horizon(), result.rmse_by_horizon(), result.mase()
    name = config.model
    summary = {
        "series": series.name, "length": len(x), "model": name, "tau": config.tau, "window": window,
        "train_horizon": config.train_horizon, "n_train": n_train, "train_end": train_end,
        "horizon": horizon, "origins": len(result.origins), "train_loss": forecaster.train_loss,
        "mae_by_horizon": mae[name], "rmse_by_horizon": rmse[name], "mase": mase[name],
        "baselines": {b: {"mae_by_horizon": mae[b], "rmse_by_horizon": rmse[b], "mase": mase[b]}
                      for b in mae if b != name},
        "notes": result.notes,
    }
    if out:
        forecaster.save(out)
        summary["out"] = out
    if plot:
        one_origins = np.arange(window, len(x))
        one = forecaster.predict_paths(x, one_origins, 1)[:, 0]
        multi = forecaster.predict(x, len(x) - train_end, origin=train_end)
        k_step = {}
        kmax = max(BOOK_K)
        k_origins = np.arange(window, len(x) - kmax + 1)
        if len(k_origins):
            paths = forecaster.predict_paths(x, k_origins, kmax)
            k_step = {k: (k_origins + k, paths[:, k - 1]) for k in BOOK_K}  # times are 1-based
        forecast_figure(x, train_end, (one_origins + 1, one), (np.arange(train_end, len(x)) + 1, multi), k_step,
                        mae, plot, title=f"{name} (tau={config.tau}) on {series.name}")
        summary["plot"] = plot
    return summary
