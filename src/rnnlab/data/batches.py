"""Minibatches of ``(X, Y)`` for language models: random sampling and sequential partitioning.

Both read a 1-D NumPy array (in memory or a ``numpy.memmap`` of a prepared corpus,
:mod:`rnnlab.data.prepare`) and yield int64 tensors ``X, Y: (rows, num_steps)`` with
``Y[:, t] == X[:, t + 1]`` within the stream. Only the rows a batch needs are read, so a
memory-mapped corpus is never loaded whole.

The data order of an epoch is a pure function of ``(seed, epoch)``: there is no
iterator state to save for an exact resume, and every process of a distributed run
computes the same order. Fixes relative to d2l 0.17: the random offset is drawn
from ``[0, num_steps - 1]`` in both samplers (d2l's sequential sampler used the
inclusive ``random.randint(0, num_steps)``), narrowed on corpora so short that a
large offset would leave no complete batch: an epoch is never empty.

Distributed runs: ``batch_size`` is the *global* batch. With ``world_size`` ranks
each rank gets ``b = batch_size // world_size`` rows (``batch_size`` must divide
evenly), rows ``[rank * b, (rank + 1) * b)`` of every global batch, for both samplers.
Every rank therefore yields exactly as many batches as a single process would, and
concatenating the ranks' ``X`` along dim 0 gives the single-process batch.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from rnnlab.checks import integer
from rnnlab.errors import DataError, UsageError

SAMPLINGS = ("random", "sequential")
Batch = tuple[torch.Tensor, torch.Tensor]


def _check(corpus: np.ndarray, batch_size: int, num_steps: int) -> None:
    """The arguments of a sampler, before any is used."""
    for value, name in ((batch_size, "batch_size"), (num_steps, "num_steps")):
        integer(value, name)  # the type; the range below, in the message the CLI's rows know
    if batch_size < 1 or num_steps < 1:
        raise UsageError(f"batch_size and num_steps must be positive, got {batch_size} and {num_steps}")
    if isinstance(corpus, (str, bytes)) or np.ndim(corpus) != 1:
        raise UsageError(f"corpus must be a one-dimensional array of token ids, got "
                         f"{type(corpus).__name__} of shape {list(np.shape(corpus))}")
    need = batch_size * num_steps + 1
    if len(corpus) < need:
        raise DataError(
            f"corpus has {len(corpus)} tokens, fewer than one batch needs "
            f"(batch_size * num_steps + 1 = {need}); use a smaller --batch-size or --num-steps")


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise UsageError(f"rng must be a numpy.random.Generator (numpy.random.default_rng(seed)), got "
                         f"{type(rng).__name__}")


def _check_shard(batch_size: int, rank: int, world_size: int) -> int:
    """Rows per rank of a global batch of ``batch_size`` rows."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"rank {rank} is outside world size {world_size}")
    if batch_size % world_size:
        raise UsageError(f"the batch size {batch_size} is the global batch and must be a multiple of the "
                         f"{world_size} processes; use --batch-size {max(1, batch_size // world_size) * world_size}")
    return batch_size // world_size


def _draw_offset(length: int, batch_size: int, num_steps: int, rng: np.random.Generator) -> int:
    """Random start in ``[0, num_steps - 1]``, narrowed so that one full batch always fits."""
    high = min(num_steps - 1, length - batch_size * num_steps - 1)
    return int(rng.integers(0, high + 1))


