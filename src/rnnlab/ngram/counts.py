"""Vectorised n-gram counting over an encoded token stream.

n-grams are stored as a trie flattened into one sorted ``int64`` array per order:

* order 1: ``keys[0] = arange(V)`` -- every vocabulary entry, count possibly 0;
* order n >= 2: ``key = id(prefix) * V + last_token``, where ``id(prefix)`` is the
  index of the (n-1)-gram prefix in ``keys[n-2]``.

Because a key only needs ``(#distinct (n-1)-grams) * V < 2**63`` (not ``V**n``),
any order fits in 64 bits, and looking up a batch of n-grams is ``n`` calls to
``np.searchsorted``. Counting is one ``np.unique`` per order -- no Python loop
over tokens. Memory: the model holds two 8-byte numbers per distinct n-gram
(:attr:`NGramCounts.nbytes`); counting needs O(tokens) int64 temporaries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnlab.errors import DataError, UsageError


@dataclass
class NGramCounts:
    """Distinct n-grams of orders ``1..order`` and their counts.

    ``keys[n-1]`` and ``counts[n-1]`` are aligned ``(D_n,) int64`` arrays, keys sorted
    ascending (see the module docstring for the key layout).
    """

    vocab_size: int
    keys: list[np.ndarray]
    counts: list[np.ndarray]
    # suffix ids per order, filled while counting (cheap there) and used by Kneser-Ney;
    # not saved: :meth:`suffix_ids` recomputes them from the keys when absent.
    suffix: dict[int, np.ndarray] | None = None

    @property
    def order(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(sum(k.nbytes + c.nbytes for k, c in zip(self.keys, self.counts)))

    def num_ngrams(self) -> list[int]:
        """Distinct n-grams seen per order (order 1: vocabulary entries with count > 0)."""
        return [int((self.counts[0] > 0).sum())] + [len(k) for k in self.keys[1:]]

    # ---- lookups ------------------------------------------------------------------
    def context_ids(self, n: int) -> np.ndarray:
        """``(D_n,)``: index in order ``n-1`` of each order-``n`` n-gram's context (n >= 2)."""
        return self.keys[n - 1] // self.vocab_size

    def last_tokens(self, n: int) -> np.ndarray:
        return self.keys[n - 1] % self.vocab_size if n > 1 else self.keys[0]

    def find(self, n: int, keys: np.ndarray) -> np.ndarray:
        """Index of each key in order ``n``, -1 where absent (negative keys are absent)."""
        table = self.keys[n - 1]
        keys = np.asarray(keys, dtype=np.int64)
        if len(table) == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        idx = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        return np.where((keys >= 0) & (table[idx] == keys), idx, -1)

    def extend(self, n: int, prefix_ids: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Ids at order ``n`` of (order n-1 prefix id, token) pairs; -1 if absent or prefix -1."""
        keys = np.where(prefix_ids >= 0, prefix_ids * self.vocab_size + tokens, -1)
        return self.find(n, keys)

    def stream_ids(self, ids: np.ndarray) -> list[np.ndarray]:
        """For each order n, ``(T,)``: id of the n-gram *ending* at position t, -1 if absent.

        Positions ``t < n - 1`` (not enough history) are -1 as well.
        """
        tokens = np.asarray(ids, dtype=np.int64)
        T = len(tokens)
        out = [np.where(tokens < self.vocab_size, tokens, -1)]
        for n in range(2, self.order + 1):
            prev = out[-1]
            cur = np.full(T, -1, dtype=np.int64)
            if T >= n:
                # n-gram ending at t = (n-1)-gram ending at t-1, then token t.
                cur[n - 1:] = self.extend(n, prev[n - 2:T - 1], tokens[n - 1:])
            out.append(cur)
        return out

    def rows_ids(self, rows: np.ndarray) -> np.ndarray:
        """Ids of the n-grams given as a ``(m, n)`` token matrix (-1 where absent)."""
        rows = np.asarray(rows, dtype=np.int64)
        m, n = rows.shape
        ids = np.where((rows[:, 0] >= 0) & (rows[:, 0] < self.vocab_size), rows[:, 0], -1)
        for j in range(1, n):
            ids = self.extend(j + 1, ids, rows[:, j])
        return ids

    def decode(self, n: int) -> np.ndarray:
        """``(D_n, n) int64``: the tokens of every order-``n`` n-gram."""
        cols = []
        idx = np.arange(len(self.keys[n - 1]))
        for m in range(n, 0, -1):
            key = self.keys[m - 1][idx]
            if m == 1:
                cols.append(key)
            else:
                cols.append(key % self.vocab_size)
                idx = key // self.vocab_size
        return np.stack(cols[::-1], axis=1)

    def suffix_ids(self, n: int) -> np.ndarray:
        """``(D_n,)``: id at order ``n-1`` of each order-``n`` n-gram's suffix (drop the first token)."""
        if self.suffix is not None and n in self.suffix:
            return self.suffix[n]
        return self.rows_ids(self.decode(n)[:, 1:])

    def as_dict(self, n: int) -> dict[tuple[int, ...], int]:
        """``{token tuple: count}`` of order ``n`` (count > 0 only); for tests and inspection."""
        rows, counts = self.decode(n), self.counts[n - 1]
        return {tuple(int(x) for x in row): int(c) for row, c in zip(rows, counts) if c > 0}


def count_ngrams(ids: np.ndarray, order: int, vocab_size: int) -> NGramCounts:
    """Count every n-gram of orders ``1..order`` in the 1-D token stream ``ids``.

    ``ids`` values must lie in ``[0, vocab_size)``. The stream is continuous: an
    n-gram is any ``n`` consecutive tokens (no sentence boundaries).
    """
    if int(order) != order or order < 1:
        raise UsageError(f"n-gram order must be an integer >= 1, got {order}")
    if vocab_size < 1:
        raise UsageError(f"vocabulary size must be >= 1, got {vocab_size}")
    tokens = np.asarray(ids).astype(np.int64, copy=False)
    if tokens.ndim != 1:
        raise DataError(f"expected a 1-D token array, got shape {tokens.shape}")
    if len(tokens) == 0:
        raise DataError("cannot count n-grams of an empty token stream")
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise DataError(f"token ids must lie in [0, {vocab_size}); got {tokens.min()}..{tokens.max()}")
    keys = [np.arange(vocab_size, dtype=np.int64)]
    counts = [np.bincount(tokens, minlength=vocab_size).astype(np.int64)]
    ids_at = tokens  # id of the (n-1)-gram starting at each position
    suffix = {}
    for n in range(2, order + 1):
        count = len(tokens) - n + 1
        if count <= 0:
            keys.append(np.zeros(0, dtype=np.int64))
            counts.append(np.zeros(0, dtype=np.int64))
            ids_at = ids_at[:0]
            continue
        if len(keys[-1]) and (len(keys[-1]) - 1) > (2 ** 63 - 1 - vocab_size) // vocab_size:
            raise UsageError(f"too many distinct {n - 1}-grams to index {n}-grams in 64 bits")
        packed = ids_at[:count] * vocab_size + tokens[n - 1:]
        uniq, inverse, cnt = np.unique(packed, return_inverse=True, return_counts=True)
        keys.append(uniq)
        counts.append(cnt.astype(np.int64))
        inverse = inverse.reshape(-1).astype(np.int64)
        # the n-gram at position i ends with the (n-1)-gram at position i + 1
        suffix[n] = np.empty(len(uniq), dtype=np.int64)
        suffix[n][inverse] = ids_at[1:count + 1]
        ids_at = inverse
    return NGramCounts(vocab_size=int(vocab_size), keys=keys, counts=counts, suffix=suffix)


def _merge(keys: list[np.ndarray], counts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys of several (keys, counts) pairs with their counts summed (exact int64)."""
    if len(keys) == 1:
        return keys[0], counts[0]
    allk, allc = np.concatenate(keys), np.concatenate(counts)
    order = np.argsort(allk, kind="stable")
    allk, allc = allk[order], allc[order]
    starts = np.flatnonzero(np.r_[True, allk[1:] != allk[:-1]])
    return allk[starts], np.add.reduceat(allc, starts).astype(np.int64)


def count_ngrams_chunked(ids: np.ndarray, order: int, vocab_size: int,
                         chunk_tokens: int = 1 << 22) -> NGramCounts:
    """:func:`count_ngrams` for a stream too large for its O(tokens) int64 temporaries
    (a memory-mapped prepared corpus): the same keys and counts, with memory
    O(``chunk_tokens`` + the distinct n-grams) whatever the stream length.

    Orders are counted one after another; each chunk of ``ids`` (plus ``order - 1``
    tokens of overlap, so n-grams across chunk edges count once) is read again per
    order, and its prefix ids are looked up in the already complete lower order
    (``np.searchsorted``). The suffix ids are not kept (Kneser-Ney recomputes them).
    Costs about ``order**2 / 2`` reads of the stream instead of one.
    """
    if int(order) != order or order < 1:
        raise UsageError(f"n-gram order must be an integer >= 1, got {order}")
    if vocab_size < 1:
        raise UsageError(f"vocabulary size must be >= 1, got {vocab_size}")
    if ids.ndim != 1:
        raise DataError(f"expected a 1-D token array, got shape {ids.shape}")
    total = len(ids)
    if total == 0:
        raise DataError("cannot count n-grams of an empty token stream")
    step = max(int(chunk_tokens), 1)
    unigrams = np.zeros(vocab_size, dtype=np.int64)
    for s in range(0, total, step):
        part = np.asarray(ids[s:s + step]).astype(np.int64)
        if part.min() < 0 or part.max() >= vocab_size:
            raise DataError(f"token ids must lie in [0, {vocab_size}); got {part.min()}..{part.max()}")
        unigrams += np.bincount(part, minlength=vocab_size)
    keys, counts = [np.arange(vocab_size, dtype=np.int64)], [unigrams]
    for n in range(2, order + 1):
        num = total - n + 1  # n-grams in the stream
        if num <= 0:
            keys.append(np.zeros(0, dtype=np.int64))
            counts.append(np.zeros(0, dtype=np.int64))
            continue
        if len(keys[-1]) and (len(keys[-1]) - 1) > (2 ** 63 - 1 - vocab_size) // vocab_size:
            raise UsageError(f"too many distinct {n - 1}-grams to index {n}-grams in 64 bits")
        acc_k, acc_c = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pend_k: list[np.ndarray] = []
        pend_c: list[np.ndarray] = []
        for s in range(0, num, step):
            e = min(s + step, num)  # this chunk counts the n-grams starting in [s, e)
            t = np.asarray(ids[s:e + n - 1]).astype(np.int64)
            prefix = t  # ids of the m-grams starting at each position, m = 1 .. n-1
            for m in range(2, n):
                prefix = np.searchsorted(keys[m - 1], prefix[:-1] * vocab_size + t[m - 1:])
            packed = prefix[:e - s] * vocab_size + t[n - 1:n - 1 + e - s]
            uniq, cnt = np.unique(packed, return_counts=True)
            pend_k.append(uniq)
            pend_c.append(cnt.astype(np.int64))
            if sum(len(k) for k in pend_k) > max(len(acc_k), step):  # amortised merging
                acc_k, acc_c = _merge([acc_k] + pend_k, [acc_c] + pend_c)
                pend_k, pend_c = [], []
        acc_k, acc_c = _merge([acc_k] + pend_k, [acc_c] + pend_c)
        keys.append(acc_k)
        counts.append(acc_c)
    return NGramCounts(vocab_size=int(vocab_size), keys=keys, counts=counts, suffix=None)
