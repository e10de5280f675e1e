"""Self-contained inference graphs of rnnlab's language models, written for export.

Every graph maps token ids and the recurrent state to the next-token logits and the
new state, for any batch and any number of time steps, so a caller can stream one
token at a time or feed a whole prompt, carrying the state between calls::

    ids (batch, time) int64, state... -> logits (batch, time, vocab) float32, new state...

State tensors are ``(layers, batch, hidden)`` float32: one (``state``) for the tanh/ReLU
RNN, the from-scratch RNN, the GRU, minGRU and minLSTM; two for the LSTM
(``state_h``, ``state_c``). Zeros are the state of a fresh stream. ``time >= 1``.

The graphs copy the trained weights into plain modules (``nn.Embedding``, ``nn.RNN`` /
``nn.GRU`` / ``nn.LSTM``, ``nn.Linear``, ``nn.LayerNorm``) and write the minGRU/minLSTM
scan as an explicit loop. They are what TorchScript compiles and the ONNX exporter
converts: the training modules hold custom autograd functions and fused CPU paths that
neither can read, and keeping standard layers lets dynamic int8 quantization replace
them (:func:`int8_support`). Dropout is left out (inference only).
"""
from __future__ import annotations

import copy
from typing import List

import torch
from torch import nn

from rnnlab.errors import UsageError
from rnnlab.models.base import RecurrentLM
from rnnlab.models.parallel import ParallelRecurrentLM
from rnnlab.models.recurrent import TorchRecurrentLM
from rnnlab.models.scratch import ScratchRNN


class CellGraph(nn.Module):
    """``embedding -> nn.RNN | nn.GRU -> linear`` with one state tensor ``(layers, batch, hidden)``."""

    def __init__(self, embedding: nn.Embedding, rnn: nn.Module, output: nn.Linear) -> None:
        super().__init__()
        self.embedding, self.rnn, self.output = embedding, rnn, output

    def forward(self, ids: torch.Tensor, state: torch.Tensor):
        hidden, new_state = self.rnn(self.embedding(ids), state)  # (batch, time, hidden)
        return self.output(hidden), new_state


class LSTMGraph(nn.Module):
    """``embedding -> nn.LSTM -> linear`` with the state as two tensors ``(layers, batch, hidden)``."""

    def __init__(self, embedding: nn.Embedding, rnn: nn.LSTM, output: nn.Linear) -> None:
        super().__init__()
        self.embedding, self.rnn, self.output = embedding, rnn, output

    def forward(self, ids: torch.Tensor, state_h: torch.Tensor, state_c: torch.Tensor):
        hidden, (h, c) = self.rnn(self.embedding(ids), (state_h, state_c))
        return self.output(hidden), h, c


class ScanBlock(nn.Module):
    """One minGRU/minLSTM block (see :mod:`rnnlab.models.parallel`), its scan a loop over time."""

    def __init__(self, cell: str, norm: nn.LayerNorm, gates: nn.Linear, mlp: nn.Module | None) -> None:
        super().__init__()
        self.mingru = cell == "mingru"
        self.width = gates.in_features
        self.norm, self.gates = norm, gates
        self.has_mlp = mlp is not None
        self.mlp = mlp if mlp is not None else nn.Identity()

    def forward(self, x: torch.Tensor, h0: torch.Tensor):
        D = self.width
        P = self.gates(self.norm(x))  # (batch, time, 2D or 3D)
        if self.mingru:
            z = torch.sigmoid(P[:, :, :D])
            a = 1.0 - z
            b = z * P[:, :, D:]
        else:
            f = torch.sigmoid(P[:, :, :D])
            i = torch.sigmoid(P[:, :, D:2 * D])
            s = f + i
            a = f / s
            b = i / s * P[:, :, 2 * D:]
        h = h0  # (batch, D)
        outputs: List[torch.Tensor] = []
        for t in range(P.shape[1]):  # h_t = a_t h_{t-1} + b_t: the only sequential part
            h = a[:, t] * h + b[:, t]
            outputs.append(h)
        x = x + torch.stack(outputs, dim=1)
        if self.has_mlp:
            x = x + self.mlp(x)
        return x, h


