"""Text generation from a recurrent language model: warm-up, then sampling.

The prefix is fed through the model first (the *warm-up period*: it only updates
the state, nothing is predicted); then each new token is chosen from the
distribution at the last position and fed back in. ``<unk>`` (index 0) is never
emitted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from rnnlab.errors import UsageError
from rnnlab.models.base import RecurrentLM


@dataclass
class Sampling:
    """How the next token is chosen from ``logits`` ``(vocab,)``.

    ``greedy`` takes the argmax; otherwise logits are divided by ``temperature``,
    restricted to the ``top_k`` most likely tokens and then to the smallest set whose
    probability reaches ``top_p`` (nucleus sampling), and sampled.
    """

    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise UsageError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise UsageError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1], got {self.top_p}")

    def choose(self, logits: torch.Tensor, generator: torch.Generator | None) -> int:
        logits = logits.float().clone()
        logits[0] = -float("inf")  # never emit <unk>
        if not torch.isfinite(logits).any():
            raise UsageError("the model gives no token but <unk> a finite score; nothing can be generated")
        if self.greedy:
            return int(logits.argmax())
        logits = logits / self.temperature
        if self.top_k and self.top_k < logits.numel():
            kth = torch.topk(logits, self.top_k).values[-1]
            logits[logits < kth] = -float("inf")
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            before = torch.cumsum(sorted_probs, 0) - sorted_probs  # mass of strictly more likely tokens
            sorted_probs[before >= self.top_p] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs.cpu(), 1, generator=generator))


@torch.no_grad()
def generate_ids(model: RecurrentLM, prefix_ids: list[int], length: int, sampling: Sampling | None = None,
                 generator: torch.Generator | None = None) -> Iterator[int]:
    """Yield ``length`` new token ids after warming up on ``prefix_ids`` (at least one id)."""
    if not prefix_ids:
        raise UsageError("generation needs a prefix of at least one token")
    if length < 0:
        raise UsageError(f"length must be >= 0, got {length}")
    sampling = sampling or Sampling()
    was_training = model.training
    model.eval()
    try:
        device = model.device
        state = model.begin_state(1, device)
        prefix = torch.tensor([prefix_ids], dtype=torch.long, device=device)
        logits, state = model(prefix, state)  # warm-up: the state absorbs the prefix
        for _ in range(length):
            token = sampling.choose(logits[0, -1], generator)
            yield token
            logits, state = model(torch.tensor([[token]], dtype=torch.long, device=device), state)
    finally:
        model.train(was_training)
