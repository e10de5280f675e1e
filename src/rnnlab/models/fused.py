"""A GRU layer with a hand-written backward pass: the fast CPU path of ``--model gru``.

Why: PyTorch's CPU LSTM runs in oneDNN's fused kernel (fast, and bfloat16 under
autocast), but its CPU GRU is a per-step loop of small autograd ops, slower per
FLOP than the LSTM and not sped up by bfloat16. This layer computes exactly what
``torch.nn.GRU`` computes, from the same parameters (``weight_ih_l{k}``
``(3H, I)``, ``weight_hh_l{k}`` ``(3H, H)``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, gate
order ``r, z, n``), so checkpoints are the same and a model trained here evaluates
on ``nn.GRU`` and back.

Forward, for t = 1..T (batch B, time-major inside)::

    GI      = X W_ih^T + b_ih                   (T, B, 3H)  one product for all steps
    GH_t    = h_{t-1} W_hh^T + b_hh             (B, 3H)     the only sequential product
    r_t,z_t = sigmoid(GI_t[r,z] + GH_t[r,z])
    n_t     = tanh(GI_t[n] + r_t * GH_t[n])
    h_t     = n_t + z_t * (h_{t-1} - n_t)       = (1 - z_t) n_t + z_t h_{t-1}

Backward, given ``dh_t`` (from the layer above and from step t+1)::

    da_n = dh_t (1 - z_t)(1 - n_t^2)                     dL/d(pre-activation of n)
    da_z = dh_t (h_{t-1} - n_t) z_t (1 - z_t)
    da_r = da_n GH_t[n] r_t (1 - r_t)
    dGH_t = [da_r, da_z, da_n r_t]       dGI_t = [da_r, da_z, da_n]
    dh_{t-1} += xi_t (dh_t z_t + dGH_t W_hh)             xi: randomized truncation (1 otherwise)
    dW_hh = sum_t dGH_t^T h_{t-1}   dW_ih = sum_t dGI_t^T X_t   dX = dGI W_ih   (all large products)

The three factors that multiply ``dh_t`` (``(1 - z)(1 - n^2)``, ``(h - n) z (1 - z)``,
``GH[n] r (1 - r)``) do not depend on the gradient, so they are computed for all
steps at once before the loop; each step of either loop is then a fixed handful
of calls writing into preallocated buffers.

Memory kept per step: ``r, z, n, GH[n], h`` (5 x B x H floats) plus the input.
Precision: elementwise work and kept activations in float32; under a bfloat16
:func:`rnnlab.precision.autocast` the products run in bfloat16 (float32 accumulation)
and gradients are returned in float32.
"""
from __future__ import annotations

import torch

from rnnlab.precision import compute_dtype
from rnnlab.models.dropout import dropout


def _mm(a: torch.Tensor, b: torch.Tensor, compute: torch.dtype) -> torch.Tensor:
    """``a @ b`` with the product in ``compute``, result in ``a``'s dtype."""
    if compute == a.dtype:
        return a @ b
    return (a.to(compute) @ b.to(compute)).to(a.dtype)


