"""Minibatches of ``(X, Y)`` for language models: random sampling and sequential partitioning.

Both read a 1-D NumPy array (in memory or memory-mapped) and yield int64 tensors
``X, Y: (batch_size, num_steps)`` with ``Y[:, t] == X[:, t + 1]`` within the stream.

The data order of an epoch is a pure function of ``(seed, epoch)``: there is no
iterator state to save for an exact resume, and every process of a distributed run
can compute the same order. Fixes relative to d2l 0.17: the random offset is drawn
from ``[0, num_steps - 1]`` in both samplers (d2l's sequential sampler used the
inclusive ``random.randint(0, num_steps)``), narrowed on corpora so short that a
large offset would leave no complete batch: an epoch is never empty.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from rnnlab.errors import DataError, UsageError

SAMPLINGS = ("random", "sequential")
Batch = tuple[torch.Tensor, torch.Tensor]


def _check(corpus: np.ndarray, batch_size: int, num_steps: int) -> None:
    if batch_size < 1 or num_steps < 1:
        raise UsageError(f"batch_size and num_steps must be positive, got {batch_size} and {num_steps}")
    need = batch_size * num_steps + 1
    if len(corpus) < need:
        raise DataError(
            f"corpus has {len(corpus)} tokens, fewer than one batch needs "
            f"(batch_size * num_steps + 1 = {need}); use a smaller --batch-size or --num-steps")


def _draw_offset(length: int, batch_size: int, num_steps: int, rng: np.random.Generator) -> int:
    """Random start in ``[0, num_steps - 1]``, narrowed so that one full batch always fits."""
    high = min(num_steps - 1, length - batch_size * num_steps - 1)
    return int(rng.integers(0, high + 1))


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


def random_batches(corpus: np.ndarray, batch_size: int, num_steps: int,
                   rng: np.random.Generator) -> Iterator[Batch]:
    """Random sampling: disjoint subsequences from a random offset, in shuffled order.

    Every subsequence is used at most once per epoch; adjacent minibatches are not
    adjacent in the text, so the hidden state must be reset for each batch.
    """
    _check(corpus, batch_size, num_steps)
    offset = _draw_offset(len(corpus), batch_size, num_steps, rng)
    num_subseqs = (len(corpus) - offset - 1) // num_steps
    starts = offset + num_steps * rng.permutation(num_subseqs)
    steps = np.arange(num_steps)
    for first in range(0, (num_subseqs // batch_size) * batch_size, batch_size):
        index = starts[first:first + batch_size, None] + steps  # (batch, steps)
        yield _to_tensor(corpus[index]), _to_tensor(corpus[index + 1])


def sequential_batches(corpus: np.ndarray, batch_size: int, num_steps: int,
                       rng: np.random.Generator) -> Iterator[Batch]:
    """Sequential partitioning: row ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k``.

    The stream (from a random offset) is cut into ``batch_size`` equal rows, each
    read left to right ``num_steps`` tokens at a time, so the hidden state can be
    carried from one batch to the next.
    """
    _check(corpus, batch_size, num_steps)
    offset = _draw_offset(len(corpus), batch_size, num_steps, rng)
    row_len = (len(corpus) - offset - 1) // batch_size
    span = row_len * batch_size
    xs = np.asarray(corpus[offset:offset + span]).reshape(batch_size, row_len)
    ys = np.asarray(corpus[offset + 1:offset + 1 + span]).reshape(batch_size, row_len)
    for start in range(0, (row_len // num_steps) * num_steps, num_steps):
        yield _to_tensor(xs[:, start:start + num_steps]), _to_tensor(ys[:, start:start + num_steps])


class BatchIterator:
    """Re-iterable minibatches of one token array; each ``iter()`` is one epoch.

    ``epoch`` selects the data order: ``iter(loader)`` uses ``loader.epoch`` and then
    increments it, so ``loader.epoch = k`` before iterating replays epoch ``k``
    exactly (what resume does). ``rank``/``world_size`` shard the data for
    distributed training: random sampling keeps every ``world_size``-th batch of the
    common order; sequential partitioning gives each rank its own contiguous part of
    the stream so state carrying stays valid.
    """

    def __init__(self, corpus: np.ndarray, batch_size: int, num_steps: int,
                 sampling: str = "random", seed: int = 0, epoch: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if sampling not in SAMPLINGS:
            raise UsageError(f"unknown sampling '{sampling}'; choose one of {', '.join(SAMPLINGS)}")
        _check(corpus, batch_size, num_steps)
        if not 0 <= rank < world_size:
            raise UsageError(f"rank {rank} is outside world size {world_size}")
        self.sampling, self.seed, self.epoch = sampling, seed, epoch
        self.rank, self.world_size = rank, world_size
        if sampling == "sequential" and world_size > 1:
            part = (len(corpus) - 1) // world_size
            corpus = corpus[rank * part:(rank + 1) * part + 1]
            _check(corpus, batch_size, num_steps)
        self.corpus, self.batch_size, self.num_steps = corpus, batch_size, num_steps

    def rng_for(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def __len__(self) -> int:
        """Batches per epoch (the smallest over offsets, so it never overstates)."""
        max_offset = min(self.num_steps - 1, len(self.corpus) - self.batch_size * self.num_steps - 1)
        usable = len(self.corpus) - max_offset - 1
        if self.sampling == "random":
            total = (usable // self.num_steps) // self.batch_size
        else:
            return (usable // self.batch_size) // self.num_steps
        return len(range(self.rank, total, self.world_size))

    def __iter__(self) -> Iterator[Batch]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        rng = self.rng_for(epoch)
        if self.sampling == "sequential":
            yield from sequential_batches(self.corpus, self.batch_size, self.num_steps, rng)
            return
        for i, batch in enumerate(random_batches(self.corpus, self.batch_size, self.num_steps, rng)):
            if i % self.world_size == self.rank:
                yield batch
