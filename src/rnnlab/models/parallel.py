"""minGRU and minLSTM: recurrences whose gates do not read the previous state, trained in parallel.

"Were RNNs All We Needed?" (Feng, Tung, Ahmed, Bengio, Hajimirsadeghi, 2024) drops
``h_{t-1}`` from the gates of the GRU and the LSTM. What is left is a *linear*
recurrence ``h_t = a_t * h_{t-1} + b_t`` whose coefficients depend on the input only,
so every product of a segment runs over all ``batch x steps`` rows at once and only an
elementwise scan stays sequential.

Per layer, model width ``D``, input ``x`` ``(B, T, D)``, state ``h_0`` ``(B, D)``::

    minGRU   [k | v]      = Linear(x)           (B, T, 2D)   one product for all steps
             z_t          = sigmoid(k_t)                     update gate
             h_t          = (1 - z_t) h_{t-1} + z_t v_t      a_t = 1 - z_t,  b_t = z_t v_t
    minLSTM  [k_f|k_i| v] = Linear(x)           (B, T, 3D)
             f_t, i_t     = sigmoid(k_f), sigmoid(k_i)
             f'_t, i'_t   = f_t / (f_t + i_t), i_t / (f_t + i_t) normalised: a_t + i'_t = 1
             h_t          = f'_t h_{t-1} + i'_t v_t          a_t = f'_t,     b_t = i'_t v_t

``v`` (the candidate state) is the linear map itself, as in the paper's sequential
form. The block around each recurrence is the pre-norm residual block of the paper's
reference language model::

    x <- x + Dropout(Recurrence(LayerNorm(x)))
    x <- x + Dropout(W_2 GELU(W_1 LayerNorm(x)))        (mlp_ratio > 0: W_1 (D, rD), W_2 (rD, D))
    logits = Linear(Dropout(LayerNorm(x)))              (B, T, V)

with the dropped-out token embedding ``(V, D)`` as the first ``x`` (optionally tied to the
output). Dropout is :class:`LockedDropout`: one mask per sequence and feature for all steps.

The scan (:class:`_LinearScan`). Forward, time-major ``(T, B, D)``, one in-place kernel
per step: ``h_t = addcmul(b_t, a_t, h_{t-1})``. Backward, given ``g_t = dL/dh_t`` from
the outputs (and ``dL/dh_T`` from the carried state)::

    g_{t-1} += xi_t a_t g_t                 (reverse scan, one kernel per step)
    dL/da_t = g_t h_{t-1}      dL/db_t = g_t
    dh_0    = xi_1 a_1 g_1

``xi`` scales the gradient that crosses from step t back into t - 1 (randomized BPTT;
all ones otherwise). The gate derivatives are written out for all steps at once::

    minGRU   dk = g (v - h_{t-1}) z (1 - z)                 dv = g z
    minLSTM  q  = g (h_{t-1} - v) / (f + i)^2               dv = g i'
             dk_f = q i f (1 - f)      dk_i = -q f i (1 - i)

so a layer's elementwise work is a fixed handful of whole-segment kernels besides the
two loops of ``T`` small ones. The carried state enters exactly: a segment started from
``h_0`` gives the same outputs as the second half of one long sequence (tested in
float64 against the step-by-step loop). The scan always runs in float32 (float64 when
the parameters are), also under bfloat16 autocast, where only the products are bf16.

Memory kept per token and layer for the backward: the pre-activations (2D or 3D), the
states ``h`` (D), the two LayerNorm outputs (2D) and the MLP's hidden layer before and
after GELU (2rD), so about ``(6 + 2r) D`` floats (minGRU) and ``(7 + 2r) D`` (minLSTM).
Parameters per layer: ``(2 or 3) D^2 + 2 r D^2`` plus biases and norms.
Generation steps one token at a time through the same equations
(:meth:`ParallelRecurrentLM.forward` with ``T = 1`` is exact: the scan of one step).
"""
from __future__ import annotations

import torch
from torch import nn

from rnnlab.models.base import RecurrentLM, State
from rnnlab.models.dropout import LockedDropout

CELLS = ("mingru", "minlstm")