class _GRULayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, h0, weight_ih, weight_hh, bias_ih, bias_hh, xi, compute):
        # inputs: (T, B, I); h0: (B, H); xi: (T,) list of floats or None
        steps, batch, _ = inputs.shape
        size = weight_hh.shape[1]
        dtype = weight_hh.dtype
        GI = (_mm(inputs.reshape(steps * batch, -1).to(dtype), weight_ih.t(), compute) + bias_ih).view(steps, batch, 3 * size)
        W_hh_t = weight_hh.t().contiguous().to(compute)  # (H, 3H)
        hidden = torch.empty(steps, batch, size, dtype=dtype, device=inputs.device)  # h_1..h_T
        RZ = torch.empty(steps, batch, 2 * size, dtype=dtype, device=inputs.device)
        N = torch.empty(steps, batch, size, dtype=dtype, device=inputs.device)
        GHn = torch.empty(steps, batch, size, dtype=dtype, device=inputs.device)
        gh = torch.empty(batch, 3 * size, dtype=dtype, device=inputs.device)
        h = h0.to(dtype)
        low = compute != dtype
        h_low = h.to(compute) if low else None
        for t in range(steps):
            if low:
                torch.add(bias_hh, h_low @ W_hh_t, out=gh)
            else:
                torch.addmm(bias_hh, h, W_hh_t, out=gh)
            torch.add(GI[t, :, :2 * size], gh[:, :2 * size], out=RZ[t]).sigmoid_()
            GHn[t].copy_(gh[:, 2 * size:])
            torch.addcmul(GI[t, :, 2 * size:], RZ[t, :, :size], GHn[t], out=N[t]).tanh_()
            h = torch.lerp(N[t], h, RZ[t, :, size:], out=hidden[t])
            if low:
                h_low.copy_(h)
        ctx.save_for_backward(inputs, h0, hidden, RZ, N, GHn, weight_ih, weight_hh)
        ctx.xi, ctx.compute = xi, compute
        return hidden, hidden[-1].clone()

    @staticmethod
    def backward(ctx, d_hidden, d_last):
        inputs, h0, hidden, RZ, N, GHn, weight_ih, weight_hh = ctx.saved_tensors
        xi, compute = ctx.xi, ctx.compute
        steps, batch, size = hidden.shape
        dtype = hidden.dtype
        r, z = RZ[..., :size], RZ[..., size:]
        previous = torch.cat([h0.to(dtype).unsqueeze(0), hidden[:-1]])  # h_0..h_{T-1}
        # The gradient-independent factors, for all steps at once.
        factor_n = (1 - z) * (1 - N * N)
        factor_z = (previous - N) * z * (1 - z)
        factor_r = GHn * r * (1 - r)
        D = d_hidden.clone() if d_hidden is not None else torch.zeros_like(hidden)  # dL/dh_t, accumulated
        if d_last is not None:
            D[-1] += d_last
        dGH = torch.empty(steps, batch, 3 * size, dtype=dtype, device=hidden.device)
        d_an = torch.empty_like(hidden)
        W_hh_c = weight_hh.to(compute)  # (3H, H)
        low = compute != dtype
        for t in range(steps - 1, -1, -1):
            dh = D[t]
            torch.mul(dh, factor_n[t], out=d_an[t])
            torch.mul(dh, factor_z[t], out=dGH[t, :, size:2 * size])
            torch.mul(d_an[t], factor_r[t], out=dGH[t, :, :size])
            torch.mul(d_an[t], r[t], out=dGH[t, :, 2 * size:])
            scale = xi[t] if xi is not None else 1.0
            into = D[t - 1] if t > 0 else torch.zeros_like(dh)
            into.addcmul_(dh, z[t], value=scale)
            if low:
                into.add_((dGH[t].to(compute) @ W_hh_c).to(dtype), alpha=scale)
            else:
                into.addmm_(dGH[t], W_hh_c, alpha=scale)
            if t == 0:
                d_h0 = into
        flat_dGH = dGH.view(-1, 3 * size)
        dGI = dGH.clone()
        dGI[..., 2 * size:] = d_an
        flat_dGI = dGI.view(-1, 3 * size)
        flat_inputs = inputs.reshape(steps * batch, -1)
        d_weight_hh = _mm(flat_dGH.t(), previous.view(-1, size), compute)
        d_weight_ih = _mm(flat_dGI.t(), flat_inputs.to(dtype), compute)
        d_inputs = _mm(flat_dGI, weight_ih, compute).view(inputs.shape).to(inputs.dtype)
        return (d_inputs, d_h0.to(h0.dtype), d_weight_ih, d_weight_hh, flat_dGI.sum(0), flat_dGH.sum(0),
                None, None)


def gru_forward(gru: torch.nn.GRU, inputs: torch.Tensor, state: torch.Tensor,
                grad_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``gru(inputs, state)`` for a ``batch_first`` unidirectional ``nn.GRU``, on :class:`_GRULayer`.

    ``inputs`` ``(B, T, I)``, ``state`` ``(L, B, H)`` -> outputs ``(B, T, H)``, state ``(L, B, H)``.
    Dropout between layers as ``nn.GRU`` applies it (training mode only).
    ``grad_scale`` ``(T,)``: randomized truncation, see :mod:`rnnlab.models.base`.
    """
    compute = compute_dtype(inputs.device) or gru.weight_hh_l0.dtype
    xi = grad_scale.tolist() if grad_scale is not None else None
    layer_input = inputs.transpose(0, 1)  # (T, B, I): the recurrence walks the first axis
    if layer_input.dtype != gru.weight_hh_l0.dtype:
        layer_input = layer_input.to(gru.weight_hh_l0.dtype)  # e.g. a bfloat16 embedding under autocast
    finals = []
    with torch.autocast(inputs.device.type, enabled=False):  # the layer picks its own dtypes
        for layer in range(gru.num_layers):
            if layer > 0 and gru.dropout and gru.training:
                layer_input = dropout(layer_input, gru.dropout)
            layer_input, last = _GRULayer.apply(
                layer_input.contiguous(), state[layer], getattr(gru, f"weight_ih_l{layer}"),
                getattr(gru, f"weight_hh_l{layer}"), getattr(gru, f"bias_ih_l{layer}"),
                getattr(gru, f"bias_hh_l{layer}"), xi, compute)
            finals.append(last)
    return layer_input.transpose(0, 1), torch.stack(finals)


def supports_fused_gru(gru: torch.nn.Module, device: torch.device) -> bool:
    """The fused layer covers unidirectional, biased, batch-first GRUs on the CPU
    (on CUDA, cuDNN's GRU is faster)."""
    return (isinstance(gru, torch.nn.GRU) and device.type == "cpu" and not gru.bidirectional and gru.bias
            and gru.batch_first and getattr(gru, "proj_size", 0) == 0)
