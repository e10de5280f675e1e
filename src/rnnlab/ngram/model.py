"""``NGramLM``: n-gram language model over encoded token arrays.

Smoothing: ``mle`` (relative frequencies), ``addk`` (``(c(hw) + k) / (c(h.) + kV)``,
Laplace for k = 1) and ``kn`` (interpolated modified Kneser-Ney, see
:mod:`rnnlab.ngram.smoothing`).

Scoring a token stream ``ids`` (the same convention as the recurrent models'
:func:`rnnlab.evaluation.evaluate`): every token but the first is predicted, from
the up to ``order - 1`` tokens before it *within the stream*. The stream is
continuous text without sentence boundaries, so the first ``order - 1`` predicted
tokens simply use the shorter history available. ``<unk>`` (id 0) targets are
scored like any other token -- their probability is that of the unknown-word
class -- and counted in ``unknown_tokens``. ``kn`` and ``addk`` give every token a
non-zero probability, so their perplexity is always finite; ``mle`` may be infinite.
Natural logs throughout; ``nll_nats`` is the summed negative log-likelihood.
"""
from __future__ import annotations

import time

import numpy as np

from rnnlab import checks
from rnnlab.checks import MAX_LENGTH
from rnnlab.errors import UsageError
from rnnlab.metrics import lm_result
from rnnlab.ngram.counts import NGramCounts, count_ngrams, count_ngrams_chunked
from rnnlab.ngram.smoothing import kneser_ney_tables, mle_tables

SMOOTHINGS = ("mle", "addk", "kn")
# "arpa": a backoff model read from an ARPA file (scored like kn/mle, not fitted here)
LOADABLE = SMOOTHINGS + ("arpa",)
ALIASES = {"laplace": ("addk", 1.0), "add1": ("addk", 1.0), "kneser-ney": ("kn", None)}


EVAL_CHUNK = 1 << 22  # predicted tokens per block of NGramLM.evaluate
MAX_ORDER = 64  # far above any useful order; a typo (--order 1000) must not build 1000 tables


def check_smoothing(smoothing: str, k: float) -> tuple[str, float]:
    if not isinstance(smoothing, str):
        raise UsageError(f"smoothing must be one of {', '.join(SMOOTHINGS)}, got {smoothing!r:.40}")
    if isinstance(k, bool) or not isinstance(k, (int, float, np.number)):
        raise UsageError(f"k must be a number, got {k!r:.40}")
    if smoothing in ALIASES:
        smoothing, forced = ALIASES[smoothing]
        k = forced if forced is not None else k
    if smoothing not in LOADABLE:
        raise UsageError(f"unknown smoothing '{smoothing}'; choose one of {', '.join(SMOOTHINGS)}")
    if smoothing == "addk" and not (np.isfinite(k) and k > 0):
        raise UsageError(f"add-k needs k > 0, got {k}")
    return smoothing, float(k)


def _take(table: np.ndarray, idx: np.ndarray, fill):
    """``table[idx]`` where ``idx >= 0``, ``fill`` elsewhere (``table`` may be empty)."""
    if len(table) == 0:
        return np.full(np.shape(idx), fill, dtype=np.result_type(table.dtype, type(fill)))
    return np.where(idx >= 0, table[np.maximum(idx, 0)], fill)