class ScanGraph(nn.Module):
    """``embedding -> ScanBlock x layers -> LayerNorm -> linear``; state ``(layers, batch, hidden)``."""

    def __init__(self, embedding: nn.Embedding, blocks: list[ScanBlock], norm: nn.LayerNorm, output: nn.Linear):
        super().__init__()
        self.embedding, self.blocks, self.norm, self.output = embedding, nn.ModuleList(blocks), norm, output

    def forward(self, ids: torch.Tensor, state: torch.Tensor):
        x = self.embedding(ids)
        finals: List[torch.Tensor] = []
        for layer, block in enumerate(self.blocks):
            x, last = block(x, state[layer])
            finals.append(last)
        return self.output(self.norm(x)), torch.stack(finals)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An ``nn.Linear`` holding copies of ``weight`` ``(out, in)`` and ``bias`` ``(out,)``."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _embedding(weight: torch.Tensor) -> nn.Embedding:
    return nn.Embedding.from_pretrained(weight.detach().clone(), freeze=True)


def _copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module)


def build_graph(model: RecurrentLM) -> nn.Module:
    """The export graph of ``model`` (float32, on the CPU, eval mode), with copies of its weights."""
    with torch.no_grad():
        if isinstance(model, ScratchRNN):
            # tanh(W_xh[x] + b_h + h W_hh): the gathered row (bias folded in) enters an nn.RNN whose
            # input weight is the identity, so the graph is a standard RNN layer.
            H = model.hidden_size
            rnn = nn.RNN(H, H, num_layers=1, batch_first=True)
            rnn.weight_ih_l0.copy_(torch.eye(H))
            rnn.bias_ih_l0.zero_()
            rnn.weight_hh_l0.copy_(model.W_hh.t())
            rnn.bias_hh_l0.zero_()
            graph = CellGraph(_embedding(model.W_xh + model.b_h), rnn, _linear(model.W_hq.t(), model.b_q))
        elif isinstance(model, TorchRecurrentLM):
            embedding = _embedding(model.embedding.weight)
            output = _linear(model.output.weight, model.output.bias)
            rnn = _copy(model.rnn)
            graph = LSTMGraph(embedding, rnn, output) if model.cell == "lstm" else CellGraph(embedding, rnn, output)
        elif isinstance(model, ParallelRecurrentLM):
            blocks = []
            for block in model.blocks:
                mlp = None
                if block.mlp is not None:  # LayerNorm, Linear, GELU, Linear (its dropout left out)
                    mlp = nn.Sequential(*[_copy(m) for m in list(block.mlp)[:4]])
                blocks.append(ScanBlock(model.cell, _copy(block.norm), _copy(block.gates), mlp))
            graph = ScanGraph(_embedding(model.embedding.weight), blocks, _copy(model.norm),
                              _linear(model.output.weight, model.output.bias))
        else:
            raise UsageError(f"export knows rnn-scratch, rnn, gru, lstm, mingru and minlstm models, "
                             f"not {type(model).__name__}")
    return graph.float().cpu().eval()


def state_names(model: RecurrentLM) -> list[str]:
    """The state inputs of the graph in order (outputs: the same names with ``new_``)."""
    return ["state_h", "state_c"] if getattr(model, "cell", None) == "lstm" else ["state"]


def state_shape(model: RecurrentLM) -> list:
    """``[layers, "batch", hidden]`` of every state tensor."""
    return [getattr(model, "num_layers", 1), "batch", model.hidden_size]


def zero_state(model: RecurrentLM, batch: int) -> list[torch.Tensor]:
    layers, _, hidden = state_shape(model)
    return [torch.zeros(layers, batch, hidden) for _ in state_names(model)]


# What dynamic int8 quantization can replace, per format and model: None when every
# product of the model quantizes, else why not (an op without an int8 version).
def int8_support(model: RecurrentLM, fmt: str) -> str | None:
    name = model.name
    if name in ("mingru", "minlstm", "lstm"):
        return None
    if fmt == "torchscript" and name == "gru":
        return None
    layer = {"rnn-scratch": "tanh RNN", "rnn": f"{getattr(model, 'nonlinearity', 'tanh')} RNN", "gru": "GRU"}[name]
    if fmt == "onnx":
        return (f"int8: ONNX Runtime's dynamic quantization has no int8 {layer} operator (it quantizes MatMul, "
                f"Gemm and LSTM), so the {name} model's recurrence would stay float32; export it without "
                "--quantize, or use an lstm, mingru or minlstm model")
    return (f"int8: torch.ao dynamic quantization has no int8 {layer} layer (it quantizes Linear, LSTM and GRU), "
            f"so the {name} model's recurrence would stay float32; export it without --quantize")
