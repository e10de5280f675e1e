"""Forecasting: the book's data and numbers, no leakage, metrics by hand, save/load, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.errors import DataError
from rnnlab.forecasting.evaluate import Backtest, backtest, baseline_forecasts, naive_scale
from rnnlab.forecasting.models import ForecastConfig, Forecaster
from rnnlab.forecasting.report import run_forecast
from rnnlab.forecasting.series import load_series, sine_series


def test_sine_generator_is_the_books():
    s = sine_series(1000, seed=3).values
    time = np.arange(1, 1001)
    noise = s - np.sin(0.01 * time)
    assert s.shape == (1000,)
    assert np.allclose(noise, np.random.default_rng(3).normal(0.0, 0.2, 1000))
    assert abs(noise.std() - 0.2) < 0.02
    assert np.array_equal(sine_series(1000, seed=3).values, s)


@pytest.fixture(scope="module")
def book_run():
    return run_forecast(sine_series(), ForecastConfig(model="mlp", tau=4), horizon=64)


def test_book_mlp_reproduces_the_training_loss_and_error_growth(book_run):
    assert book_run["n_train"] == 600 and book_run["train_end"] == 604
    assert len(book_run["train_loss"]) == 5
    assert 0.04 < book_run["train_loss"][-1] < 0.07  # the book prints 0.0517
    mae = book_run["mae_by_horizon"]
    assert mae[63] > mae[15] > mae[0]
    assert set(book_run["baselines"]) >= {"naive", "drift", "mean", "ar"}


def test_k_step_predictions_decay_toward_a_constant():
    x = sine_series().values
    f = Forecaster(ForecastConfig(model="mlp", tau=4)).fit(x[:604])
    origins = np.arange(4, 900)
    paths = f.predict_paths(x, origins, 64)
    # Fed its own outputs, the MLP settles on a fixed level: 64-step predictions are piecewise
    # constant, while 1-step predictions follow the data.
    def steady(values):
        return float(np.mean(np.abs(np.diff(values)) < 0.02))

    assert steady(paths[:, 63]) > 0.9 > 0.5 > steady(paths[:, 0])
    far = f.predict(x, 300, origin=604)
    assert np.abs(np.diff(far[-50:])).max() < 1e-3  # the multi-step forecast has settled


@pytest.mark.parametrize("model", ["linear", "mlp", "gru", "lstm"])
def test_forecasts_never_read_values_after_the_origin(model):
    x = sine_series(300, seed=1).values
    config = ForecastConfig(model=model, tau=4, hidden=8, epochs=1)
    f = Forecaster(config).fit(x[:200])
    origin = 220
    poisoned = x.copy()
    poisoned[origin:] = np.nan  # any read of the future would spread NaN
    clean = f.predict(x, 10, origin=origin)
    dirty = f.predict_paths(poisoned, [origin], 10)[0]  # the full poisoned array, not a slice
    assert np.isfinite(dirty).all()
    assert np.array_equal(clean, dirty)
    base_clean, _ = baseline_forecasts(x, np.array([origin]), 10, 200, 4, season=12)
    base_dirty, _ = baseline_forecasts(poisoned, np.array([origin]), 10, 200, 4, season=12)
    for name in base_clean:
        assert np.array_equal(base_clean[name], base_dirty[name]), name


def test_baselines_and_metrics_by_hand():
    x = np.array([1.0, 2.0, 4.0, 7.0, 11.0, 16.0])
    origins = np.array([3, 4])
    paths, _ = baseline_forecasts(x, origins, 2, train_end=3, tau=1, season=2)
    assert np.array_equal(paths["naive"], [[4, 4], [7, 7]])
    assert np.allclose(paths["drift"], [[5.5, 7.0], [9.0, 11.0]])
    assert np.allclose(paths["mean"], [[7 / 3, 7 / 3], [3.5, 3.5]])
    assert np.array_equal(paths["seasonal"], [[2, 4], [4, 7]])
    actual = np.array([[7.0, 11.0], [11.0, 16.0]])
    result = Backtest(2, origins, actual, {"naive": paths["naive"]}, naive_scale(x[:3]))
    assert result.mae_by_horizon()["naive"] == [3.5, 8.0]
    assert np.allclose(result.rmse_by_horizon()["naive"], [np.sqrt(12.5), np.sqrt(65.0)])
    assert result.scale == 1.5
    assert result.mase()["naive"] == pytest.approx((3.5 + 8.0) / 2 / 1.5)


def test_ar_baseline_recovers_a_noiseless_ar_process():
    x = np.zeros(200)
    x[0], x[1] = 1.0, 0.5
    for t in range(2, 200):
        x[t] = 0.2 + 0.6 * x[t - 1] - 0.3 * x[t - 2]
    paths, _ = baseline_forecasts(x, np.array([150]), 10, train_end=150, tau=2)
    assert np.allclose(paths["ar"][0], x[150:160], atol=1e-6)


def test_multi_step_training_and_save_load_round_trip(tmp_path):
    x = sine_series(400, seed=2).values
    f = Forecaster(ForecastConfig(model="gru", tau=3, hidden=6, epochs=2, train_horizon=4)).fit(x[:300])
    f.save(tmp_path / "fc")
    g = Forecaster.load(tmp_path / "fc")
    assert g.config == f.config and g.mean == f.mean and g.std == f.std
    assert np.array_equal(f.predict(x, 12, origin=350), g.predict(x, 12, origin=350))
    result = backtest(g, x, 300, horizon=8, stride=7)
    assert len(result.mae_by_horizon()["gru"]) == 8


def test_csv_columns_missing_values_and_fill(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("date,value\n1,1.0\n2,\n3,3.0\n4,x\n5,5.0\n")
    with pytest.raises(DataError, match=r"row 3 \(2 in all\)"):
        load_series(f"{path}:value")
    assert load_series(f"{path}:value", fill="interpolate").values.tolist() == [1, 2, 3, 4, 5]
    assert load_series(f"{path}:value", fill="drop").values.tolist() == [1, 3, 5]
    one = tmp_path / "one.txt"
    one.write_text("1\n2\n3\n")
    assert load_series(str(one)).values.tolist() == [1, 2, 3]


def test_statsmodels_dataset():
    pytest.importorskip("statsmodels", reason="the sunspots data ships with statsmodels")
    s = load_series("sunspots")
    assert len(s) == 309 and np.isfinite(s.values).all()
    with pytest.raises(DataError, match="missing"):
        load_series("co2")  # has gaps: the user must choose a fill
    assert np.isfinite(load_series("co2", fill="interpolate").values).all()


@pytest.mark.parametrize("argv,code,message", [
    (["forecast", "--series", "sine", "--tau", "0"], 2, "tau must be an integer >= 1"),
    (["forecast", "--series", "moonspots"], 1, "neither a file nor a known name"),
    (["forecast", "--series", "sine", "--model", "arima"], 2, "unknown forecaster"),
    (["forecast", "--series", "sine", "--horizon", "990"], 1, "too short"),
])
def test_cli_bad_input_one_line(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_cli_short_series_and_non_numeric_column(tmp_path, capsys):
    path = tmp_path / "short.csv"
    path.write_text("v\n1\n2\n3\n4\n5\n")
    assert main(["forecast", "--series", str(path), "--tau", "4", "--horizon", "4"]) == 1
    assert "too short" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,x\n2,y\n")
    assert main(["forecast", "--series", f"{bad}:b"]) == 1
    assert "non-numeric" in capsys.readouterr().err


def test_cli_json_and_figure(tmp_path, capsys):
    plot = tmp_path / "f.png"
    assert main(["forecast", "--series", "sine", "--model", "linear", "--horizon", "16", "--stride", "5",
                 "--plot", str(plot), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"mae_by_horizon", "rmse_by_horizon", "mase", "baselines"} <= set(result)
    assert len(result["mae_by_horizon"]) == 16 and "naive" in result["baselines"]
    assert plot.read_bytes()[:4] == b"\x89PNG"