class NGramLM:
    """n-gram LM of ``order >= 1``. Fit with :meth:`fit`, score with :meth:`evaluate`.

    After fitting: ``counts`` (:class:`NGramCounts`), and for ``mle``/``kn`` the
    backoff tables ``logp[n-1]`` ``(D_n,)`` and ``logbow[n-1]`` ``(D_n,)`` for
    ``n < order`` (natural logs, aligned with ``counts.keys``).
    """

    def __init__(self, order: int = 3, smoothing: str = "kn", k: float = 1.0) -> None:
        if isinstance(order, (bool, str)) or not isinstance(order, (int, float, np.number)) or not np.isfinite(order) \
                or int(order) != order \
                or not 1 <= order <= MAX_ORDER:
            raise UsageError(f"n-gram order must be an integer from 1 to {MAX_ORDER}, got {order!r:.40}")
        self.order = int(order)
        self.smoothing, self.k = check_smoothing(smoothing, k)
        self.counts: NGramCounts | None = None
        self.logp: list[np.ndarray] = []
        self.logbow: list[np.ndarray] = []
        self.totals: list[np.ndarray] = []
        self.info: dict = {}
        self.vocab = None  # rnnlab.data.vocab.Vocab when trained from a dataset or loaded
        self.preprocessing: dict = {}

    # ---- fitting --------------------------------------------------------------------
    def fit(self, ids: np.ndarray, vocab_size: int) -> "NGramLM":
        """Count n-grams of the 1-D stream ``ids`` (values < ``vocab_size``) and smooth."""
        if self.smoothing == "arpa":
            raise UsageError("a model read from an ARPA file cannot be refitted; create NGramLM(order, 'kn')")
        vocab_size = checks.integer(vocab_size, "vocab_size", 1, 2**31 - 1)
        start = time.perf_counter()
        if isinstance(ids, np.memmap) and ids.dtype.kind == "u":
            # A prepared corpus: count chunk by chunk instead of loading it as int64 (8 bytes a token).
            self.counts = count_ngrams_chunked(ids, self.order, vocab_size)
        else:
            ids = checks.token_ids(ids, vocab_size)
            start = time.perf_counter()
            self.counts = count_ngrams(ids, self.order, vocab_size)
        self._build(time.perf_counter() - start)
        self.info["train_tokens"] = int(len(ids))
        return self

    def _build(self, count_seconds: float = 0.0) -> None:
        start = time.perf_counter()
        ngc = self.counts
        self.totals = [np.array([ngc.counts[0].sum()], dtype=np.float64)] + [
            np.bincount(ngc.context_ids(n), weights=ngc.counts[n - 1], minlength=len(ngc.keys[n - 2]))
            for n in range(2, self.order + 1)]
        info = {}
        if self.smoothing == "kn":
            self.logp, self.logbow, info = kneser_ney_tables(ngc)
        elif self.smoothing == "mle":
            self.logp, self.logbow, info = mle_tables(ngc)
        ngc.suffix = None  # only needed while smoothing; frees one int64 per n-gram
        self.info.update(info)
        self.info.update({"count_seconds": count_seconds, "smooth_seconds": time.perf_counter() - start,
                          "ngrams": ngc.num_ngrams(), "memory_bytes": self.nbytes})

    @property
    def vocab_size(self) -> int:
        self._check_fitted()
        return self.counts.vocab_size

    @property
    def nbytes(self) -> int:
        """Bytes held by the model's arrays (keys, counts, tables)."""
        arrays = [*self.logp, *self.logbow, *self.totals]
        return (self.counts.nbytes if self.counts else 0) + int(sum(a.nbytes for a in arrays))

    def _check_fitted(self) -> None:
        if self.counts is None:
            raise UsageError("the n-gram model is not fitted; call fit() first")

    # ---- scoring --------------------------------------------------------------------
    def _check_ids(self, ids) -> np.ndarray:
        self._check_fitted()
        return checks.token_ids(ids, self.vocab_size)

    def _combine(self, targets, ngram_ids, context_ids, avail) -> np.ndarray:
        """Log-probabilities of ``targets`` given, per order n (list index n-1), the id of
        the n-gram (target with its context, -1 if unlisted), of its context (order n-1;
        -1 if unlisted) and whether that much history exists (``avail``, bool)."""
        if self.smoothing == "addk":
            V, k = self.vocab_size, self.k
            out = np.empty(len(targets))
            for n in range(1, self.order + 1):
                g, h = ngram_ids[n - 1], context_ids[n - 1]
                c = _take(self.counts.counts[n - 1], g, 0)
                total = _take(self.totals[n - 1], h, 0.0)
                # the longest history available wins (unseen context -> uniform 1/V)
                out = np.where(avail[n - 1], np.log((c + k) / (total + k * V)), out)
            return out
        with np.errstate(invalid="ignore"):
            out = self.logp[0][targets]
            for n in range(2, self.order + 1):
                g, h = ngram_ids[n - 1], context_ids[n - 1]
                backed = np.where(h >= 0, out + _take(self.logbow[n - 2], h, 0.0), out)
                out = np.where(g >= 0, _take(self.logp[n - 1], g, 0.0), backed)
        return out

    def log_probs(self, ids) -> np.ndarray:
        """``(T-1,)`` natural-log probabilities of ``ids[1:]``, each given its history in ``ids``."""
        ids = self._check_ids(ids)
        T = len(ids)
        if T < 2:
            return np.zeros(0)
        stream = self.counts.stream_ids(ids)  # order n: id of the n-gram ending at t
        t = np.arange(1, T)
        ngram_ids, context_ids, avail = [], [], []
        for n in range(1, self.order + 1):
            ngram_ids.append(stream[n - 1][1:])
            context_ids.append(stream[n - 2][:-1] if n > 1 else np.zeros(T - 1, dtype=np.int64))
            avail.append(t >= n - 1)
        return self._combine(ids[1:], ngram_ids, context_ids, avail)

    def evaluate(self, ids) -> dict:
        """:func:`rnnlab.metrics.lm_result` of the stream (every token but the first predicted).

        Scored in blocks of ``EVAL_CHUNK`` predicted tokens, each read with the ``order - 1``
        tokens before it (its tokens' full histories), so a memory-mapped split is never
        converted whole and every token gets the probability it gets in one pass.
        """
        if not hasattr(ids, "__len__") or isinstance(ids, (str, bytes)) or len(ids) <= EVAL_CHUNK:
            logp = self.log_probs(ids)
            ids = np.asarray(ids).reshape(-1)
            return lm_result(float(-logp.sum()), len(logp), int((ids[1:] == 0).sum()))
        nll, unknown = 0.0, 0
        for start in range(1, len(ids), EVAL_CHUNK):  # predicted positions start .. end - 1
            end = min(start + EVAL_CHUNK, len(ids))
            first = max(0, start - max(self.order - 1, 1))  # log_probs predicts all but its first token
            logp = self.log_probs(np.asarray(ids[first:end]))[start - first - 1:]
            nll += float(-logp.sum())
            unknown += int(np.count_nonzero(np.asarray(ids[start:end]) == 0))
        return lm_result(nll, len(ids) - 1, unknown)

    def distribution(self, context) -> np.ndarray:
        """``(V,)`` probabilities of the next token after the token ids ``context``.

        Only the last ``order - 1`` tokens matter.
        """
        context = self._check_ids(context)
        V = self.vocab_size
        history = context[len(context) - min(len(context), self.order - 1):]
        words = np.arange(V)
        ngram_ids, context_ids, avail = [], [], []
        for n in range(1, self.order + 1):
            have = len(history) >= n - 1
            if n == 1:
                h = 0
            elif have:
                h = int(self.counts.rows_ids(history[len(history) - (n - 1):][None, :])[0])
            else:
                h = -1
            context_ids.append(np.full(V, h, dtype=np.int64))
            ngram_ids.append(words if n == 1 else self.counts.extend(n, np.full(V, h), words))
            avail.append(np.full(V, have))
        with np.errstate(divide="ignore"):
            return np.exp(self._combine(words, ngram_ids, context_ids, avail))

    def generate(self, prefix_ids, length: int, temperature: float = 1.0, greedy: bool = False,
                 seed: int | None = None) -> list[int]:
        """``length`` token ids sampled after ``prefix_ids`` (probabilities ``p^(1/temperature)``)."""
        checks.integer(length, "length", 0)
        if length > MAX_LENGTH:
            raise UsageError(f"length must be at most {MAX_LENGTH:,} tokens per call, got {length}")
        if not greedy:
            checks.number(temperature, "temperature", 0, low_open=True)
        checks.seed_value(seed)
        history = list(self._check_ids(prefix_ids))
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(length):
            p = self.distribution(history[-(self.order - 1):] if self.order > 1 else [])
            if greedy:
                nxt = int(np.argmax(p))
            else:
                with np.errstate(divide="ignore"):
                    logits = np.log(p) / temperature
                w = np.exp(logits - logits.max())
                nxt = int(rng.choice(len(w), p=w / w.sum()))
            out.append(nxt)
            history.append(nxt)
        return out
