"""Section 8.1, sequence models: the noisy sine, the tau = 4 MLP, k-step predictions.

The book trains an MLP on ``x_t = sin(0.01 t) + noise`` for 5 epochs, prints the
training loss (about 0.05 after 5 epochs) and shows one-step and k-step predictions
(k = 1, 4, 16, 64) degrading with k. The book does not score the held-out part; here
the rolling-origin backtest of :mod:`rnnlab.forecasting` gives the error by horizon
against the naive and AR(tau) baselines.
"""
from __future__ import annotations

from rnnlab.forecasting.models import ForecastConfig
from rnnlab.forecasting.report import BOOK_K, run_forecast
from rnnlab.forecasting.series import load_series
from rnnlab.reproduce.common import Context, Row, SectionResult, within

KEY, TITLE = "8.1", "Sequence models (noisy sine, tau = 4 MLP)"
BOOK_FINAL_LOSS = 0.05   # "about 0.05" after 5 epochs
LOSS_TOLERANCE = 0.01
FIGURE = "sine.png"


def run(context: Context) -> SectionResult:
    result = SectionResult(KEY, TITLE)
    series = load_series("sine", seed=context.seed)
    # The book's settings; --quick changes nothing here (it takes about a second).
    config = ForecastConfig(model="mlp", tau=4, hidden=10, epochs=5, lr=0.01, batch_size=16, seed=context.seed)
    forecast = run_forecast(series, config, horizon=64, plot=str(context.figure(FIGURE)))
    losses = forecast["train_loss"]
    mae = forecast["mae_by_horizon"]
    naive = forecast["baselines"]["naive"]["mae_by_horizon"]
    ar = forecast["baselines"]["ar"]["mae_by_horizon"]
    result.rows.append(within(
        "training loss (MSE) after 5 epochs", BOOK_FINAL_LOSS, losses[-1], LOSS_TOLERANCE,
        why_if_not="the noise draw differs (rnnlab seeds a NumPy generator, the book torch.normal)",
        held_out=f"backtest MAE at h=1: {mae[0]:.4f} (naive {naive[0]:.4f}, AR(4) {ar[0]:.4f})"))
    result.rows.append(Row("training loss by epoch", "printed per epoch, about 0.05 at the end",
                           ", ".join(f"{v:.4f}" for v in losses)))
    for k in BOOK_K:
        result.rows.append(Row(
            f"{k}-step-ahead prediction", "figure only: good for k = 1, 4, degrades for 16, 64",
            f"see {FIGURE}", held_out=f"MAE {mae[k - 1]:.4f} (naive {naive[k - 1]:.4f}, AR(4) {ar[k - 1]:.4f})"))
    beats_naive = [h for h in range(1, len(mae) + 1) if mae[h - 1] < naive[h - 1]]
    last_win = max((h for h in beats_naive if all(x in beats_naive for x in range(1, h + 1))), default=0)
    result.rows.append(Row("horizons where the MLP beats the naive forecast", "not shown",
                           f"h = 1..{last_win}" if last_win else "none",
                           held_out=f"AR(4) beats naive at {sum(a < n for a, n in zip(ar, naive))} of {len(ar)}"))
    result.figures.append(FIGURE)
    result.details = {"train_loss": losses, "mae_by_horizon": mae, "mase": forecast["mase"],
                      "baselines": forecast["baselines"], "origins": forecast["origins"],
                      "train_end": forecast["train_end"], "notes": forecast["notes"]}
    return result
