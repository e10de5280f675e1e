"""Random sampling and sequential partitioning: invariants under hypothesis."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.data.batches import BatchIterator, random_batches, sequential_batches
from rnnlab.errors import DataError, UsageError

shapes = st.tuples(st.integers(20, 400), st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**31))


def batches(kind, length, batch_size, num_steps, seed):
    corpus = np.arange(length, dtype=np.int64)  # value == position, so positions are visible
    make = random_batches if kind == "random" else sequential_batches
    return list(make(corpus, batch_size, num_steps, np.random.default_rng(seed)))


def valid(length, batch_size, num_steps):
    return length >= batch_size * num_steps + 1


@settings(max_examples=150, deadline=None)
@given(shapes, st.sampled_from(["random", "sequential"]))
def test_shapes_dtype_and_targets_are_next_tokens(shape, kind):
    length, batch_size, num_steps, seed = shape
    if not valid(length, batch_size, num_steps):
        return
    out = batches(kind, length, batch_size, num_steps, seed)
    assert out, "a corpus of at least one batch yields at least one batch"
    for X, Y in out:
        assert X.dtype == Y.dtype == torch.int64
        assert X.shape == Y.shape == (batch_size, num_steps)
        assert torch.equal(Y, X + 1)  # the next token
        assert torch.equal(X[:, 1:], X[:, :-1] + 1)  # contiguous subsequences
        assert int(Y.max()) < length


@settings(max_examples=150, deadline=None)
@given(shapes)
def test_random_sampling_never_reuses_a_subsequence(shape):
    length, batch_size, num_steps, seed = shape
    if not valid(length, batch_size, num_steps):
        return
    out = batches("random", length, batch_size, num_steps, seed)
    starts = torch.cat([X[:, 0] for X, _ in out]).tolist()
    assert len(starts) == len(set(starts))
    offsets = {s % num_steps for s in starts}
    assert len(offsets) == 1 and offsets.pop() <= num_steps - 1  # one offset per epoch, in range
    tokens = torch.cat([X.reshape(-1) for X, _ in out]).tolist()
    assert len(tokens) == len(set(tokens))  # disjoint


@settings(max_examples=150, deadline=None)
@given(shapes)
def test_sequential_rows_continue_across_batches(shape):
    length, batch_size, num_steps, seed = shape
    if not valid(length, batch_size, num_steps):
        return
    out = batches("sequential", length, batch_size, num_steps, seed)
    assert int(out[0][0][0, 0]) <= num_steps - 1  # the offset
    for (X1, _), (X2, _) in zip(out, out[1:]):
        assert torch.equal(X2[:, 0], X1[:, -1] + 1)  # row i of batch k+1 continues row i of batch k


@pytest.mark.parametrize("kind", ["random", "sequential"])
def test_offsets_cover_exactly_zero_to_num_steps_minus_one(kind):
    num_steps = 5
    firsts = set()
    for seed in range(300):
        out = batches(kind, 200, 2, num_steps, seed)
        firsts.add(int(out[0][0][0, 0]) % num_steps if kind == "random" else int(out[0][0][0, 0]))
    assert firsts == set(range(num_steps))  # d2l's sequential sampler could also give num_steps


@settings(max_examples=50, deadline=None)
@given(shapes, st.sampled_from(["random", "sequential"]))
def test_iterator_is_deterministic_per_seed_and_epoch(shape, sampling):
    length, batch_size, num_steps, seed = shape
    if not valid(length, batch_size, num_steps):
        return
    corpus = np.arange(length)
    a = BatchIterator(corpus, batch_size, num_steps, sampling, seed=seed)
    b = BatchIterator(corpus, batch_size, num_steps, sampling, seed=seed)
    epoch0 = [X for X, _ in a]
    assert all(torch.equal(x, y) for x, y in zip(epoch0, [X for X, _ in b]))
    b.epoch = 0  # replaying epoch 0 gives it again
    assert all(torch.equal(x, y) for x, y in zip(epoch0, [X for X, _ in b]))
    assert len(a) <= len(epoch0)  # len() never overstates


def test_different_epochs_give_different_orders():
    loader = BatchIterator(np.arange(5000), 4, 10, "random", seed=1)
    first = [X[:, 0].tolist() for X, _ in loader]
    second = [X[:, 0].tolist() for X, _ in loader]
    assert first != second


@pytest.mark.parametrize("sampling", ["random", "sequential"])
def test_ranks_get_disjoint_data(sampling):
    corpus = np.arange(3000)
    seen = []
    for rank in range(3):
        loader = BatchIterator(corpus, 6, 10, sampling, seed=5, rank=rank, world_size=3)
        seen.append({int(t) for X, _ in loader for t in X.reshape(-1)})
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])


@settings(max_examples=120, deadline=None)
@given(st.integers(2, 3000), st.integers(1, 4), st.integers(1, 4), st.integers(1, 12),
       st.sampled_from(["random", "sequential"]), st.integers(0, 3))
def test_ranks_split_the_global_batch(length, world_size, rows, num_steps, sampling, epoch):
    """batch_size is global: every rank has the same len() and yields as many batches,
    and the ranks' X (and Y) concatenated along dim 0 are the 1-process batch."""
    batch_size = rows * world_size
    if not valid(length, batch_size, num_steps):
        return
    corpus = np.arange(length, dtype=np.int64)
    whole = BatchIterator(corpus, batch_size, num_steps, sampling, seed=3, epoch=epoch)
    ranks = [BatchIterator(corpus, batch_size, num_steps, sampling, seed=3, epoch=epoch, rank=r,
                           world_size=world_size) for r in range(world_size)]
    assert {len(r) for r in ranks} == {len(whole)}
    expected = list(whole)
    per_rank = [list(r) for r in ranks]
    assert {len(b) for b in per_rank} == {len(expected)}  # no rank waits at a last all-reduce
    for k, (X, Y) in enumerate(expected):
        assert all(b[k][0].shape == (rows, num_steps) for b in per_rank)
        assert torch.equal(torch.cat([b[k][0] for b in per_rank]), X)
        assert torch.equal(torch.cat([b[k][1] for b in per_rank]), Y)