class _LinearScan(torch.autograd.Function):
    """``h = scan(P, h0)`` with the gates of ``cell`` computed from ``P`` (see the module docstring).

    ``P`` ``(B, T, G)`` with ``G = 2D`` (minGRU) or ``3D`` (minLSTM), ``h0`` ``(B, D)``,
    ``xi`` ``(T,)`` or None. Returns ``h`` ``(B, T, D)``. Everything stays batch-first: a
    step's slice ``[:, t]`` is ``B`` rows of ``D`` contiguous numbers, which the elementwise
    kernels take as fast as a contiguous block, while the whole-segment kernels (gates,
    residual sum, the next product) see contiguous tensors.
    """

    @staticmethod
    def forward(ctx, P, h0, xi, cell):
        B, T, _ = P.shape
        D = h0.shape[-1]
        states = torch.empty(B, T + 1, D, dtype=P.dtype, device=P.device)  # [h_0, h_1, ..., h_T]
        states[:, 0] = h0
        a = _coefficients(P, cell, D, b_out=states[:, 1:])  # (B, T, D); b_t written in place of h_t
        for t in range(T):  # in place: about 4x cheaper per call than addcmul(out=) into a view
            states[:, t + 1].addcmul_(a[:, t], states[:, t])
        ctx.cell = cell
        ctx.has_xi = xi is not None
        ctx.save_for_backward(P, states, xi if xi is not None else torch.empty(0))
        return states[:, 1:]

    @staticmethod
    def backward(ctx, grad_h):
        # Every whole-segment tensor is made by one kernel and the others write into it: on a
        # CPU this scan is bound by memory passes over (B, T, D), not by arithmetic.
        P, states, xi = ctx.saved_tensors
        cell = ctx.cell
        B, T, D = grad_h.shape
        if cell == "mingru":
            gate = _sigmoid_columns(P, D)  # z
            a = torch.rsub(gate, 1)
        else:
            fi = _sigmoid_columns(P, 2 * D)
            gate, i = fi[..., :D], fi[..., D:]  # f, i
            s = gate + i
            a = gate / s
        if ctx.has_xi:
            a_back = a * xi.to(a.dtype).view(1, T, 1)  # a_t xi_t: what crosses from step t into t - 1
        else:
            a_back = a
        g = grad_h.clone(memory_format=torch.contiguous_format)  # the reverse scan writes into it
        for t in range(T - 1, 0, -1):
            g[:, t - 1].addcmul_(a_back[:, t], g[:, t])
        dh0 = a_back[:, 0] * g[:, 0]
        h_prev = states[:, :-1]  # (B, T, D)
        dP = torch.empty_like(P)
        if cell == "mingru":  # dk = g (v - h_prev) z (1 - z), dv = g z
            torch.mul(g, gate, out=dP[..., D:])
            dk = dP[..., :D]
            torch.sub(P[..., D:], h_prev, out=dk)
            dk.mul_(g).mul_(gate).mul_(a)
        else:  # r = g (h_prev - v) f i / s^2; dk_f = r (1 - f), dk_i = -r (1 - i), dv = g i / s
            torch.mul(g, i, out=dP[..., 2 * D:]).div_(s)
            r = torch.sub(h_prev, P[..., 2 * D:]).mul_(g).mul_(a).mul_(i).div_(s)  # a = f / s
            torch.addcmul(r, r, gate, value=-1, out=dP[..., :D])
            torch.mul(r, i, out=dP[..., D:2 * D]).sub_(r)
        return dP, dh0, None, None


def _coefficients(P: torch.Tensor, cell: str, D: int, b_out: torch.Tensor) -> torch.Tensor:
    """``a`` ``(B, T, D)`` of ``h_t = a_t h_{t-1} + b_t`` from ``P`` ``(B, T, G)``; ``b`` is
    written into ``b_out`` ``(B, T, D)``."""
    if cell == "mingru":
        z = _sigmoid_columns(P, D)
        torch.mul(z, P[..., D:], out=b_out)
        return z.neg_().add_(1)
    fi = _sigmoid_columns(P, 2 * D)
    f, i = fi[..., :D], fi[..., D:]
    s = f + i
    torch.mul(i.div_(s), P[..., 2 * D:], out=b_out)
    return f.div_(s)


