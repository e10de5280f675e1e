"""n-gram statistics and Zipf's law over encoded token arrays.

n-grams are counted without Python loops: each n-gram of indices is packed into
one int64 (base ``vocab_size``) and counted with ``np.unique``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnlab.data.vocab import Vocab
from rnnlab.errors import UsageError


def pack_ngrams(ids: np.ndarray, n: int, base: int) -> np.ndarray:
    """``(len(ids) - n + 1,) int64``: n-gram ``ids[i:i+n]`` as a base-``base`` number."""
    if n < 1:
        raise UsageError(f"n-gram order must be >= 1, got {n}")
    if base ** n >= 2 ** 63:
        raise UsageError(f"vocabulary of {base} is too large to pack {n}-grams into 64 bits")
    count = len(ids) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    packed = np.zeros(count, dtype=np.int64)
    for k in range(n):
        packed *= base
        packed += ids[k:k + count]
    return packed


def unpack_ngram(code: int, n: int, base: int) -> tuple[int, ...]:
    digits = []
    for _ in range(n):
        code, digit = divmod(int(code), base)
        digits.append(digit)
    return tuple(reversed(digits))


def ngram_counts(ids: np.ndarray, n: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct packed n-grams and their counts, by descending count (ties: code ascending)."""
    codes, counts = np.unique(pack_ngrams(ids, n, base), return_counts=True)
    order = np.lexsort((codes, -counts))
    return codes[order], counts[order]


def zipf_alpha(counts: np.ndarray) -> float:
    """Exponent ``alpha`` of ``freq ~ rank^-alpha``: least squares of log freq on log rank.

    Uses every distinct n-gram (counts sorted descending); NaN with fewer than two.
    """
    if len(counts) < 2:
        return float("nan")
    ranks = np.log(np.arange(1, len(counts) + 1, dtype=np.float64))
    freqs = np.log(np.asarray(counts, dtype=np.float64))
    slope = np.polyfit(ranks, freqs, 1)[0]
    return float(-slope)


@dataclass
class NgramStats:
    n: int
    top: list[tuple[str, int]]  # n-gram tokens joined by "-" (as d2l shows them), count
    distinct: int
    zipf_alpha: float
    counts: np.ndarray  # descending, for plotting


def corpus_stats(ids: np.ndarray, vocab: Vocab, orders=(1, 2, 3), top_k: int = 10) -> dict[int, NgramStats]:
    """Top n-grams, number of distinct n-grams and Zipf exponent for each order."""
    result = {}
    base = len(vocab)
    for n in orders:
        codes, counts = ngram_counts(ids, n, base)
        top = [("-".join(vocab.to_tokens(list(unpack_ngram(c, n, base)))), int(k))
               for c, k in zip(codes[:top_k], counts[:top_k])]
        result[n] = NgramStats(n=n, top=top, distinct=len(codes), zipf_alpha=zipf_alpha(counts), counts=counts)
    return result
