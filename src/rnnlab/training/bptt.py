"""Backpropagation-through-time strategies (d2l 9.7; Tallec and Ollivier 2017).

* ``truncated``: gradients stop at the batch boundary. With sequential partitioning
  the hidden state is carried to the next batch (its values) but detached (its
  graph); with random sampling it is reset for every batch.
* ``full``: gradients flow through the whole training stream: one forward pass over
  every batch of the epoch with the state carried *with* its graph, then one
  backward pass and one update per epoch. Memory grows with the corpus, so a
  bound is enforced (:func:`full_bptt_megabytes`).
* ``randomized``: within each batch, the gradient that crosses from step ``t`` back
  to ``t - 1`` is multiplied by ``xi_t``, with ``xi_t = 1/p`` with probability ``p``
  and 0 otherwise (``p`` = ``bptt_keep_prob``). Since ``E[xi_t] = 1`` the gradient
  is an unbiased estimate of the batch's full-window gradient, while on average
  it only looks back about ``1 / (1 - p)`` steps.

Each strategy is an object (:func:`make_bptt` picks it from a training configuration)
that drives a model through its ``forward(X, state[, grad_scale])``: it says how many
optimizer steps an epoch has, which batches they see, and computes one step's loss with
the state it carries to the next. The language-model task delegates to it; models only
offer the ``grad_scale`` hook (:mod:`rnnlab.models.base`).
"""
from __future__ import annotations

import numpy as np
import torch

from rnnlab.errors import TrainingError
from rnnlab.models import RecurrentLM, State, detach_state, map_state, model_kind, token_loss


def randomized_scales(num_steps: int, keep_prob: float, seed: int, step: int) -> torch.Tensor:
    """``(num_steps,)`` float tensor of ``xi`` for optimizer step ``step``.

    A pure function of ``(seed, step)`` so a resumed run draws the same values.
    """
    rng = np.random.default_rng([seed, step, 7])
    keep = rng.random(num_steps) < keep_prob
    return torch.from_numpy(keep / keep_prob).float()


def full_bptt_megabytes(num_tokens: int, model_config: dict) -> float:
    """Rough size of the activations kept for one backward pass over ``num_tokens`` tokens
    (float32; per token as the model's registry entry says, see
    :meth:`rnnlab.models.ModelKind.activation_floats_per_token`)."""
    floats = model_kind(model_config.get("model")).activation_floats_per_token(model_config)
    return num_tokens * floats * 4 / 2**20


def _float32(state: State) -> State:
    return map_state(lambda s: s.float(), state)  # carried and checkpointed in float32


class Truncated:
    """Gradients stop at the batch boundary. ``carry_state`` (sequential sampling): each
    batch starts from the previous one's final state, detached; otherwise from zeros."""

    name = "truncated"

    def __init__(self, carry_state: bool) -> None:
        self.carry_state = carry_state

    def num_batches(self, loader) -> int:
        return len(loader)

    def batches(self, loader):
        return iter(loader)

    def forward(self, model: RecurrentLM, X: torch.Tensor, state: State, step: int):
        return model(X, state)

    def loss(self, model: RecurrentLM, batch, carry: State | None, step: int):
        """(mean nats per token, tokens, the state handed to the next batch or None)."""
        device = model.device
        X, Y = (t.to(device) for t in batch)
        state = carry if carry is not None and self.carry_state else model.begin_state(X.shape[0], device)
        logits, state = self.forward(model, X, state, step)
        return token_loss(logits, Y), Y.numel(), detach_state(_float32(state)) if self.carry_state else None


class Randomized(Truncated):
    """Truncated, with the per-step gradient scales ``xi`` of :func:`randomized_scales`."""

    name = "randomized"

    def __init__(self, carry_state: bool, keep_prob: float, seed: int) -> None:
        super().__init__(carry_state)
        self.keep_prob, self.seed = keep_prob, seed

    def forward(self, model: RecurrentLM, X: torch.Tensor, state: State, step: int):
        scales = randomized_scales(X.shape[1], self.keep_prob, self.seed, step).to(X.device)
        return model(X, state, scales)


class Full:
    """The whole epoch is one step: one graph over every batch with the state carried *with*
    its graph, one backward pass, one update. ``max_megabytes`` bounds the activations."""

    name = "full"

    def __init__(self, max_megabytes: float) -> None:
        self.max_megabytes = max_megabytes

    def check_memory(self, num_tokens: int, model: RecurrentLM) -> None:
        """Refuse (TrainingError) when one pass over ``num_tokens`` needs more than the bound."""
        megabytes = full_bptt_megabytes(num_tokens, model.config())
        if megabytes > self.max_megabytes:
            raise TrainingError(
                f"full BPTT over {num_tokens:,} training tokens needs about {megabytes:,.4g} MB of "
                f"activations, above the limit of {self.max_megabytes:,.4g} MB (--full-bptt-max-mb); "
                "use --bptt truncated, or fewer training tokens (--max-tokens)")

    def num_batches(self, loader) -> int:
        return 1

    def batches(self, loader):
        return iter([loader])  # one "batch": the loader itself, walked by loss()

    def loss(self, model: RecurrentLM, batch, carry: State | None, step: int):
        device, state, total_nll, tokens = model.device, None, 0.0, 0
        for X, Y in batch:
            X, Y = X.to(device), Y.to(device)
            state = model.begin_state(X.shape[0], device) if state is None else state
            logits, state = model(X, state)  # no detach: gradients reach the first batch
            state = _float32(state)
            total_nll = total_nll + token_loss(logits, Y, reduction="sum")
            tokens += Y.numel()
        return total_nll / tokens, tokens, None


def make_bptt(config) -> Truncated | Randomized | Full:
    """The strategy a validated training configuration names (``bptt``, ``sampling``,
    ``bptt_keep_prob``, ``seed``, ``full_bptt_max_mb``)."""
    carry = config.sampling == "sequential"
    if config.bptt == "full":
        return Full(config.full_bptt_max_mb)
    if config.bptt == "randomized":
        return Randomized(carry, config.bptt_keep_prob, config.seed)
    return Truncated(carry)
