"""Forecasters: autoregressive AR(tau) and latent autoregressive (RNN/GRU/LSTM) models.

* ``linear`` and ``mlp`` read the last ``tau`` values: ``x_t ~ f(x_{t-tau}, ..., x_{t-1})``
  (the book's MLP: ``Linear(tau, 10) -> ReLU -> Linear(10, 1)``, Xavier init).
* ``rnn``, ``gru``, ``lstm`` keep a hidden state ``h_t = g(h_{t-1}, x_{t-1})`` that
  summarises the past (warmed up on the last ``context`` values) and predict
  ``x_t`` from it.

All of them are trained on windows of the training part only, on data standardised
with the training part's mean and standard deviation. ``train_horizon = H > 1``
unrolls the model on its own predictions for H steps during training, so the trained
objective matches the k-step use. Forecasts are recursive: a forecast from
``origin`` reads ``series[:origin]`` and nothing after it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnlab import checks
from rnnlab.checkpoint import (check_tensors, config_error, config_value, is_int, is_number, load_config, load_tensors,
                               save_checkpoint)
from rnnlab.errors import CheckpointError, DataError, RnnlabError, UsageError
from rnnlab.models.recurrent import CELLS

FORECASTERS = ("linear", "mlp", "rnn", "gru", "lstm")
MAX_WINDOW = 1 << 16  # limits on a saved forecaster's sizes, far above any useful one


@dataclass
class ForecastConfig:
    model: str = "mlp"
    tau: int = 4                 # AR order: values the model reads (latent models: see context)
    hidden: int = 10             # MLP hidden units (the book's 10) or RNN state size
    context: int | None = None   # latent models: values used to warm up the state (default max(16, 4 tau))
    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 16
    train_horizon: int = 1
    seed: int = 0

    def validate(self) -> "ForecastConfig":
        if not isinstance(self.model, str) or self.model not in FORECASTERS:
            raise UsageError(f"unknown forecaster {self.model!r:.40}; choose one of {', '.join(FORECASTERS)}")
        if isinstance(self.tau, bool) or not isinstance(self.tau, int) or self.tau < 1:
            raise UsageError(f"tau must be an integer >= 1, got {self.tau!r:.40}")
        for key in ("hidden", "epochs", "batch_size", "train_horizon"):
            checks.integer(getattr(self, key), key.replace('_', '-'), 1)
        if self.context is not None:
            checks.integer(self.context, "context", 1)
        for key in ("tau", "hidden", "context"):  # the bounds Forecaster.load holds a saved one to
            if getattr(self, key) is not None and getattr(self, key) > MAX_WINDOW:
                raise UsageError(f"{key} must be at most {MAX_WINDOW:,}, got {getattr(self, key)}")
        checks.number(self.lr, "lr", 0, low_open=True)
        checks.seed_value(self.seed)
        return self

    @property
    def window(self) -> int:
        """Values a forecast reads before its origin."""
        if self.model in CELLS:
            return self.context or max(16, 4 * self.tau)
        return self.tau


class _AutoRegressive(nn.Module):
    """``(batch, tau) -> (batch,)``."""

    def __init__(self, model: str, tau: int, hidden: int) -> None:
        super().__init__()
        if model == "linear":
            self.net = nn.Linear(tau, 1)
        else:
            self.net = nn.Sequential(nn.Linear(tau, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        for layer in self.net.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.net(window).squeeze(-1)

    def rollout(self, window: torch.Tensor, steps: int) -> torch.Tensor:
        """Recursive forecast ``(batch, steps)``: each prediction enters the window."""
        outputs = []
        for _ in range(steps):
            prediction = self(window)
            outputs.append(prediction)
            window = torch.cat([window[:, 1:], prediction.unsqueeze(1)], dim=1)
        return torch.stack(outputs, dim=1)


class _Latent(nn.Module):
    """Recurrent state over the values, a linear read-out of the next value."""

    def __init__(self, model: str, hidden: int) -> None:
        super().__init__()
        self.rnn = CELLS[model](1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def rollout(self, context: torch.Tensor, steps: int) -> torch.Tensor:
        """Warm up on ``context`` ``(batch, W)``, then feed predictions back: ``(batch, steps)``."""
        hidden, state = self.rnn(context.unsqueeze(-1))
        prediction = self.head(hidden[:, -1]).squeeze(-1)
        outputs = [prediction]
        for _ in range(steps - 1):
            hidden, state = self.rnn(prediction.view(-1, 1, 1), state)
            prediction = self.head(hidden[:, -1]).squeeze(-1)
            outputs.append(prediction)
        return torch.stack(outputs, dim=1)


@dataclass
class Forecaster:
    """Fit on a training series, forecast recursively from any origin.

    >>> f = Forecaster(ForecastConfig(model="mlp", tau=4)).fit(train_values)   # doctest: +SKIP
    >>> f.predict(series, steps=16, origin=700)                                # doctest: +SKIP
    """

    config: ForecastConfig = field(default_factory=ForecastConfig)
    mean: float = 0.0
    std: float = 1.0
    train_loss: list[float] = field(default_factory=list)  # mean squared error per epoch, original units

    def __post_init__(self) -> None:
        self.config.validate()
        generator = torch.Generator().manual_seed(self.config.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            self.net = (_Latent(self.config.model, self.config.hidden) if self.config.model in CELLS
                        else _AutoRegressive(self.config.model, self.config.tau, self.config.hidden))
        self.net = self.net.double()

    # ---- training ----------------------------------------------------------------
    def _windows(self, values: np.ndarray, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``(n, window)`` and targets ``(n, horizon)`` of every complete window."""
        width = self.config.window
        count = len(values) - width - horizon + 1
        if count < 1:
            raise DataError(f"the training part has {len(values)} values, fewer than one window needs "
                            f"(window {width} + horizon {horizon}); use a longer series or a smaller --tau")
        index = np.arange(count)[:, None]
        inputs = values[index + np.arange(width)]
        targets = values[index + width + np.arange(horizon)]
        return torch.from_numpy(inputs), torch.from_numpy(targets)

    def fit(self, train_values: np.ndarray) -> "Forecaster":
        """Train on ``train_values`` (1-D, original units); standardisation is fitted here."""
        values = checks.series(train_values, "train_values")
        if not np.isfinite(values).all():
            raise DataError("the training series has missing or infinite values; use --fill")
        self.mean = float(values.mean())
        self.std = float(values.std()) or 1.0
        scaled = (values - self.mean) / self.std
        cfg = self.config
        inputs, targets = self._windows(scaled, cfg.train_horizon)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        generator = torch.Generator().manual_seed(cfg.seed)
        self.train_loss = []
        self.net.train()
        for _ in range(cfg.epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(inputs), cfg.batch_size):
                batch = order[start:start + cfg.batch_size]
                prediction = self.net.rollout(inputs[batch], cfg.train_horizon)
                loss = ((prediction - targets[batch]) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():  # the book reports the loss over the whole training set
                prediction = self.net.rollout(inputs, cfg.train_horizon)[:, 0]
                self.train_loss.append(float(((prediction - targets[:, 0]) ** 2).mean()) * self.std ** 2)
        self.net.eval()
        return self

    # ---- forecasting -------------------------------------------------------------
    @torch.no_grad()
    def predict_paths(self, series: np.ndarray, origins, steps: int) -> np.ndarray:
        """``(len(origins), steps)``: the forecast of ``series[o:o+steps]`` from each origin ``o``,
        made from ``series[o - window:o]`` only."""
        series = checks.series(series)
        origins = np.asarray([checks.integer(o, "origin", 0, len(series)) for o in np.asarray(origins).reshape(-1)],
                             dtype=np.int64)
        steps = checks.integer(steps, "steps", 1)
        width = self.config.window
        if len(origins) and origins.min() < width:
            raise UsageError(f"a forecast needs {width} values before its origin; the earliest origin is "
                             f"{int(origins.min())}")
        if steps < 1:
            raise UsageError(f"steps must be >= 1, got {steps}")
        values = (np.asarray(series, dtype=np.float64) - self.mean) / self.std
        histories = np.stack([values[o - width:o] for o in origins]) if len(origins) else np.zeros((0, width))
        paths = self.net.rollout(torch.from_numpy(histories), steps).numpy()
        return paths * self.std + self.mean

    def predict(self, series: np.ndarray, steps: int = 1, origin: int | None = None) -> np.ndarray:
        """``(steps,)`` recursive forecast after ``series[:origin]`` (default: its end)."""
        series = checks.series(series)
        origin = len(series) if origin is None else checks.integer(origin, "origin", 0, len(series))
        return self.predict_paths(series[:origin], [origin], steps)[0]

    # ---- persistence -------------------------------------------------------------
    def save(self, folder) -> None:
        save_checkpoint(folder, {"config": asdict(self.config), "mean": self.mean, "std": self.std,
                                 "train_loss": self.train_loss}, self.net.state_dict(), kind="forecaster")

    @classmethod
    def load(cls, folder) -> "Forecaster":
        """A forecaster saved by :meth:`save`; every value of ``config.json`` and every tensor
        is checked first (:class:`CheckpointError` naming the file and the key)."""
        saved = load_config(folder, kind="forecaster")
        config_value(saved, "config", folder, lambda v: isinstance(v, dict), "a JSON object")
        unknown = sorted(set(saved["config"]) - {f.name for f in fields(ForecastConfig)})
        if unknown:
            raise config_error(folder, f"config.{unknown[0]}", "is not a forecaster option")
        checks = {"model": (lambda v: v in FORECASTERS, f"one of {', '.join(FORECASTERS)}"),
                  "tau": (is_int(1, MAX_WINDOW), f"an integer from 1 to {MAX_WINDOW}"),
                  "hidden": (is_int(1, MAX_WINDOW), f"an integer from 1 to {MAX_WINDOW}"),
                  "context": (lambda v: v is None or is_int(1, MAX_WINDOW)(v), f"null or an integer from 1 to "
                              f"{MAX_WINDOW}"),
                  "epochs": (is_int(1), "an integer >= 1"), "batch_size": (is_int(1), "an integer >= 1"),
                  "train_horizon": (is_int(1), "an integer >= 1"), "lr": (is_number(0), "a finite number > 0"),
                  "seed": (is_int(0, 2**63 - 1), "an integer from 0 to 2**63 - 1")}
        options = {key: config_value(saved, f"config.{key}", folder, *check)
                   for key, check in checks.items() if key in saved["config"] or key == "model"}
        mean = config_value(saved, "mean", folder, is_number(), "a finite number")
        std = config_value(saved, "std", folder, is_number(0), "a finite number > 0")
        if std == 0:
            raise config_error(folder, "std", "must be a finite number > 0, got 0")
        losses = config_value(saved, "train_loss", folder, lambda v: isinstance(v, list)
                              and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
                              "a list of numbers", default=[])
        try:
            config = ForecastConfig(**options).validate()
            with torch.device("meta"):  # shapes only: no memory, whatever the sizes say
                net = (_Latent(config.model, config.hidden) if config.model in CELLS
                       else _AutoRegressive(config.model, config.tau, config.hidden))
                expected = net.double().state_dict()
        except RnnlabError as exc:
            raise config_error(folder, "config", f"describes no valid forecaster ({exc})") from None
        tensors = load_tensors(folder, "model", saved)
        check_tensors(Path(folder) / "model.safetensors", tensors, expected)
        for name, tensor in tensors.items():
            if not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(f"{Path(folder) / 'model.safetensors'}: tensor '{name}' holds NaN or "
                                      "infinite values")
        forecaster = cls(config, mean=float(mean), std=float(std), train_loss=list(losses))
        forecaster.net.load_state_dict(tensors)
        forecaster.net.eval()
        return forecaster
