"""One token at a time through a recurrent language model, for generation only.

Training runs whole sequences through ``forward``. Generation feeds one token per
call, and there the cost of a general forward call (a fresh ``(1, 1)`` input, the
recurrent layer's set-up, a ``(B, 1, V)`` output, autograd bookkeeping) is larger
than the arithmetic. A :class:`Stepper` is a snapshot of a model's weights,
re-arranged once, that advances ``B`` streams by one token with a handful of kernel
calls writing into buffers allocated once (``out=`` arguments and in-place ops), so
a step allocates no tensors.

Shapes: ``tokens`` ``(B,)`` int64; ``logits`` ``(B, V)``; state buffer ``S`` ``(B, L*H)``
laid out ``[h^0 | h^1 | ... | h^{L-1}]`` (layer ``l``'s hidden state in columns
``lH:(l+1)H``); LSTM cells ``C`` ``(L, B, H)``; pre-activations ``P`` ``(B, G)``.

Two re-arrangements do most of the work:

* The first layer's input product is a row lookup. Token ``x`` enters as
  ``onehot(x) E`` (``E`` the embedding, or the identity for one-hot input), so
  ``onehot(x) E W_ih^T + b`` is row ``x`` of the table ``T0 = E W_ih^T + b``
  ``(V, G)``, computed once; all biases of the layer are folded into it.
* A higher layer's input ``h^{l-1}_t`` and its own previous state ``h^l_{t-1}`` are
  neighbours in ``S``: the window ``S[:, (l-1)H:(l+1)H] = [h^{l-1}_t, h^l_{t-1}]``
  (layer ``l - 1`` has already overwritten its part at this step, layer ``l`` not
  yet). One ``addmm`` with the stacked weight ``W_l = [W_ih^T ; W_hh^T]`` ``(2H, G)``
  gives the input and recurrent products together.

Per layer (``l = 0``: ``P = T0[x] + h^0 R0``; ``l > 0``: ``P = b_l + [h^{l-1}, h^l] W_l``)::

    scratch RNN, nn.RNN   (G = H)        h = tanh(P)  or  relu(P)
    GRU  (G = 4H, columns [r z | n_x | n_h])
         r, z = sigmoid(P[:, :2H])       n_x only sees the input, n_h only the state
         n = tanh(n_x + r * n_h)         (zero blocks in R0 / W_l keep them apart)
         h = n + z * (h - n)             = (1 - z) n + z h
    LSTM (G = 4H, torch's columns [i f g o] reordered to [i f o | g])
         i, f, o = sigmoid(P[:, :3H]);  g = tanh(P[:, 3H:])
         c = f * c + i * g;  h = o * tanh(c)

    logits = h^{L-1} W_out + b_out        (B, V)

For the from-scratch RNN (``A_t = X_t W_xh + H_{t-1} W_hh + b_h``) this is one layer
with ``T0 = W_xh + b_h``, ``R0 = W_hh``, ``W_out = W_hq``, ``b_out = b_q``.

One layer (the from-scratch RNN, one-layer GRU/LSTM) makes a single product per token:
the logits of step ``t`` and the recurrent part of step ``t + 1`` both read ``h_t``, so
``[logits_t | h_t R0] = h_t [W_out | R0] + [b_out | 0]`` ``(B, V + G)``, and step ``t + 1``
is ``P = T0[x] + (h_t R0)``, the cell, then that product again. At hidden 512 the
weights are read in one call instead of two (about 20% faster per token, greedy,
on the build machine). The returned logits are then a ``(B, V)`` view of that buffer.

``mask_unk=True`` bakes ``-inf`` into a generation-only copy of ``b_out[0]``, so the
logit of ``<unk>`` (index 0) is ``-inf`` at no per-step cost and an argmax can never
pick it. Dropout is not applied (inference only). The stepper copies the weights
when it is made: build a new one after the weights change.

minGRU and minLSTM stacks step through :class:`ParallelStepper` (their recurrence
needs no product with the state, only the input's). Models the stepper does not know (or a :class:`TorchRecurrentLM` whose recurrent
layer is bidirectional or projected) fall back to :class:`ForwardStepper`, which
calls ``model.forward`` once per token: slower, but right for any model.
"""
from __future__ import annotations

import torch
from torch import nn

