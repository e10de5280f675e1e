"""One training step of a recurrent language model, several ways, and what it costs.

A training step, the same for every candidate::

    logits = forward(X)                 X (batch, steps) int64 -> (batch * steps, vocab);
                                        under rnnlab.precision.autocast for bf16 rows
    loss   = cross_entropy(float32(logits), Y)      always in float32
    zero_grad; loss.backward(); clip_grad_norm_(parameters, 1); optimizer.step()

with SGD (lr 1, the book's) for tanh-RNN rows and Adam (lr 2e-3) for GRU/LSTM rows;
the state starts at zero every step. tokens/s = batch * steps / seconds per step.

Candidates:

* :func:`book_rnn` -- the d2l formulation written from its equations (d2l 8.5)::

      H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h)      X_t = one_hot(tokens_t)  (batch, vocab)
      O_t = H_t W_hq + b_q

  a Python loop over the steps, three products per step, autograd for the backward;
* :func:`torch_model` -- ``torch.nn.RNN|GRU|LSTM`` (batch_first) + ``nn.Linear``, input
  either ``one_hot(X)`` as float (``embed=0``) or an ``nn.Embedding(vocab, embed)``;
* :func:`rnnlab_model` -- rnnlab's own model, only through ``build_model(...)``, the
  ``model(X, model.begin_state(batch))`` interface and ``rnnlab.precision.autocast``,
  so whatever the model does inside (hand-written backward, bfloat16 products) is
  what gets measured.

Cost model (:class:`Shape`). With vocabulary V, hidden size H, embedding E (0 =
one-hot), L layers, batch B, T steps and G gate blocks (tanh RNN 1, GRU 3, LSTM 4),
the matrix products of one forward pass are, per step::

    input      (B, E) x (E, G H)    layer 1, only when E > 0 (one-hot input is a row lookup: no product)
               (B, H) x (H, G H)    layers 2..L
    recurrence (B, H) x (H, G H)    every layer
    output     (B, H) x (H, V)

each costing 2 M K N floating-point operations for (M, K) x (K, N); the backward
pass computes two products of the same size per forward product (gradient with
respect to each operand), so::

    training FLOPs = 3 * T * 2 B [ E G H + (L - 1) H G H + L H G H + H V ]

    tanh RNN, one-hot, 1 layer:    6 T B (H^2 + H V)
    GRU:                            6 T B [ 3 E H + (2 L - 1) 3 H^2 + H V ]
    LSTM:                           6 T B [ 4 E H + (2 L - 1) 4 H^2 + H V ]

Elementwise work (gates, tanh, softmax) is not counted: for H >= 256 it is a few
percent of the products. The book's formulation also multiplies the one-hot
matrix (2 B V H more per step, 5% at V 28, H 512); that work is avoidable, so it is
not part of the cost.

Memory kept for the backward pass (:meth:`Shape.kept_floats_per_token`), per token,
float32: the log-softmax of the output (V) and per layer what the cell's backward
reads::

    tanh RNN   H      h_t (tanh' = 1 - h_t^2; h_{t-1} is the previous step's h)
    GRU        5 H    r, z, n, h_t, and h_{t-1} W_hn + b_hn (inside r * (...))
    LSTM       7 H    i, f, g, o, c_t, tanh(c_t), h_t

plus the embedding output (E) when there is one, and with dropout p > 0 a dropped
copy of each dropped tensor (the embedding, between layers and before the output:
E + L H). Bytes = 4 * B * T * floats per token. This is what a careful hand-written
backward needs; autograd through per-step operations keeps more.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.errors import UsageError
from rnnlab.models import MODELS, build_model
from rnnlab.models.recurrent import CELLS
from rnnlab.precision import autocast

DEVICE = "cpu"
GATES = {name: MODELS[name].gates for name in ("rnn", "gru", "lstm")}  # the registry's
KEPT_PER_LAYER = {"rnn": 1, "gru": 5, "lstm": 7}  # floats per token per layer, in units of H
CLIP_NORM = 1.0
SGD_LR = 1.0  # the book's learning rate for its tanh RNN
ADAM_LR = 2e-3


@dataclass(frozen=True)
class Product:
    """``count`` products (rows, inner) x (inner, cols) in one forward pass."""

    rows: int
    inner: int
    cols: int
    count: int

    @property
    def flops(self) -> float:
        return 2.0 * self.rows * self.inner * self.cols * self.count


@dataclass(frozen=True)
class Shape:
    """The sizes that fix a training step's cost (see the module docstring)."""

    cell: str
    vocab: int
    hidden: int
    batch: int
    steps: int
    embed: int = 0
    layers: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.cell not in GATES:
            raise UsageError(f"unknown cell '{self.cell}'; choose one of {', '.join(GATES)}")

    @property
    def tokens(self) -> int:
        return self.batch * self.steps

    def label(self) -> str:
        parts = [f"{self.cell}", f"V={self.vocab}", f"H={self.hidden}"]
        if self.layers > 1:
            parts.append(f"L={self.layers}")
        parts.append(f"E={self.embed}" if self.embed else "one-hot")
        if self.dropout:
            parts.append(f"dropout={self.dropout:g}")
        parts += [f"B={self.batch}", f"T={self.steps}"]
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {"cell": self.cell, "vocab": self.vocab, "hidden": self.hidden, "batch": self.batch,
                "steps": self.steps, "embed": self.embed, "layers": self.layers, "dropout": self.dropout}

    def products(self) -> list[Product]:
        """The forward pass's matrix products (the module docstring's table)."""
        B, H, T, width = self.batch, self.hidden, self.steps, GATES[self.cell] * self.hidden
        products = []
        for layer in range(self.layers):
            inner = self.embed if layer == 0 else H
            if inner:
                products.append(Product(B, inner, width, T))
            products.append(Product(B, H, width, T))
        products.append(Product(B, H, self.vocab, T))
        return products

    def training_flops(self) -> float:
        """Forward products plus a backward of twice their cost."""
        return 3.0 * sum(p.flops for p in self.products())

    def kept_floats_per_token(self) -> int:
        floats = self.vocab + self.layers * KEPT_PER_LAYER[self.cell] * self.hidden + self.embed
        if self.dropout > 0:
            floats += self.embed + self.layers * self.hidden
        return floats

    def kept_bytes(self) -> int:
        return 4 * self.tokens * self.kept_floats_per_token()


