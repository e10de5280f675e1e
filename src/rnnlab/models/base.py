"""The one interface every recurrent language model implements.

Shapes (``batch_first`` everywhere a user sees tensors):

* ``X``: ``(batch, steps)`` int64 token indices
* ``logits``: ``(batch, steps, vocab_size)`` float
* ``state``: a tensor ``(layers, batch, hidden)`` or a tuple of them (LSTM: ``(h, c)``)

``forward(X, state, grad_scale=None) -> (logits, state)``. ``grad_scale``, when
given, is a ``(steps,)`` tensor ``xi``: the gradient that flows from the state at
step ``t`` back into the state at step ``t - 1`` is multiplied by ``xi[t]``
(randomized truncation of BPTT; ``xi[0]`` scales the gradient into the initial
state). ``None`` means ordinary backpropagation.

``config()`` returns a JSON-serialisable dict from which :func:`rnnlab.models.build_model`
rebuilds the same architecture; checkpoints store it.
"""
from __future__ import annotations

import contextlib

from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.errors import TrainingError, UsageError

State = Union[torch.Tensor, tuple[torch.Tensor, ...]]


class RecurrentLM(nn.Module):
    """Base class: subclasses set ``name`` and implement ``begin_state``/``forward``/``config``."""

    name: str = ""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size

    def begin_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        raise NotImplementedError

    def forward(self, X: torch.Tensor, state: State, grad_scale: torch.Tensor | None = None):
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def token_loss(logits: torch.Tensor, Y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``logits`` ``(B, T, V)`` against ``Y`` ``(B, T)`` in nats; the softmax
    and the loss stay in float32 whatever the precision of the products."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), Y.reshape(-1), reduction=reduction)


def map_state(fn: Callable[[torch.Tensor], torch.Tensor], state: State) -> State:
    if isinstance(state, tuple):
        return tuple(fn(s) for s in state)
    return fn(state)


def map_state_pair(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], first: State, second: State) -> State:
    """``fn`` over the matching tensors of two states of one model."""
    if isinstance(first, tuple):
        return tuple(fn(a, b) for a, b in zip(first, second))
    return fn(first, second)


def detach_state(state: State) -> State:
    """Cut the graph between batches (truncated BPTT) while keeping the values."""
    return map_state(lambda s: s.detach(), state)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``scale`` backward."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (scale,) = ctx.saved_tensors
        return grad * scale, None


def scale_grad(state: State, scale: torch.Tensor) -> State:
    """``state`` unchanged, but gradients through it are multiplied by ``scale``."""
    return map_state(lambda s: _ScaleGrad.apply(s, scale.to(s.dtype)), state)


# Layer sizes and layer counts beyond these are refused before any allocation (a typo of a
# few zeros must be an error, not an allocator traceback or a machine swapping for an hour);
# the model registries (rnnlab.models, rnnlab.tasks.models) declare their ranges with them.
MAX_SIZE = 1 << 20
MAX_LAYERS = 1024
SIZED = ("hidden_size", "embed_size", "char_size", "char_embed_size", "char_hidden_size")


def check_positive(**sizes: int) -> None:
    for key, value in sizes.items():
        if value is None or int(value) < 1:
            raise UsageError(f"{key} must be a positive integer, got {value}")
        limit = MAX_LAYERS if key == "num_layers" else MAX_SIZE if key in SIZED else None
        if limit is not None and int(value) > limit:
            raise UsageError(f"{key} must be an integer from 1 to {limit}, got {value}")


@contextlib.contextmanager
def memory_guard(what: str = "the model", hint: str = "use smaller sizes"):
    """Turn an allocation failure while building or running ``what`` into one TrainingError."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
        if not isinstance(exc, (torch.OutOfMemoryError, MemoryError)) and "allocate" not in str(exc):
            raise
        raise TrainingError(f"{what} does not fit in memory ({str(exc).splitlines()[0][:160]}); {hint}") from None
