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

Cost. Only two things are sequential: ``H_{t-1} W_hh`` forward and ``dA_t W_hh^T``
backward, one (B, H) x (H, H) product per step each. Everything else is one large
product over all T*B rows (``W_hq`` forward and backward, ``dW_hh``) or a gather /
scatter. Each step of either loop is exactly two calls that write into preallocated
buffers (``addmm(..., out=)`` then an in-place ``tanh_``; ``addmm_`` then ``mul(out=)``
with ``1 - H_t^2`` computed for all steps at once), so no tensor is created per step.
Training FLOPs per token: ``6 H^2 + 6 H V`` (forward ``2H^2 + 2HV``, backward twice
that); the input projection is free.

Precision. In float32 every tensor above is float32. Under a bfloat16
:func:`rnnlab.precision.autocast` the recurrence, the output products and the
backward run in bfloat16 (float32 accumulation inside the products, as oneDNN
and cuBLAS do), the weights stay float32 (cast once per call) and the gradients
are returned in float32; the loss is computed by the caller in float32 on the
logits. ``H_t`` is then kept in bfloat16 (half the memory).
"""
from __future__ import annotations

import torch
from torch import nn

from rnnlab.models.base import RecurrentLM, check_positive
from rnnlab.precision import compute_dtype


class _RNNFunction(torch.autograd.Function):
    """Forward and hand-written backward of the whole sequence (time-major inside).

    ``compute`` is the dtype of the products and of the kept activations (the
    parameters' dtype, or bfloat16).
    """

    @staticmethod
    def forward(ctx, tokens, h0, W_xh, W_hh, b_h, W_hq, b_q, xi, compute=None):
        # tokens: (T, B) int64; h0: (B, H); xi: (T,) or None
        compute = compute or W_hh.dtype
        steps, batch = tokens.shape
        size, vocab = W_hh.shape[0], W_hq.shape[1]
        W_hh_c, W_hq_c = W_hh.to(compute), W_hq.to(compute)
        # gather == one_hot(tokens) @ W_xh; b_h is folded into the gathered rows
        inputs = (W_xh.index_select(0, tokens.reshape(-1)) + b_h).to(compute).view(steps, batch, size)
        hidden = torch.empty(steps, batch, size, dtype=compute, device=W_hh.device)  # H_1..H_T
        h = h0.to(compute)
        for t in range(steps):
            h = torch.addmm(inputs[t], h, W_hh_c, out=hidden[t]).tanh_()
        # all outputs in one product: (T*B, H) x (H, V)
        logits = torch.addmm(b_q.to(compute), hidden.view(-1, size), W_hq_c).view(steps, batch, vocab)
        ctx.save_for_backward(tokens, h0, hidden, W_xh, W_hh, W_hq)
        ctx.xi = xi.tolist() if xi is not None else None  # Python floats: addmm's alpha
        ctx.compute = compute
        return logits, hidden[-1].to(h0.dtype, copy=True)  # a copy: the caller may keep and change it

    @staticmethod
    def backward(ctx, d_logits, d_last):
        tokens, h0, hidden, W_xh, W_hh, W_hq = ctx.saved_tensors
        compute, xi = ctx.compute, ctx.xi
        steps, batch, size = hidden.shape
        vocab = W_hq.shape[1]
        param_dtype = W_hh.dtype
        W_hh_c, W_hq_c = W_hh.to(compute), W_hq.to(compute)
        flat_hidden = hidden.view(-1, size)
        if d_logits is None:
            d_logits = torch.zeros(steps, batch, vocab, dtype=compute, device=hidden.device)
        flat_d_logits = d_logits.reshape(-1, vocab).to(compute)
        d_W_hq = (flat_hidden.t() @ flat_d_logits).to(param_dtype)  # (H, V)
        d_b_q = flat_d_logits.sum(0, dtype=param_dtype)
        d_hidden = (flat_d_logits @ W_hq_c.t()).view(steps, batch, size)  # dL/dH_t through O_t only
        if d_last is not None:
            d_hidden[-1] += d_last.to(compute)
        tanh_grad = torch.mul(hidden, hidden).neg_().add_(1.0)  # 1 - H_t^2, all steps at once
        d_pre = torch.empty_like(hidden)  # dA_t
        torch.mul(d_hidden[-1], tanh_grad[-1], out=d_pre[-1])
        W_hh_t = W_hh_c.t().contiguous()  # a transposed view is ~1.5x slower in float32 products
        for t in range(steps - 1, 0, -1):
            # dH_{t-1} = dO-part + xi_t dA_t W_hh^T, accumulated in place, then dA_{t-1}
            d_hidden[t - 1].addmm_(d_pre[t], W_hh_t, alpha=xi[t] if xi is not None else 1.0)
            torch.mul(d_hidden[t - 1], tanh_grad[t - 1], out=d_pre[t - 1])
        d_h0 = (d_pre[0] @ W_hh_t).to(h0.dtype)
        if xi is not None:
            d_h0 = d_h0 * xi[0]
        flat_d_pre = d_pre.view(-1, size)
        # dW_hh = sum_t H_{t-1}^T dA_t, split as H_0 (the initial state) + H_1..H_{T-1}
        d_W_hh = h0.to(compute).t() @ d_pre[0]
        if steps > 1:
            d_W_hh = d_W_hh.addmm_(hidden[:-1].reshape(-1, size).t(), d_pre[1:].reshape(-1, size))
        d_b_h = flat_d_pre.sum(0, dtype=param_dtype)
        d_W_xh = torch.zeros_like(W_xh).index_add_(0, tokens.reshape(-1), flat_d_pre.to(param_dtype))
        return None, d_h0, d_W_xh, d_W_hh.to(param_dtype), d_b_h, d_W_hq, d_b_q, None, None


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
        device = self.W_hh.device
        compute = compute_dtype(device) or self.W_hh.dtype
        with torch.autocast(device.type, enabled=False):  # the function chooses its own dtypes
            logits, last = _RNNFunction.apply(X.t().contiguous(), state[0], self.W_xh, self.W_hh, self.b_h,
                                              self.W_hq, self.b_q, grad_scale, compute)
        return logits.transpose(0, 1), last.unsqueeze(0)

    def config(self) -> dict:
        return {"model": self.name, "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "init_std": self.init_std}