def _sigmoid_columns(P: torch.Tensor, width: int) -> torch.Tensor:
    """``sigmoid(P[..., :width])`` ``(B, T, width)``, contiguous, as one kernel over a 2-D view.

    PyTorch's CPU sigmoid takes a scalar path on a 3-D view whose rows are not adjacent
    (the gate columns of ``P``): about 10x slower than on a contiguous tensor, measured at
    ``(32, 128, 384)`` of a ``(32, 128, 768)`` ``P``, where the same columns seen as a 2-D
    ``(B T, width)`` view are within 2.5x of contiguous.
    """
    B, T, G = P.shape
    return torch.sigmoid(P.reshape(B * T, G)[:, :width]).view(B, T, width)


class ParallelBlock(nn.Module):
    """One pre-norm residual block: the recurrence, then (``mlp_ratio > 0``) a position-wise MLP."""

    def __init__(self, cell: str, width: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.cell = cell
        self.norm = nn.LayerNorm(width)
        self.gates = nn.Linear(width, (2 if cell == "mingru" else 3) * width)
        self.drop = LockedDropout(dropout)
        inner = round(mlp_ratio * width)
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, inner), nn.GELU(),
                                 nn.Linear(inner, width), LockedDropout(dropout)) if inner > 0 else None

    def forward(self, x: torch.Tensor, h0: torch.Tensor, xi: torch.Tensor | None):
        P = self.gates(self.norm(x))  # (B, T, G); bf16 under autocast
        dtype = h0.dtype
        h = _LinearScan.apply(P.to(dtype), h0, xi, self.cell)  # (B, T, D), float32 (or float64)
        x = x + self.drop(h)
        if self.mlp is not None:
            x = x + self.mlp(x).to(x.dtype)
        return x, h[:, -1]


class ParallelRecurrentLM(RecurrentLM):
    """``embedding -> num_layers x ParallelBlock(minGRU | minLSTM) -> LayerNorm -> linear``.

    State: ``(num_layers, batch, hidden_size)``, each layer's ``h``, like ``nn.GRU``'s.
    """

    def __init__(self, vocab_size: int, cell: str = "mingru", hidden_size: int = 256, num_layers: int = 2,
                 dropout: float = 0.0, mlp_ratio: float = 2.0, tie_weights: bool = False) -> None:
        super().__init__(vocab_size)
        self.name = cell
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.dropout_p, self.mlp_ratio, self.tie_weights = dropout, float(mlp_ratio), bool(tie_weights)
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        nn.init.normal_(self.embedding.weight, std=0.02 if tie_weights else 1.0)
        self.drop = LockedDropout(dropout)
        self.blocks = nn.ModuleList(ParallelBlock(cell, hidden_size, self.mlp_ratio, dropout)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_size)
        self.output = nn.Linear(hidden_size, vocab_size)
        if self.tie_weights:
            self.output.weight = self.embedding.weight

    def begin_state(self, batch_size: int, device=None) -> State:
        device = device if device is not None else self.output.weight.device
        return torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device,
                           dtype=self.output.weight.dtype)

    def forward(self, X: torch.Tensor, state: State, grad_scale: torch.Tensor | None = None):
        x = self.drop(self.embedding(X))  # (B, T, D)
        finals = []
        for layer, block in enumerate(self.blocks):
            x, last = block(x, state[layer], grad_scale)
            finals.append(last)
        return self.output(self.drop(self.norm(x))), torch.stack(finals)  # (B, T, V), (L, B, D)

    def config(self) -> dict:
        return {"model": self.cell, "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "dropout": self.dropout_p, "mlp_ratio": self.mlp_ratio,
                "tie_weights": self.tie_weights}


def sequential_scan(P: torch.Tensor, h0: torch.Tensor, cell: str) -> torch.Tensor:
    """The same recurrence step by step with autograd's own ops (the reference the tests compare with)."""
    D = h0.shape[-1]
    h, outputs = h0, []
    for t in range(P.shape[1]):
        p = P[:, t]
        if cell == "mingru":
            z = torch.sigmoid(p[:, :D])
            h = (1 - z) * h + z * p[:, D:]
        else:
            f, i = torch.sigmoid(p[:, :D]), torch.sigmoid(p[:, D:2 * D])
            h = f / (f + i) * h + i / (f + i) * p[:, 2 * D:]
        outputs.append(h)
    return torch.stack(outputs, dim=1)


__all__ = ["CELLS", "ParallelBlock", "ParallelRecurrentLM", "sequential_scan"]
