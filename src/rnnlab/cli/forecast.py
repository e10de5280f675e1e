"""``rnnlab forecast``: train a forecaster and backtest it (see rnnlab.forecasting)."""
from __future__ import annotations

from rnnlab.checkpoint import prepare_output_folder
from rnnlab.cli.common import add_overwrite_option, emit, output_file

SHOWN_HORIZONS = (1, 4, 16, 64)


def cmd_forecast(args) -> int:
    from rnnlab.forecasting.models import ForecastConfig  # lazy: keeps rnnlab --help from loading rnnlab.forecasting
    from rnnlab.forecasting.report import run_forecast  # lazy: keeps rnnlab --help from loading rnnlab.forecasting
    from rnnlab.forecasting.series import load_series  # lazy: keeps rnnlab --help from loading rnnlab.forecasting

    if args.plot is not None:
        output_file(args.plot, "--plot", args.overwrite, figure=True)
    if args.out is not None:
        prepare_output_folder(args.out, "forecaster", overwrite=args.overwrite)
    series = load_series(args.series, fill=args.fill, seed=args.seed)
    hidden = args.hidden if args.hidden is not None else (10 if args.model in ("linear", "mlp") else 32)
    config = ForecastConfig(model=args.model, tau=args.tau, hidden=hidden, context=args.context, epochs=args.epochs,
                            lr=args.lr, batch_size=args.batch_size, train_horizon=args.train_horizon, seed=args.seed)
    result = run_forecast(series, config, horizon=args.horizon, n_train=args.n_train, stride=args.stride,
                          season=args.season, plot=args.plot, out=args.out)
    if not args.json:
        losses = ", ".join(f"{v:.4f}" for v in result["train_loss"])
        print(f"series {result['series']} ({result['length']} values); {result['model']} with tau={result['tau']}, "
              f"trained on t <= {result['train_end']} ({result['n_train']} AR windows), train horizon "
              f"{result['train_horizon']}")
        print(f"training loss (MSE) by epoch: {losses}")
        print(f"backtest: {result['origins']} origins after t = {result['train_end']}, h = 1..{result['horizon']}; "
              "MAE by horizon (* = beats naive)")
        methods = {result["model"]: result["mae_by_horizon"],
                   **{b: v["mae_by_horizon"] for b, v in result["baselines"].items()}}
        mase = {result["model"]: result["mase"], **{b: v["mase"] for b, v in result["baselines"].items()}}
        naive = methods["naive"]
        shown = sorted({h for h in SHOWN_HORIZONS if h <= result["horizon"]} | {result["horizon"]})
        print(f"{'h':>5} " + " ".join(f"{m:>10}" for m in methods))
        for h in shown:
            cells = []
            for name, mae in methods.items():
                mark = "*" if name != "naive" and mae[h - 1] < naive[h - 1] else " "
                cells.append(f"{mae[h - 1]:>9.4f}{mark}")
            print(f"{h:>5} " + " ".join(cells))
        print(f"{'MASE':>5} " + " ".join(f"{mase[m]:>10.4f}" for m in methods))
        for note in result["notes"].values():
            print(f"note: {note}")
        if result.get("plot"):
            print(f"figure: {result['plot']}")
    emit(result, args.json)
    return 0


def add_parser(commands) -> None:
    """Register ``rnnlab forecast`` on the main parser's subparsers."""
    fc = commands.add_parser("forecast", help="train a forecaster and backtest it against baselines by horizon")
    fc.add_argument("--series", default="sine", help="sine, sunspots, nile, co2, FILE.csv:COLUMN or a one-column file")
    fc.add_argument("--model", default="mlp", help="linear, mlp, rnn, gru, lstm (default mlp)")
    fc.add_argument("--tau", type=int, default=4, help="values an AR model reads (default 4)")
    fc.add_argument("--horizon", type=int, default=64, help="forecast steps H to evaluate (default 64)")
    fc.add_argument("--train-horizon", type=int, default=1, help="unroll training for this many steps (default 1)")
    fc.add_argument("--n-train", type=int, default=None, help="training AR windows: the first n-train + tau values train (default 600 for sine, else 75%% of the series)")
    fc.add_argument("--hidden", type=int, default=None, help="hidden units (default 10 for mlp, 32 for RNNs)")
    fc.add_argument("--context", type=int, default=None, help="RNN warm-up values (default max(16, 4 tau))")
    fc.add_argument("--epochs", type=int, default=5)
    fc.add_argument("--lr", type=float, default=0.01)
    fc.add_argument("--batch-size", type=int, default=16)
    fc.add_argument("--season", type=int, default=None, help="season length m for the seasonal-naive baseline")
    fc.add_argument("--stride", type=int, default=1, help="distance between backtest origins (default 1)")
    fc.add_argument("--fill", default=None, help="missing values: interpolate or drop (default: error)")
    fc.add_argument("--seed", type=int, default=0)
    fc.add_argument("--plot", default=None, metavar="FILE.png", help="write the figures")
    fc.add_argument("--out", default=None, metavar="DIR", help="save the forecaster (safetensors + JSON)")
    add_overwrite_option(fc, "an existing --plot file and the forecaster in --out")
    fc.add_argument("--json", action="store_true")
    fc.set_defaults(handler=cmd_forecast)
