"""Per-step gradient norms of a :class:`~rnnlab.training.loop.Trainer` run.

The trainer logs the gradient norm (before clipping) only as a mean and a maximum per
evaluation. Questions such as "how noisy is the gradient under each BPTT strategy" or
"what does clipping cut off" need every step's value. :class:`GradNormTrace` reads it
without touching the training loop: on a CPU the trainer moves each step's norm into
its progress counters (``grad_norm_sum``/``grad_norm_count``) before the optimizer
steps, so an optimizer step pre-hook sees the sum grow by exactly that step's norm.
"""
from __future__ import annotations

import math

from rnnlab.errors import UsageError


class GradNormTrace:
    """Record the pre-clipping gradient norm of every optimizer step of ``trainer``.

    Attach before ``trainer.fit()``; ``norms`` then holds one float per step (one per
    epoch under full BPTT, which makes one update per epoch). CPU only: on an
    accelerator the trainer reads its totals back every 50 steps, not every step.
    """

    def __init__(self, trainer) -> None:
        if trainer.device.type != "cpu":
            raise UsageError(f"a per-step gradient-norm trace needs training on the CPU, not {trainer.device}")
        self.trainer = trainer
        self.norms: list[float] = []
        self._last_sum, self._last_count = 0.0, 0
        self._handle = trainer.optimizer.register_step_pre_hook(self._record)

    def _record(self, optimizer, args, kwargs) -> None:
        progress = self.trainer.progress
        total, count = progress.grad_norm_sum, progress.grad_norm_count
        # An evaluation resets the counters to zero: the first step after it is the whole sum.
        self.norms.append(total - self._last_sum if count == self._last_count + 1 else total)
        self._last_sum, self._last_count = total, count

    def remove(self) -> None:
        self._handle.remove()

    def summary(self) -> dict:
        """Count, mean, variance (population), maximum and last value of the recorded norms."""
        values = self.norms
        if not values:
            return {"steps": 0, "mean": None, "variance": None, "max": None, "last": None}
        mean = math.fsum(values) / len(values)
        variance = math.fsum((v - mean) ** 2 for v in values) / len(values)
        return {"steps": len(values), "mean": mean, "variance": variance, "max": max(values), "last": values[-1]}