class TrainingStep:
    """One training step (module docstring) as a callable; keeps its optimizer for inspection."""

    def __init__(self, forward: Callable[[], torch.Tensor], targets: torch.Tensor, parameters: list,
                 optimizer: str, precision: str = "fp32") -> None:
        self.forward, self.targets, self.precision = forward, targets, precision
        self.parameters = [p for p in parameters if p.requires_grad]
        self._autocast = lambda: autocast(DEVICE, precision)
        if optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.parameters, lr=SGD_LR)
        elif optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.parameters, lr=ADAM_LR)
        else:
            raise UsageError(f"unknown optimizer '{optimizer}' (sgd or adam)")

    def __call__(self) -> None:
        with self._autocast():
            logits = self.forward()
        loss = F.cross_entropy(logits.float(), self.targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, CLIP_NORM)
        self.optimizer.step()


def random_batch(shape: Shape, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``X`` and targets ``Y``, both (batch, steps), uniform over the vocabulary."""
    generator = torch.Generator().manual_seed(seed)
    X = torch.randint(0, shape.vocab, (shape.batch, shape.steps), generator=generator)
    Y = torch.randint(0, shape.vocab, (shape.batch, shape.steps), generator=generator)
    return X, Y


def book_rnn(shape: Shape, seed: int = 0) -> TrainingStep:
    """(a) the book's tanh RNN from its equations: one-hot products, Python loop, autograd."""
    if shape.cell != "rnn" or shape.embed or shape.layers != 1:
        raise UsageError("the book's formulation is a one-layer tanh RNN with one-hot input")
    V, H = shape.vocab, shape.hidden
    generator = torch.Generator().manual_seed(seed)

    def normal(*size):
        return (torch.randn(*size, generator=generator) * 0.01).requires_grad_()

    W_xh, W_hh, b_h = normal(V, H), normal(H, H), torch.zeros(H, requires_grad=True)
    W_hq, b_q = normal(H, V), torch.zeros(V, requires_grad=True)
    X, Y = random_batch(shape, seed)

    def forward() -> torch.Tensor:
        state = torch.zeros(shape.batch, H)
        outputs = []
        for x in F.one_hot(X.T, V).float():  # (batch, vocab) per step, time-major like the book
            state = torch.tanh(x @ W_xh + state @ W_hh + b_h)
            outputs.append(state @ W_hq + b_q)
        return torch.cat(outputs)  # (steps * batch, vocab)

    return TrainingStep(forward, Y.T.reshape(-1), [W_xh, W_hh, b_h, W_hq, b_q], "sgd")


class TorchLM(nn.Module):
    """``torch.nn`` baseline: one-hot or embedding -> dropout -> RNN/GRU/LSTM -> dropout -> Linear."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape
        input_size = shape.embed or shape.vocab
        self.embedding = nn.Embedding(shape.vocab, shape.embed) if shape.embed else None
        layer = CELLS[shape.cell]
        self.rnn = layer(input_size, shape.hidden, num_layers=shape.layers, batch_first=True,
                         dropout=shape.dropout if shape.layers > 1 else 0.0)
        self.drop = nn.Dropout(shape.dropout)
        self.output = nn.Linear(shape.hidden, shape.vocab)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        s = self.shape
        if self.embedding is None:
            inputs = F.one_hot(X, s.vocab).float()  # (batch, steps, vocab)
        else:
            inputs = self.drop(self.embedding(X))  # (batch, steps, embed)
        zeros = torch.zeros(s.layers, s.batch, s.hidden)
        state = (zeros, zeros.clone()) if s.cell == "lstm" else zeros
        hidden, _ = self.rnn(inputs, state)  # (batch, steps, hidden)
        return self.output(self.drop(hidden)).reshape(-1, s.vocab)


def torch_model(shape: Shape, seed: int = 0, optimizer: str | None = None) -> TrainingStep:
    """(b)/(c) and the GRU/LSTM baselines: ``torch.nn`` layers in float32."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TorchLM(shape)
    X, Y = random_batch(shape, seed)
    return TrainingStep(lambda: model(X), Y.reshape(-1), list(model.parameters()),
                        optimizer or ("sgd" if shape.cell == "rnn" else "adam"))


def rnnlab_model(name: str, shape: Shape, precision: str = "fp32", seed: int = 0,
                 options: dict | None = None, optimizer: str | None = None) -> TrainingStep:
    """rnnlab's ``name`` model, built by ``build_model`` with ``options`` (default: from ``shape``)."""
    if options is None:
        options = {"hidden_size": shape.hidden}
        if name != "rnn-scratch":
            options.update(num_layers=shape.layers, embed_size=shape.embed, dropout=shape.dropout)
    model = build_model(name, shape.vocab, seed=seed, **options)
    model.train()
    X, Y = random_batch(shape, seed)

    def forward() -> torch.Tensor:
        logits, _ = model(X, model.begin_state(shape.batch))  # (batch, steps, vocab)
        return logits.reshape(-1, shape.vocab)

    optimizer = optimizer or ("sgd" if shape.cell == "rnn" else "adam")
    return TrainingStep(forward, Y.reshape(-1), list(model.parameters()), optimizer, precision)
