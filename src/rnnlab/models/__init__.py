"""Model registry: every recurrent language model by name, its options and its memory.

One :class:`ModelKind` per model says everything the rest of rnnlab needs to know about
it: its name, the options its constructor takes (with their checks, used for API
arguments, command-line values and ``config.json`` alike), and the activations one
token keeps for the backward pass (the full-BPTT memory bound). Adding a model means
adding one entry here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from rnnlab.errors import UsageError
from rnnlab.models.base import MAX_LAYERS, MAX_SIZE, RecurrentLM, State, detach_state, map_state, scale_grad, token_loss
from rnnlab.models.parallel import ParallelRecurrentLM
from rnnlab.models.recurrent import TorchRecurrentLM
from rnnlab.models.scratch import ScratchRNN



@dataclass(frozen=True)
class ModelOption:
    """One constructor option: its kind (``int``, ``float``, ``bool`` or ``choice``) and range."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    high_open: bool = False  # ``high`` itself excluded

    def accepts(self, value) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        return (self.low is None or value >= self.low) and (
            self.high is None or value < self.high or (value == self.high and not self.high_open))

    def expected(self) -> str:
        """What a valid value is, for error messages."""
        if self.kind == "bool":
            return "True or False"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        if self.kind == "int":
            return f"an integer from {self.low} to {self.high}"
        return f"in [{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


_HIDDEN = ModelOption("hidden_size", "int", 1, MAX_SIZE)
_TORCH_OPTIONS = (_HIDDEN, ModelOption("num_layers", "int", 1, MAX_LAYERS), ModelOption("dropout", "float", 0, 1, high_open=True),
                  ModelOption("embed_size", "int", 0, MAX_SIZE), ModelOption("tie_weights", "bool"),
                  ModelOption("nonlinearity", "choice", choices=("tanh", "relu")))


_PARALLEL_OPTIONS = (_HIDDEN, ModelOption("num_layers", "int", 1, MAX_LAYERS),
                     ModelOption("dropout", "float", 0, 1, high_open=True), ModelOption("mlp_ratio", "float", 0, 64),
                     ModelOption("tie_weights", "bool"))


def _parallel(cell: str) -> Callable[..., RecurrentLM]:
    def build(vocab_size: int, **options) -> RecurrentLM:
        return ParallelRecurrentLM(vocab_size, cell=cell, **options)
    return build


def _scratch(vocab_size: int, **options) -> RecurrentLM:
    return ScratchRNN(vocab_size, **options)


def _torch_cell(cell: str) -> Callable[..., RecurrentLM]:
    def build(vocab_size: int, **options) -> RecurrentLM:
        return TorchRecurrentLM(vocab_size, cell=cell, **options)
    return build


@dataclass(frozen=True)
class ModelKind:
    """A model rnnlab can build: ``build(vocab_size, **options)`` and what it keeps per token.

    ``gates``: hidden-sized vectors per step and layer computed by the recurrence (1 for a
    tanh RNN, 3 for a GRU, 4 for an LSTM); with the state and its input this gives the
    activation memory of :meth:`activation_floats_per_token`.
    """

    name: str
    options: tuple[ModelOption, ...]
    gates: int
    build: Callable[..., RecurrentLM]

    def option(self, name: str) -> ModelOption | None:
        return next((o for o in self.options if o.name == name), None)

    def check(self, options: dict) -> None:
        """Refuse an unknown option or a value out of range (UsageError naming it)."""
        for key, value in options.items():
            spec = self.option(key)
            if spec is None:
                raise UsageError(f"{key!r} is not an option of the {self.name} model; its options: "
                                 f"{', '.join(o.name for o in self.options)}")
            if not spec.accepts(value):
                raise UsageError(f"{key} must be {spec.expected()}, got {value!r:.60}")

    def activation_floats_per_token(self, config: dict) -> int:
        """Floats one training token keeps for the backward pass: per layer about
        ``gates + 2`` hidden-sized vectors, plus the input and the logits with their softmax."""
        hidden = config.get("hidden_size", 0)
        layers = config.get("num_layers", 1)
        vocab = config.get("vocab_size", 0)
        embed = config.get("embed_size") or vocab
        return layers * hidden * (self.gates + 2) + embed + 2 * vocab


MODELS: dict[str, ModelKind] = {kind.name: kind for kind in (
    ModelKind("rnn-scratch", (_HIDDEN, ModelOption("init_std", "float", 0, 1e6)), 1, _scratch),
    ModelKind("rnn", _TORCH_OPTIONS, 1, _torch_cell("rnn")),
    ModelKind("gru", _TORCH_OPTIONS, 3, _torch_cell("gru")),
    ModelKind("lstm", _TORCH_OPTIONS, 4, _torch_cell("lstm")),
    # Per layer about (6 + 2r) D (minGRU) and (7 + 2r) D (minLSTM) floats: see models/parallel.py;
    # "gates" counts them for the default mlp_ratio 2 (r = 2), less the 2 the bound adds.
    ModelKind("mingru", _PARALLEL_OPTIONS, 8, _parallel("mingru")),
    ModelKind("minlstm", _PARALLEL_OPTIONS, 9, _parallel("minlstm")),
)}
MODEL_NAMES = tuple(MODELS)


def model_kind(name) -> ModelKind:
    if not isinstance(name, str) or name not in MODELS:
        raise UsageError(f"unknown model {name!r:.40}; choose one of {', '.join(MODEL_NAMES)}")
    return MODELS[name]


def build_model(model: str, vocab_size: int, seed: int | None = None, **kwargs) -> RecurrentLM:
    """Build ``model`` (one of :data:`MODEL_NAMES`) for ``vocab_size`` tokens.

    ``kwargs`` are the model's own options (``hidden_size``, ``num_layers``, ...),
    exactly the keys its ``config()`` returns besides ``model`` and ``vocab_size``; each
    is checked against the registry first (a UsageError naming it, never a torch error).
    ``seed`` makes the initial weights reproducible without touching torch's global
    random state.
    """
    kind = model_kind(model)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not 1 <= vocab_size < 2**31:
        raise UsageError(f"vocab_size must be an integer from 1 to 2**31 - 1, got {vocab_size!r:.40}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise UsageError(f"seed must be an integer from 0 to 2**63 - 1, got {seed!r:.40}")
    kind.check(kwargs)
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return kind.build(vocab_size, **kwargs)
    return kind.build(vocab_size, **kwargs)


def model_from_config(config: dict) -> RecurrentLM:
    config = dict(config)
    return build_model(config.pop("model"), config.pop("vocab_size"), **config)


__all__ = ["MAX_LAYERS", "MAX_SIZE", "MODELS", "MODEL_NAMES", "ModelKind", "ModelOption", "RecurrentLM", "State", "build_model",
           "model_kind", "model_from_config", "detach_state", "map_state", "scale_grad", "token_loss"]