def smallest_index_dtype(n: int) -> np.dtype:
    """The smallest unsigned integer dtype holding ``0..n-1`` (the epoch permutation's)."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def permutation(n: int, rng: np.random.Generator) -> np.ndarray:
    """``rng.permutation(n)`` in the smallest unsigned dtype: the same values (numpy's
    ``permutation(int)`` shuffles an ``arange`` in place; the draws do not depend on the
    dtype), at 4 instead of 8 bytes per subsequence for any corpus under 4 G subsequences."""
    order = np.arange(n, dtype=smallest_index_dtype(max(n, 1)))
    rng.shuffle(order)
    return order


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))


def random_batches(corpus: np.ndarray, batch_size: int, num_steps: int,
                   rng: np.random.Generator, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
    """Random sampling: disjoint subsequences from a random offset, in shuffled order.

    Every subsequence is used at most once per epoch; adjacent minibatches are not
    adjacent in the text, so the hidden state must be reset for each batch. Yields
    ``(batch_size // world_size, num_steps)`` tensors: this rank's rows of each global batch.
    """
    _check(corpus, batch_size, num_steps)
    _check_rng(rng)
    rows = _check_shard(batch_size, rank, world_size)
    offset = _draw_offset(len(corpus), batch_size, num_steps, rng)
    num_subseqs = (len(corpus) - offset - 1) // num_steps
    order = permutation(num_subseqs, rng)  # every rank draws the same global order
    steps = np.arange(num_steps)
    for first in range(0, (num_subseqs // batch_size) * batch_size, batch_size):
        mine = order[first + rank * rows:first + (rank + 1) * rows].astype(np.int64)
        index = offset + num_steps * mine[:, None] + steps  # (rows, steps): only this rank's tokens are read
        yield _to_tensor(corpus[index]), _to_tensor(corpus[index + 1])


def sequential_batches(corpus: np.ndarray, batch_size: int, num_steps: int,
                       rng: np.random.Generator, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
    """Sequential partitioning: row ``i`` of batch ``k + 1`` continues row ``i`` of batch ``k``.

    The stream (from a random offset) is cut into ``batch_size`` equal rows, each
    read left to right ``num_steps`` tokens at a time, so the hidden state can be
    carried from one batch to the next. A rank keeps its rows of that global partition
    (the same rows every batch), so its carried state stays correct per row.
    """
    _check(corpus, batch_size, num_steps)
    _check_rng(rng)
    rows = _check_shard(batch_size, rank, world_size)
    offset = _draw_offset(len(corpus), batch_size, num_steps, rng)
    row_len = (len(corpus) - offset - 1) // batch_size
    span = row_len * batch_size
    # Views, not copies: on a memmap only the slices taken below are read.
    xs = corpus[offset:offset + span].reshape(batch_size, row_len)[rank * rows:(rank + 1) * rows]
    ys = corpus[offset + 1:offset + 1 + span].reshape(batch_size, row_len)[rank * rows:(rank + 1) * rows]
    for start in range(0, (row_len // num_steps) * num_steps, num_steps):
        yield _to_tensor(xs[:, start:start + num_steps]), _to_tensor(ys[:, start:start + num_steps])


class BatchIterator:
    """Re-iterable minibatches of one token array; each ``iter()`` is one epoch.

    ``epoch`` selects the data order: ``iter(loader)`` uses ``loader.epoch`` and then
    increments it, so ``loader.epoch = k`` before iterating replays epoch ``k``
    exactly (what resume does). ``rank``/``world_size`` shard the data for
    distributed training (see the module docstring): ``batch_size`` is the global
    batch, each rank yields its ``batch_size // world_size`` rows of every global batch,
    and every rank yields the same number of batches.
    """

    def __init__(self, corpus: np.ndarray, batch_size: int, num_steps: int,
                 sampling: str = "random", seed: int = 0, epoch: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if sampling not in SAMPLINGS:
            raise UsageError(f"unknown sampling '{sampling}'; choose one of {', '.join(SAMPLINGS)}")
        _check(corpus, batch_size, num_steps)
        self.rows = _check_shard(batch_size, rank, world_size)
        self.sampling, self.seed, self.epoch = sampling, seed, epoch
        self.rank, self.world_size = rank, world_size
        self.corpus, self.batch_size, self.num_steps = corpus, batch_size, num_steps

    def rng_for(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def __len__(self) -> int:
        """Batches per epoch (the smallest over offsets, so it never overstates).

        Depends only on the corpus length and the global batch, so it is the same on
        every rank; so is the number an epoch actually yields (the offset is common).
        """
        max_offset = min(self.num_steps - 1, len(self.corpus) - self.batch_size * self.num_steps - 1)
        usable = len(self.corpus) - max_offset - 1
        if self.sampling == "random":
            return (usable // self.num_steps) // self.batch_size
        return (usable // self.batch_size) // self.num_steps

    def __iter__(self) -> Iterator[Batch]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        rng = self.rng_for(epoch)
        sampler = sequential_batches if self.sampling == "sequential" else random_batches
        yield from sampler(self.corpus, self.batch_size, self.num_steps, rng, self.rank, self.world_size)