def test_batch_size_must_divide_among_ranks():
    with pytest.raises(UsageError, match="multiple of the 3 processes; use --batch-size 3"):
        BatchIterator(np.arange(3000), 4, 10, rank=0, world_size=3)
    with pytest.raises(UsageError, match="outside world size"):
        BatchIterator(np.arange(3000), 4, 10, rank=2, world_size=2)


def test_random_permutation_is_compact_and_unchanged():
    """The epoch order is numpy's permutation(n), stored in the smallest dtype."""
    from rnnlab.data.batches import permutation
    for n in (1, 255, 256, 70_000):
        order = permutation(n, np.random.default_rng([7, 1]))
        assert order.dtype == (np.uint8 if n <= 256 else np.uint16 if n <= 65536 else np.uint32)
        assert np.array_equal(order, np.random.default_rng([7, 1]).permutation(n))


def test_memmap_rows_are_read_not_the_whole_corpus(tmp_path):
    """A memory-mapped corpus gives the same batches as the array in memory."""
    corpus = (np.arange(5000) % 251).astype(np.uint8)
    path = tmp_path / "ids.bin"
    corpus.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    for sampling in ("random", "sequential"):
        for rank in range(2):
            a = list(BatchIterator(corpus, 4, 7, sampling, seed=1, rank=rank, world_size=2))
            b = list(BatchIterator(mapped, 4, 7, sampling, seed=1, rank=rank, world_size=2))
            assert len(a) == len(b) and all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b))


def test_too_short_and_bad_sizes():
    with pytest.raises(DataError, match=r"batch_size \* num_steps \+ 1 = 21"):
        BatchIterator(np.arange(20), 4, 5)
    with pytest.raises(UsageError):
        BatchIterator(np.arange(100), 0, 5)
    with pytest.raises(UsageError, match="unknown sampling"):
        BatchIterator(np.arange(100), 2, 5, sampling="shuffled")
