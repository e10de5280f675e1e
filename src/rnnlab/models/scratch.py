"""The book's RNN from scratch, with backpropagation through time written by hand.

Parameters (d2l 8.5; weights ~ N(0, 0.01^2), biases zero)::

    W_xh (V, H)   W_hh (H, H)   b_h (H,)   W_hq (H, V)   b_q (V,)

Forward, for t = 1..T, batch B, one row per sequence::

    A_t = X_t W_xh + H_{t-1} W_hh + b_h          (B, H)  pre-activation
    H_t = tanh(A_t)                               (B, H)
    O_t = H_t W_hq + b_q                          (B, V)  logits

``X_t`` is the one-hot encoding of the tokens; ``X_t W_xh`` is therefore just
rows of ``W_xh``, so the input projection is a gather ``W_xh[tokens]`` (the same
numbers as the one-hot product without building a (B, V) matrix).

Backward (:class:`_RNNFunction.backward`), given ``dO_t = dL/dO_t`` from the loss and
``dH_T`` from whatever used the final state::

    dW_hq = sum_t H_t^T dO_t            db_q = sum_t dO_t (summed over the batch)
    dH_t  = dO_t W_hq^T + xi_{t+1} dA_{t+1} W_hh^T      (the second term is 0, or
                                                         dH_T, at t = T)
    dA_t  = dH_t * (1 - H_t^2)                           tanh' = 1 - tanh^2
    dW_hh = sum_t H_{t-1}^T dA_t        db_h = sum_t dA_t
    dW_xh[token] += dA_t[row]           (scatter-add: the transpose of the gather)
    dH_0  = xi_1 dA_1 W_hh^T

``xi`` (randomized truncation, default all ones) scales the gradient that crosses
from step t back into step t-1. Memory kept between forward and backward: the hidden
states ``H_1..H_T`` (T, B, H), the initial state and the token ids; the
pre-activations are not stored because ``tanh'`` is recomputed from ``H_t``.
"""
from __future__ import annotations

import torch
from torch import nn

from rnnlab.models.base import RecurrentLM, check_positive


class _RNNFunction(torch.autograd.Function):
    """Forward and hand-written backward of the whole sequence (time-major inside)."""

    @staticmethod
    def forward(ctx, tokens, h0, W_xh, W_hh, b_h, W_hq, b_q, xi):
        # tokens: (T, B) int64; h0: (B, H); xi: (T,) or None
        steps = tokens.shape[0]
        inputs = W_xh[tokens] + b_h  # (T, B, H): gather == one_hot(tokens) @ W_xh
        hidden = torch.empty_like(inputs)  # H_1..H_T
        h = h0
        for t in range(steps):
            h = torch.addmm(inputs[t], h, W_hh).tanh_()
            hidden[t] = h
        logits = torch.matmul(hidden, W_hq) + b_q  # (T, B, V): all outputs in one product
        ctx.save_for_backward(tokens, h0, hidden, W_xh, W_hh, W_hq, xi if xi is not None else torch.empty(0))
        ctx.has_xi = xi is not None
        return logits, hidden[-1].clone()

    @staticmethod
    def backward(ctx, d_logits, d_last):
        tokens, h0, hidden, W_xh, W_hh, W_hq, xi = ctx.saved_tensors
        steps, batch, size = hidden.shape
        d_logits = d_logits if d_logits is not None else torch.zeros(
            steps, batch, W_hq.shape[1], dtype=hidden.dtype, device=hidden.device)
        flat_hidden = hidden.reshape(-1, size)
        flat_d_logits = d_logits.reshape(-1, d_logits.shape[-1])
        d_W_hq = flat_hidden.t() @ flat_d_logits  # (H, V)
        d_b_q = flat_d_logits.sum(0)
        d_hidden = torch.matmul(d_logits, W_hq.t())  # (T, B, H): dL/dH_t through O_t only
        d_pre = torch.empty_like(hidden)  # dA_t
        carry = d_last if d_last is not None else torch.zeros_like(h0)  # dL/dH_t from later steps
        W_hh_t = W_hh.t()
        for t in range(steps - 1, -1, -1):
            d_h = d_hidden[t] + carry
            d_a = d_h * (1.0 - hidden[t] * hidden[t])
            d_pre[t] = d_a
            carry = d_a @ W_hh_t  # into H_{t-1}
            if ctx.has_xi:
                carry = carry * xi[t]
        d_h0 = carry
        previous = torch.cat([h0.unsqueeze(0), hidden[:-1]], dim=0).reshape(-1, size)  # H_0..H_{T-1}
        flat_d_pre = d_pre.reshape(-1, size)
        d_W_hh = previous.t() @ flat_d_pre
        d_b_h = flat_d_pre.sum(0)
        d_W_xh = torch.zeros_like(W_xh).index_add_(0, tokens.reshape(-1), flat_d_pre)
        return None, d_h0, d_W_xh, d_W_hh, d_b_h, d_W_hq, d_b_q, None


class ScratchRNN(RecurrentLM):
    """The from-scratch RNN language model; gradients come from :class:`_RNNFunction`."""

    name = "rnn-scratch"

    def __init__(self, vocab_size: int, hidden_size: int = 512, init_std: float = 0.01) -> None:
        super().__init__(vocab_size)
        check_positive(vocab_size=vocab_size, hidden_size=hidden_size)
        self.hidden_size, self.init_std = hidden_size, init_std

        def normal(*shape):
            return nn.Parameter(torch.randn(*shape) * init_std)

        self.W_xh = normal(vocab_size, hidden_size)
        self.W_hh = normal(hidden_size, hidden_size)
        self.b_h = nn.Parameter(torch.zeros(hidden_size))
        self.W_hq = normal(hidden_size, vocab_size)
        self.b_q = nn.Parameter(torch.zeros(vocab_size))

    def begin_state(self, batch_size: int, device=None) -> torch.Tensor:
        device = device if device is not None else self.W_hh.device
        return torch.zeros(1, batch_size, self.hidden_size, device=device, dtype=self.W_hh.dtype)

    def forward(self, X: torch.Tensor, state: torch.Tensor, grad_scale: torch.Tensor | None = None):
        """``X`` (batch, steps) int64, ``state`` (1, batch, hidden) -> logits (batch, steps, vocab), state."""
        xi = grad_scale.to(self.W_hh.device, self.W_hh.dtype) if grad_scale is not None else None
        logits, last = _RNNFunction.apply(X.t().contiguous(), state[0], self.W_xh, self.W_hh, self.b_h,
                                          self.W_hq, self.b_q, xi)
        return logits.transpose(0, 1), last.unsqueeze(0)

    def config(self) -> dict:
        return {"model": self.name, "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "init_std": self.init_std}
