"""Smoothing: n-gram counts -> backoff tables ``log p(w | h)`` and ``log bow(h)``.

Every smoothed model except add-k is stored in *backoff form*, the form of an
ARPA file: for each listed n-gram ``h w`` its full (interpolated) probability
``p(w | h)``, and for each listed context ``h`` a backoff weight ``bow(h)`` so
that for an unlisted ``h w``::

    p(w | h) = bow(h) * p(w | h')        (h' = h without its first token; bow = 1 if h unlisted)

Interpolated modified Kneser-Ney (Chen & Goodman 1998, section 3)::

    p(w | h) = max(c(hw) - D(c(hw)), 0) / c(h.) + gamma(h) * p(w | h')
    gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / c(h.)

with ``c`` the raw counts at the highest order and continuation counts
``N1+(. h w)`` (distinct left neighbours) below it, ``c(h.) = sum_w c(hw)`` and
``Nk(h.)`` the number of words following ``h`` with count ``k`` (3+: ``>= 3``).
The unigram level interpolates with the uniform distribution over the whole
vocabulary (``<unk>`` included), so every token has a non-zero probability.

Discounts per order, from the count-of-counts ``n1..n4`` of that order's counts::

    Y = n1 / (n1 + 2 n2),  D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3

Fallback: when an estimate is undefined (a zero ``n_k`` -- typical of character
data and tiny corpora) or outside ``(0, k]``, that discount takes the fixed value
``(0.5, 1.0, 1.5)[k-1]`` (the values KenLM's ``--discount_fallback`` uses), and the
order is reported as using the fallback. Discounts in ``(0, k]`` keep every
probability non-negative and every ``gamma(h) > 0``, so perplexity is finite.
"""
from __future__ import annotations

import numpy as np

from rnnlab.ngram.counts import NGramCounts

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def kn_discounts(counts: np.ndarray) -> tuple[tuple[float, float, float], bool]:
    """``((D1, D2, D3+), fallback_used)`` for one order's (adjusted) counts."""
    counts = np.asarray(counts)
    n = [int((counts == k).sum()) for k in (1, 2, 3, 4)]
    estimates = [float("nan")] * 3
    if n[0] > 0 and n[1] > 0:
        Y = n[0] / (n[0] + 2 * n[1])
        estimates[0] = 1 - 2 * Y * n[1] / n[0]
        estimates[1] = 2 - 3 * Y * n[2] / n[1]
        if n[2] > 0:
            estimates[2] = 3 - 4 * Y * n[3] / n[2]
    discounts, fallback = [], False
    for k, d in enumerate(estimates, start=1):
        if np.isfinite(d) and 0 < d <= k:
            discounts.append(float(d))
        else:
            discounts.append(FALLBACK_DISCOUNTS[k - 1])
            fallback = True
    return (discounts[0], discounts[1], discounts[2]), fallback


def continuation_counts(ngc: NGramCounts) -> list[np.ndarray]:
    """KN counts per order: ``N1+(. g)`` for orders below the highest, raw counts at it.

    ``N1+(. g)`` = number of distinct (n+1)-grams whose last n tokens are ``g``.
    """
    out = []
    for n in range(1, ngc.order):
        suffix = ngc.suffix_ids(n + 1)
        out.append(np.bincount(suffix, minlength=len(ngc.keys[n - 1])).astype(np.int64))
    out.append(ngc.counts[-1])
    return out


def _context_sums(ngc: NGramCounts, n: int, values: np.ndarray) -> np.ndarray:
    """Per context of order ``n`` (a ``(D_{n-1},)`` array; order 1: a 1-element array)."""
    if n == 1:
        return np.array([values.sum()], dtype=np.float64)
    return np.bincount(ngc.context_ids(n), weights=values, minlength=len(ngc.keys[n - 2]))


def _contexts(ngc: NGramCounts, n: int) -> np.ndarray:
    return ngc.context_ids(n) if n > 1 else np.zeros(len(ngc.keys[0]), dtype=np.int64)


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def kneser_ney_tables(ngc: NGramCounts):
    """``(logp, logbow, info)`` of interpolated modified Kneser-Ney (natural logs).

    ``logp[n-1]`` is aligned with ``ngc.keys[n-1]``; ``logbow[n-1]`` (orders below
    the highest) with the same keys, as contexts of order n+1. ``info`` holds the
    discounts per order and which orders fell back.
    """
    V = ngc.vocab_size
    kn_counts = continuation_counts(ngc)
    logp, bows, discounts, fallback = [], [], [], []
    prev_p = np.full(1, 1.0 / V)  # "order 0": uniform, one context
    for n in range(1, ngc.order + 1):
        c = kn_counts[n - 1].astype(np.float64)
        (d1, d2, d3), fell = kn_discounts(kn_counts[n - 1])
        discounts.append([d1, d2, d3])
        fallback.append(fell)
        D = np.select([c == 0, c == 1, c == 2], [0.0, d1, d2], d3)
        ctx = _contexts(ngc, n)
        total = _context_sums(ngc, n, c)
        mass = _context_sums(ngc, n, D * (c > 0))
        seen = total > 0
        safe = np.where(seen, total, 1.0)
        gamma = np.where(seen, mass / safe, 1.0)  # unseen context: back off with weight 1
        if n == 1:
            lower = np.full(len(c), prev_p[0])
        else:
            lower = prev_p[ngc.suffix_ids(n)]
        p = np.where(seen[ctx], np.maximum(c - D, 0.0) / safe[ctx], 0.0) + gamma[ctx] * lower
        if n > 1:
            bows.append(_log(gamma))
        logp.append(_log(p))
        prev_p = p
    info = {"discounts": discounts, "discount_fallback": fallback}
    return logp, bows, info


def mle_tables(ngc: NGramCounts):
    """``(logp, logbow, info)`` of the unsmoothed relative frequencies ``c(hw) / c(h.)``.

    A context never seen in training backs off to the shorter context (weight 1);
    an unseen word after a seen context has probability 0 (backoff weight 0).
    """
    logp, bows = [], []
    for n in range(1, ngc.order + 1):
        c = ngc.counts[n - 1].astype(np.float64)
        total = _context_sums(ngc, n, c)
        seen = total > 0
        safe = np.where(seen, total, 1.0)
        logp.append(_log(c / safe[_contexts(ngc, n)]))
        if n > 1:
            bows.append(np.where(seen, -np.inf, 0.0))
    return logp, bows, {}
