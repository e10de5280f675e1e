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
"""
from __future__ import annotations

import numpy as np
import torch

from rnnlab.models import model_kind


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
