"""RNN, GRU and LSTM language models on ``torch.nn`` recurrent layers.

Input is an embedding (``embed_size`` > 0) or one-hot vectors (``embed_size`` = 0,
the book's choice; implemented as a fixed identity embedding, which is the same
computation as ``one_hot(X) @ W`` without materialising the one-hot tensor).
The output projection can share the embedding matrix (``tie_weights``) when
``embed_size == hidden_size``.

Speed on a CPU: ``nn.LSTM`` runs in oneDNN's fused kernel (and in bfloat16 under
:func:`rnnlab.precision.autocast`); ``nn.GRU`` has no such kernel, so a GRU runs on
the hand-written layer of :mod:`rnnlab.models.fused` (same parameters, same
function; ``model.fused = False`` selects ``nn.GRU`` itself). Randomized BPTT is
built into that layer; the other cells unroll step by step for it.
"""
from __future__ import annotations

import torch
from torch import nn

from rnnlab.errors import UsageError
from rnnlab.models.base import RecurrentLM, State, check_positive, scale_grad
from rnnlab.models.dropout import Dropout, dropout as drop_elements
from rnnlab.models.fused import gru_forward, supports_fused_gru

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}  # the torch cells; the tasks and forecasters use them too


class TorchRecurrentLM(RecurrentLM):
    """``embedding -> nn.RNN|GRU|LSTM (batch_first) -> dropout -> linear`` over the vocabulary."""

    def __init__(self, vocab_size: int, cell: str = "lstm", hidden_size: int = 256, num_layers: int = 1,
                 dropout: float = 0.0, embed_size: int = 0, tie_weights: bool = False,
                 nonlinearity: str = "tanh") -> None:
        super().__init__(vocab_size)
        if cell not in CELLS:
            raise UsageError(f"unknown recurrent cell '{cell}'; choose one of {', '.join(CELLS)}")
        check_positive(vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers)
        if embed_size < 0:
            raise UsageError(f"embed_size must be >= 0 (0 = one-hot), got {embed_size}")
        if not 0.0 <= dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {dropout}")
        if nonlinearity not in ("tanh", "relu"):
            raise UsageError(f"nonlinearity must be tanh or relu, got '{nonlinearity}'")
        if nonlinearity != "tanh" and cell != "rnn":
            raise UsageError("nonlinearity applies to --model rnn only")
        self.name = cell
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.dropout_p, self.embed_size, self.nonlinearity = dropout, embed_size, nonlinearity
        input_size = embed_size or vocab_size
        self.embedding = nn.Embedding(vocab_size, input_size)
        if embed_size == 0:
            with torch.no_grad():
                self.embedding.weight.copy_(torch.eye(vocab_size))
            self.embedding.weight.requires_grad_(False)
        extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        self.rnn = CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True,
                               dropout=dropout if num_layers > 1 else 0.0, **extra)
        self.drop = Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)
        # The hand-written GRU layer (rnnlab.models.fused) replaces nn.GRU's CPU loop; it
        # uses nn.GRU's own parameters, so this switch never changes a checkpoint.
        self.fused = True
        self.tie_weights = bool(tie_weights)
        if self.tie_weights:
            if embed_size != hidden_size:
                raise UsageError(f"weight tying needs embed_size == hidden_size, got {embed_size} and {hidden_size}")
            self.output.weight = self.embedding.weight

    def begin_state(self, batch_size: int, device=None) -> State:
        device = device if device is not None else self.output.weight.device
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device)
        return (zeros, zeros.clone()) if self.cell == "lstm" else zeros

    def forward(self, X: torch.Tensor, state: State, grad_scale: torch.Tensor | None = None):
        embedded = self.drop(self.embedding(X)) if self.embed_size else self.embedding(X)  # (batch, steps, input)
        if self.cell == "gru" and self.fused and supports_fused_gru(self.rnn, embedded.device):
            hidden, state = gru_forward(self.rnn, embedded, state, grad_scale)  # same function, faster on a CPU
        elif grad_scale is None and self._drops_between_layers(embedded):
            hidden, state = self._layer_by_layer(embedded, state)
        elif grad_scale is None:
            hidden, state = self.rnn(embedded, state)  # (batch, steps, hidden)
        else:
            # Randomized truncation needs a hook between every two steps, so unroll.
            outputs = []
            for t in range(X.shape[1]):
                state = scale_grad(state, grad_scale[t])
                out, state = self.rnn(embedded[:, t:t + 1], state)
                outputs.append(out)
            hidden = torch.cat(outputs, dim=1)
        return self.output(self.drop(hidden)), state  # (batch, steps, vocab)

    def _drops_between_layers(self, embedded: torch.Tensor) -> bool:
        return self.training and self.rnn.dropout > 0 and self.num_layers > 1 and embedded.device.type == "cpu"

    def _layer_by_layer(self, embedded: torch.Tensor, state: State):
        """``self.rnn(embedded, state)`` one layer at a time, with :func:`drop_elements` between
        layers in place of the torch cell's own dropout (a third of its cost on a CPU, see
        :mod:`rnnlab.models.dropout`). The layers are the cell's own (``torch.lstm`` and its
        siblings are what ``nn.LSTM.forward`` calls), so results and checkpoints are the cell's."""
        run = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh if self.nonlinearity == "tanh"
               else torch.rnn_relu}[self.cell]
        layer_input, finals = embedded, []
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = drop_elements(layer_input, self.rnn.dropout)
            weights = [getattr(self.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if self.cell == "lstm":
                layer_input, h, c = run(layer_input, (state[0][layer:layer + 1], state[1][layer:layer + 1]), weights,
                                        True, 1, 0.0, True, False, True)
                finals.append((h, c))
            else:
                layer_input, h = run(layer_input, state[layer:layer + 1], weights, True, 1, 0.0, True, False, True)
                finals.append(h)
        if self.cell == "lstm":
            return layer_input, (torch.cat([h for h, _ in finals]), torch.cat([c for _, c in finals]))
        return layer_input, torch.cat(finals)

    def config(self) -> dict:
        return {"model": self.cell, "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "dropout": self.dropout_p, "embed_size": self.embed_size,
                "tie_weights": self.tie_weights, "nonlinearity": self.nonlinearity}