from rnnlab.errors import UsageError
from rnnlab.models.base import RecurrentLM, State, map_state
from rnnlab.models.parallel import ParallelRecurrentLM
from rnnlab.models.recurrent import TorchRecurrentLM
from rnnlab.models.scratch import ScratchRNN


class Stepper:
    """Advances ``batch_size`` token streams by one token per :meth:`step`.

    ``logits`` is the ``(B, V)`` buffer every step writes; it is overwritten by the
    next step (clone it to keep it).
    """

    def __init__(self, batch_size: int, vocab_size: int, device: torch.device, dtype: torch.dtype) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size, self.vocab_size = batch_size, vocab_size
        self.device, self.dtype = device, dtype
        self.logits = torch.empty(batch_size, vocab_size, device=device, dtype=dtype)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed ``tokens`` ``(B,)`` int64 (on the model's device); return the next-token logits ``(B, V)``."""
        raise NotImplementedError

    def load_state(self, state: State) -> None:
        """Continue from ``state`` in the model's own format; a batch of 1 is copied to every row."""
        raise NotImplementedError

    def state(self) -> State:
        """The current state in the model's own format (a copy), e.g. to continue with ``model.forward``."""
        raise NotImplementedError


def _as_rows(state: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``(L, b, H)`` with ``b`` 1 or ``batch_size`` -> ``(batch_size, L, H)`` view, broadcast if ``b == 1``."""
    if state.dim() != 3 or state.shape[1] not in (1, batch_size):
        raise UsageError(f"a state of shape (layers, {batch_size} or 1, hidden) was expected, got {tuple(state.shape)}")
    return state.transpose(0, 1).expand(batch_size, -1, -1)


class LayeredStepper(Stepper):
    """Stepper for the tanh/ReLU RNN, GRU and LSTM, stacked ``num_layers`` deep (see the module docstring)."""

    def __init__(self, cell: str, table: torch.Tensor, recurrent: torch.Tensor,
                 upper: list[tuple[torch.Tensor, torch.Tensor]], W_out: torch.Tensor, b_out: torch.Tensor,
                 hidden_size: int, batch_size: int, mask_unk: bool, state_is_tuple: bool) -> None:
        super().__init__(batch_size, W_out.shape[1], table.device, table.dtype)
        H, L, B = hidden_size, 1 + len(upper), batch_size
        self.cell, self.hidden_size, self.num_layers = cell, H, L
        self.state_is_tuple = state_is_tuple  # the model's state is (h, c) (LSTM) rather than h
        self.table, self.recurrent, self.upper, self.W_out = table, recurrent, upper, W_out
        self.b_out = b_out.detach().clone()  # the <unk> mask must not touch the caller's tensor
        if mask_unk:
            self.b_out[0] = -float("inf")
        width = table.shape[1]  # G
        self.hidden = torch.zeros(B, L * H, device=self.device, dtype=self.dtype)  # S
        self.pre = torch.empty(B, width, device=self.device, dtype=self.dtype)  # P
        # Views made once: slicing costs about a microsecond per call.
        self.h = [self.hidden[:, l * H:(l + 1) * H] for l in range(L)]
        self.windows = [self.hidden[:, (l - 1) * H:(l + 1) * H] for l in range(1, L)]
        self.last = self.h[-1]
        self.joint = None
        if L == 1:
            # One layer: the logits of a step and the next step's recurrent product both
            # read h, so one product h [W_out | R0] ``(B, V + G)`` gives both (the weights
            # are read once per token instead of in two calls; see step()).
            V = W_out.shape[1]
            self.joint = torch.cat([W_out, recurrent], dim=1)
            self.joint_bias = torch.cat([self.b_out, self.b_out.new_zeros(width)])
            self.joint_out = torch.empty(B, V + width, device=self.device, dtype=self.dtype)
            self.logits, self.carried = self.joint_out[:, :V], self.joint_out[:, V:]  # (B, V), (B, G) views
            self.W_out, self.recurrent = self.joint[:, :V], self.joint[:, V:]
            self._joint_product()
        if cell in ("tanh", "relu"):
            self._cell = self._tanh_cell if cell == "tanh" else self._relu_cell
        elif cell == "gru":
            self.rz, self.r, self.z = self.pre[:, :2 * H], self.pre[:, :H], self.pre[:, H:2 * H]
            self.n, self.n_h = self.pre[:, 2 * H:3 * H], self.pre[:, 3 * H:]
            self._cell = self._gru_cell
        elif cell == "lstm":
            self.cells = torch.zeros(L, B, H, device=self.device, dtype=self.dtype)  # C
            self.scratch = torch.empty(B, H, device=self.device, dtype=self.dtype)  # tanh(c)
            self.ifo, self.g = self.pre[:, :3 * H], self.pre[:, 3 * H:]
            self.i, self.f, self.o = self.pre[:, :H], self.pre[:, H:2 * H], self.pre[:, 2 * H:3 * H]
            self._cell = self._lstm_cell
        else:
            raise UsageError(f"unknown cell '{cell}' for stepping; choose tanh, relu, gru or lstm")

    # ---- one layer's nonlinearity: P -> new h (and c), in place -------------------
    def _tanh_cell(self, layer: int) -> None:
        torch.tanh(self.pre, out=self.h[layer])

    def _relu_cell(self, layer: int) -> None:
        torch.clamp(self.pre, min=0.0, out=self.h[layer])

    def _gru_cell(self, layer: int) -> None:
        self.rz.sigmoid_()
        self.n.addcmul_(self.r, self.n_h).tanh_()
        self.h[layer].sub_(self.n).mul_(self.z).add_(self.n)  # h <- n + z (h - n)

    def _lstm_cell(self, layer: int) -> None:
        self.ifo.sigmoid_()
        self.g.tanh_()
        c = self.cells[layer]
        c.mul_(self.f).addcmul_(self.i, self.g)
        torch.tanh(c, out=self.scratch)
        torch.mul(self.o, self.scratch, out=self.h[layer])

    # ---- the step ------------------------------------------------------------------
    def _joint_product(self) -> None:
        """One layer: ``[logits | h R0] = h [W_out | R0] + [b_out | 0]`` from the current ``h``."""
        torch.addmm(self.joint_bias, self.h[0], self.joint, out=self.joint_out)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.joint is not None:  # h R0 was computed with the previous step's logits
            torch.index_select(self.table, 0, tokens, out=self.pre)
            self.pre.add_(self.carried)
            self._cell(0)
            self._joint_product()
            return self.logits
        torch.index_select(self.table, 0, tokens, out=self.pre)  # T0[x]: the input product and biases
        self.pre.addmm_(self.h[0], self.recurrent)
        self._cell(0)
        for layer, (weight, bias) in enumerate(self.upper, start=1):
            torch.addmm(bias, self.windows[layer - 1], weight, out=self.pre)
            self._cell(layer)
        return torch.addmm(self.b_out, self.last, self.W_out, out=self.logits)

    def load_state(self, state: State) -> None:
        h = state[0] if self.state_is_tuple else state
        self.hidden.view(self.batch_size, self.num_layers, self.hidden_size).copy_(_as_rows(h, self.batch_size))
        if self.cell == "lstm":
            self.cells.copy_(_as_rows(state[1], self.batch_size).transpose(0, 1))
        if self.joint is not None:
            self._joint_product()

    def state(self) -> State:
        h = self.hidden.view(self.batch_size, self.num_layers, self.hidden_size).transpose(0, 1).contiguous()
        return (h, self.cells.clone()) if self.cell == "lstm" else h


class ForwardStepper(Stepper):
    """Any :class:`RecurrentLM`: one ``model.forward`` call per token (the model must be in eval mode)."""

    def __init__(self, model: RecurrentLM, batch_size: int, mask_unk: bool) -> None:
        first = next(model.parameters())
        super().__init__(batch_size, model.vocab_size, first.device, first.dtype)
        self.model, self.mask_unk = model, mask_unk
        self._state = model.begin_state(batch_size, self.device)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, self._state = self.model(tokens.view(-1, 1), self._state)
        self.logits.copy_(logits[:, -1])
        if self.mask_unk:
            self.logits[:, 0] = -float("inf")
        return self.logits

    def load_state(self, state: State) -> None:
        self._state = map_state(lambda s: s.expand(s.shape[0], self.batch_size, *s.shape[2:]).clone(), state)

    def state(self) -> State:
        return map_state(lambda s: s.clone(), self._state)


class ParallelStepper(Stepper):
    """minGRU / minLSTM stacks (:mod:`rnnlab.models.parallel`), one token per step.

    Per layer: ``u = LayerNorm(x)``, ``P = b + u W^T`` into a buffer, then in place
    (minGRU) ``h <- h + z (v - h)`` or (minLSTM) ``h <- (f h + i v) / (f + i)``,
    ``x <- x + h``, and the MLP ``x <- x + b_2 + GELU(b_1 + LayerNorm(x) W_1^T) W_2^T``.
    ``S`` is ``(L, B, D)`` here (the model's own state layout).
    """

    def __init__(self, model, batch_size: int, mask_unk: bool) -> None:
        weight = model.output.weight
        super().__init__(batch_size, model.vocab_size, weight.device, weight.dtype)
        B, D = batch_size, model.hidden_size
        self.cell, self.width, self.num_layers = model.cell, D, model.num_layers
        self.embedding = _snapshot(model.embedding.weight)
        self.layers = []
        for block in model.blocks:
            mlp = None
            if block.mlp is not None:
                norm, first, _, second, _ = block.mlp
                mlp = (_norm(norm), _snapshot(first.weight.t()), _snapshot(first.bias),
                       _snapshot(second.weight.t()), _snapshot(second.bias))
            self.layers.append((_norm(block.norm), _snapshot(block.gates.weight.t()), _snapshot(block.gates.bias), mlp))
        self.final_norm = _norm(model.norm)
        self.W_out, self.b_out = _snapshot(weight.t()), _snapshot(model.output.bias)
        if mask_unk:
            self.b_out[0] = -float("inf")
        self.hidden = torch.zeros(self.num_layers, B, D, device=self.device, dtype=self.dtype)
        self.x = torch.empty(B, D, device=self.device, dtype=self.dtype)
        self.pre = torch.empty(B, self.layers[0][1].shape[1], device=self.device, dtype=self.dtype)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        x, P, D = self.x, self.pre, self.width
        torch.index_select(self.embedding, 0, tokens, out=x)
        for layer, ((norm_w, norm_b, eps), W, b, mlp) in enumerate(self.layers):
            h = self.hidden[layer]
            torch.addmm(b, torch.layer_norm(x, (D,), norm_w, norm_b, eps), W, out=P)
            if self.cell == "mingru":
                z, v = P[:, :D].sigmoid_(), P[:, D:]
                h.add_(v.sub_(h).mul_(z))  # h + z (v - h) = (1 - z) h + z v
            else:
                f, i, v = P[:, :D].sigmoid_(), P[:, D:2 * D].sigmoid_(), P[:, 2 * D:]
                h.mul_(f).addcmul_(i, v).div_(f.add_(i))  # (f h + i v) / (f + i)
            x.add_(h)
            if mlp is not None:
                (mlp_w, mlp_b, mlp_eps), W_1, b_1, W_2, b_2 = mlp
                inner = torch.nn.functional.gelu(torch.addmm(b_1, torch.layer_norm(x, (D,), mlp_w, mlp_b, mlp_eps), W_1))
                x.add_(b_2).addmm_(inner, W_2)
        norm_w, norm_b, eps = self.final_norm
        return torch.addmm(self.b_out, torch.layer_norm(x, (D,), norm_w, norm_b, eps), self.W_out, out=self.logits)

    def load_state(self, state: State) -> None:
        self.hidden.copy_(_as_rows(state, self.batch_size).transpose(0, 1))

    def state(self) -> State:
        return self.hidden.clone()


def _norm(norm: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor, float]:
    return _snapshot(norm.weight), _snapshot(norm.bias), norm.eps


# ---- building steppers from the models we know -------------------------------------
def _snapshot(tensor: torch.Tensor) -> torch.Tensor:
    """A detached, contiguous copy: the stepper must not follow later weight updates or build graphs."""
    return tensor.detach().clone(memory_format=torch.contiguous_format)


def _scratch_stepper(model, batch_size: int, mask_unk: bool) -> LayeredStepper:
    # A_t = X_t W_xh + H_{t-1} W_hh + b_h: the table row W_xh[x] + b_h, then h @ W_hh
    table = _snapshot(model.W_xh + model.b_h)
    return LayeredStepper("tanh", table, _snapshot(model.W_hh), [], _snapshot(model.W_hq), _snapshot(model.b_q),
                          model.hidden_size, batch_size, mask_unk, state_is_tuple=False)


def _arrange_gates(cell: str, W_ih: torch.Tensor, W_hh: torch.Tensor, b_ih: torch.Tensor,
                   b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Torch's ``(G', in)`` and ``(G', H)`` weights -> ``(in, G)`` input part, ``(H, G)`` state part, ``(G,)`` bias."""
    H = W_hh.shape[1]
    W_x, W_h = W_ih.t(), W_hh.t()
    if cell in ("tanh", "relu"):
        return W_x, W_h, b_ih + b_hh
    if cell == "lstm":
        order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        order = order.to(W_ih.device)  # [i f g o] -> [i f o g]: one sigmoid over a contiguous 3H block
        return W_x[:, order], W_h[:, order], (b_ih + b_hh)[order]
    # GRU: [r z n] -> [r z | n_x | n_h]; r and z sum both parts, n keeps them apart (r scales n_h only)
    zeros_x = W_x.new_zeros(W_x.shape[0], H)
    zeros_h = W_h.new_zeros(H, H)
    inputs = torch.cat([W_x[:, :2 * H], W_x[:, 2 * H:], zeros_x], dim=1)
    states = torch.cat([W_h[:, :2 * H], zeros_h, W_h[:, 2 * H:]], dim=1)
    bias = torch.cat([b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:], b_hh[2 * H:]])
    return inputs, states, bias


def _torch_stepper(model, batch_size: int, mask_unk: bool) -> LayeredStepper:
    rnn = model.rnn
    cell = {"RNN_TANH": "tanh", "RNN_RELU": "relu", "GRU": "gru", "LSTM": "lstm"}[rnn.mode]
    upper = []
    for layer in range(rnn.num_layers):
        W_ih, W_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        if rnn.bias:
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        else:
            b_ih = b_hh = W_hh.new_zeros(W_hh.shape[0])
        inputs, states, bias = _arrange_gates(cell, W_ih, W_hh, b_ih, b_hh)
        if layer == 0:
            table = _snapshot(model.embedding.weight @ inputs + bias)  # (V, G): exact for the identity
            recurrent = _snapshot(states)
        else:
            upper.append((_snapshot(torch.cat([inputs, states], dim=0)), _snapshot(bias)))
    output = model.output
    b_out = output.bias if output.bias is not None else output.weight.new_zeros(output.weight.shape[0])
    return LayeredStepper(cell, table, recurrent, upper, _snapshot(output.weight.t()), _snapshot(b_out),
                          rnn.hidden_size, batch_size, mask_unk, state_is_tuple=(cell == "lstm"))


def _stepper_builder(model: RecurrentLM):
    """The builder for ``model``'s exact class and layout, or None (then :class:`ForwardStepper`)."""
    # Exact types: a subclass may change forward, and the stepper would silently disagree.
    if type(model) is ScratchRNN and all(hasattr(model, n) for n in ("W_xh", "W_hh", "b_h", "W_hq", "b_q")):
        return _scratch_stepper
    if type(model) is ParallelRecurrentLM:
        return ParallelStepper
    if type(model) is TorchRecurrentLM:
        rnn, output = getattr(model, "rnn", None), getattr(model, "output", None)
        if (type(rnn) in (nn.RNN, nn.GRU, nn.LSTM) and not rnn.bidirectional
                and getattr(rnn, "proj_size", 0) == 0 and type(output) is nn.Linear
                and isinstance(getattr(model, "embedding", None), nn.Embedding)):
            return _torch_stepper
    return None


@torch.no_grad()
def make_stepper(model: RecurrentLM, batch_size: int = 1, mask_unk: bool = False) -> Stepper:
    """A :class:`Stepper` for ``model`` starting from the zero state (see :meth:`Stepper.load_state`).

    ``mask_unk`` makes the logit of ``<unk>`` (index 0) ``-inf`` (generation); without it
    the logits equal ``model.forward``'s up to float rounding.
    """
    builder = _stepper_builder(model)
    if builder is None:
        return ForwardStepper(model, batch_size, mask_unk)
    return builder(model, batch_size, mask_unk)


__all__ = ["Stepper", "LayeredStepper", "ParallelStepper", "ForwardStepper", "make_stepper"]
