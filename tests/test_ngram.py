"""n-gram LM: counts, normalisation, add-k by hand, Kneser-Ney against a plain
dictionary implementation, scoring conventions, persistence."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnlab.errors import CheckpointError, DataError, UsageError
from rnnlab.ngram import NGramLM, count_ngrams, load, save
from rnnlab.ngram.smoothing import FALLBACK_DISCOUNTS

streams = st.lists(st.integers(0, 5), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None)
@given(streams, st.integers(1, 5))
def test_counts_match_counter(tokens, order):
    ngc = count_ngrams(np.array(tokens), order, vocab_size=6)
    for n in range(1, order + 1):
        expected = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        assert ngc.as_dict(n) == dict(expected)
        assert np.all(np.diff(ngc.keys[n - 1]) > 0)  # sorted, distinct
        if n > 1:  # suffix ids recorded while counting == found by decoding the keys
            np.testing.assert_array_equal(ngc.suffix_ids(n), ngc.rows_ids(ngc.decode(n)[:, 1:]))


@settings(max_examples=30, deadline=None)
@given(streams, st.integers(1, 4), st.sampled_from(["mle", "addk", "kn"]), st.floats(0.01, 3))
def test_every_context_sums_to_one(tokens, order, smoothing, k):
    lm = NGramLM(order, smoothing, k).fit(np.array(tokens), vocab_size=7)  # id 6 never seen
    contexts = {tuple(tokens[max(0, i - order + 1):i]) for i in range(len(tokens) + 1)}
    contexts |= {(6,), (6, 6, 6), (0, 6), ()}
    for context in contexts:
        p = lm.distribution(list(context))
        assert p.shape == (7,)
        assert np.all(p >= 0)
        assert abs(p.sum() - 1) < 1e-9, context
        if smoothing != "mle":
            assert np.all(p > 0)  # smoothed: nothing impossible


def test_laplace_by_hand():
    # a b a c a b, V = 4 (0 is <unk>): bigram counts ab=2 ba=1 ac=1 ca=1; c(a.) = 3
    a, b, c = 1, 2, 3
    lm = NGramLM(2, "addk", 1).fit(np.array([a, b, a, c, a, b]), vocab_size=4)
    p = lm.distribution([a])
    np.testing.assert_allclose(p, [1 / 7, 1 / 7, 3 / 7, 2 / 7], atol=1e-15)  # <unk> a b c
    np.testing.assert_allclose(lm.distribution([0]), [0.25] * 4)  # unseen context: uniform
    # the first predicted token has one token of history: bigram add-1 as well;
    # stream "b a <unk>": p(a|b) = (1+1)/(1+4), p(<unk>|a) = 1/7
    result = lm.evaluate([b, a, 0])
    assert result["nll_nats"] == pytest.approx(-math.log(2 / 5) - math.log(1 / 7), abs=1e-12)
    assert result["tokens"] == 2 and result["unknown_tokens"] == 1
    # order 1 add-k with k = 0.5: (c(w) + 0.5) / (6 + 2)
    uni = NGramLM(1, "addk", 0.5).fit(np.array([a, b, a, c, a, b]), vocab_size=4)
    np.testing.assert_allclose(uni.distribution([]), [0.5 / 8, 3.5 / 8, 2.5 / 8, 1.5 / 8])


def test_mle_by_hand_and_backoff_for_unseen_context():
    a, b, c = 1, 2, 3
    lm = NGramLM(2, "mle").fit(np.array([a, b, a, c, a, b]), vocab_size=4)
    np.testing.assert_allclose(lm.distribution([a]), [0, 0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(lm.distribution([0]), [0, 3 / 6, 2 / 6, 1 / 6])  # unigram MLE
    assert lm.evaluate([a, 0])["perplexity"] == math.inf


# ---- Kneser-Ney against a straightforward implementation ------------------------------

def reference_discounts(values):
    n = [sum(1 for v in values if v == k) for k in (1, 2, 3, 4)]
    out = []
    for k in (1, 2, 3):
        d = float("nan")
        if n[0] and n[1] and (k < 3 or n[2]):
            Y = n[0] / (n[0] + 2 * n[1])
            d = k - (k + 1) * Y * n[k] / n[k - 1]
        out.append(d if 0 < d <= k else FALLBACK_DISCOUNTS[k - 1])
    return out


class ReferenceKN:
    """Interpolated modified Kneser-Ney written from the formulas with dictionaries."""

    def __init__(self, tokens, order, V):
        self.N, self.V = order, V
        raw = {n: Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)) for n in range(1, order + 1)}
        self.c = {order: raw[order]}
        for n in range(1, order):  # continuation counts: distinct left neighbours
            self.c[n] = Counter(g[1:] for g in raw[n + 1])
        self.D = {n: reference_discounts(list(self.c[n].values())) for n in self.c}

    def disc(self, n, count):
        return 0.0 if count == 0 else self.D[n][min(count, 3) - 1]

    def p(self, w, h):
        h = tuple(h)[len(h) - min(len(h), self.N - 1):]
        n = len(h) + 1
        lower = 1 / self.V if n == 1 else self.p(w, h[1:])
        following = {g[-1]: c for g, c in self.c[n].items() if g[:-1] == h}
        total = sum(following.values())
        if total == 0:
            return lower
        count = following.get(w, 0)
        gamma = sum(self.disc(n, c) for c in following.values()) / total
        return max(count - self.disc(n, count), 0) / total + gamma * lower


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_matches_reference(order):
    rng = np.random.default_rng(order)
    # Zipf-like stream so that counts of 1..4 all occur (discounts are estimated, not fallback)
    tokens = list(np.minimum(rng.zipf(1.6, 400), 9) - 1)
    V = 11  # ids 9 and 10 never occur
    lm = NGramLM(order, "kn").fit(np.array(tokens), vocab_size=V)
    ref = ReferenceKN(tokens, order, V)
    np.testing.assert_allclose(lm.info["discounts"], [ref.D[n] for n in range(1, order + 1)], rtol=1e-12)
    if order > 1:
        assert not all(lm.info["discount_fallback"])  # estimated discounts are exercised, not only the fallback
    contexts = {tuple(tokens[i:i + order - 1]) for i in range(len(tokens))} | {(10,) * (order - 1), (0, 10)[:order - 1]}
    for h in list(contexts)[:60]:
        np.testing.assert_allclose(lm.distribution(list(h)), [ref.p(w, h) for w in range(V)], rtol=1e-12, atol=0)
    held_out = list(rng.integers(0, V, 50))
    expected = [math.log(ref.p(held_out[t], held_out[max(0, t - order + 1):t])) for t in range(1, 50)]
    np.testing.assert_allclose(lm.log_probs(held_out), expected, rtol=1e-12)


def test_discount_fallback_reported_for_character_like_data():
    tokens = np.tile(np.arange(1, 5), 50)  # every unigram/continuation count is large: n1 = 0
    lm = NGramLM(2, "kn").fit(tokens, vocab_size=5)
    assert lm.info["discount_fallback"][0] is True
    assert lm.info["discounts"][0] == list(FALLBACK_DISCOUNTS)
    assert math.isfinite(lm.evaluate([1, 3, 0, 0, 2])["perplexity"])


# ---- scoring conventions -----------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(streams, st.lists(st.integers(0, 6), min_size=2, max_size=30), st.integers(1, 4),
       st.sampled_from(["mle", "addk", "kn"]))
def test_stream_scoring_equals_distribution_per_position(train, held_out, order, smoothing):
    lm = NGramLM(order, smoothing, 0.5).fit(np.array(train), vocab_size=7)
    logp = lm.log_probs(held_out)
    assert logp.shape == (len(held_out) - 1,)
    for t in range(1, len(held_out)):
        p = lm.distribution(held_out[max(0, t - order + 1):t])[held_out[t]]
        assert logp[t - 1] == pytest.approx(math.log(p) if p > 0 else -math.inf, rel=1e-12)
    result = lm.evaluate(held_out)
    assert result["tokens"] == len(held_out) - 1
    assert result["unknown_tokens"] == sum(1 for x in held_out[1:] if x == 0)
    if smoothing != "mle":
        assert math.isfinite(result["perplexity"])


def test_save_load_round_trip(tmp_path):
    tokens = np.array([1, 2, 3, 1, 2, 2, 3, 1, 1, 2])
    for smoothing in ("kn", "addk", "mle"):
        lm = NGramLM(3, smoothing, 0.3).fit(tokens, vocab_size=5)
        save(lm, tmp_path / smoothing)
        again = load(tmp_path / smoothing)
        assert (again.order, again.smoothing, again.k) == (3, smoothing, 0.3)
        for h in ([], [1], [1, 2], [4, 4]):
            np.testing.assert_array_equal(again.distribution(h), lm.distribution(h))


def test_bad_input_raises_specific_errors(tmp_path):
    with pytest.raises(UsageError):
        NGramLM(0)
    with pytest.raises(UsageError):
        NGramLM(2, "witten-bell")
    with pytest.raises(UsageError):
        NGramLM(2, "addk", k=0)
    with pytest.raises(DataError):
        NGramLM(2).fit(np.array([], dtype=np.int64), 3)
    with pytest.raises(DataError):
        NGramLM(2).fit(np.array([1, 5]), 3)
    with pytest.raises(UsageError):
        NGramLM(2).evaluate([1, 2])  # not fitted
    lm = NGramLM(2).fit(np.array([1, 2, 1]), 3)
    with pytest.raises(DataError):
        lm.evaluate([1, 7])
    with pytest.raises(CheckpointError):
        load(tmp_path)


def test_time_machine_kn_beats_laplace(timemachine):
    from rnnlab.data.dataset import prepare_text
    from rnnlab.ngram import baseline

    for token in ("word", "char"):
        data = prepare_text(timemachine, mode="d2l", token=token, split=(0.9, 0.05, 0.05))
        for order in (2, 3):
            kn = baseline(data, order=order, smoothing="kn")
            add1 = baseline(data, order=order, smoothing="addk", k=1)
            assert math.isfinite(kn["perplexity"]) and kn["perplexity"] < add1["perplexity"], (token, order)
            assert kn["tokens"] == len(data.val) - 1
            assert kn["unknown_tokens"] == int((data.val[1:] == 0).sum())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=40), st.integers(1, 3))
def test_kneser_ney_matches_reference_on_random_streams(tokens, order):
    """Tiny streams exercise the discount fallback and unseen/short contexts."""
    lm = NGramLM(order, "kn").fit(np.array(tokens), vocab_size=6)
    ref = ReferenceKN(tokens, order, 6)
    contexts = {tuple(tokens[max(0, i - order + 1):i]) for i in range(len(tokens) + 1)} | {(5,) * (order - 1)}
    for h in contexts:
        np.testing.assert_allclose(lm.distribution(list(h)), [ref.p(w, h) for w in range(6)], rtol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 4])
def test_evaluation_in_blocks_equals_one_pass(order, monkeypatch):
    """Blocks read with their order - 1 tokens of history give every token its one-pass probability."""
    import numpy as np

    import rnnlab.ngram.model as ngram_model
    from rnnlab.ngram.model import NGramLM
    rng = np.random.default_rng(order)
    ids = rng.integers(0, 12, 3000).astype(np.uint8)
    model = NGramLM(order, "kn").fit(ids[:2000], vocab_size=12)
    whole = model.evaluate(ids[2000:])
    monkeypatch.setattr(ngram_model, "EVAL_CHUNK", 97)
    blocks = model.evaluate(ids[2000:])
    assert blocks["tokens"] == whole["tokens"] == 999 and blocks["unknown_tokens"] == whole["unknown_tokens"]
    assert blocks["nll_nats"] == pytest.approx(whole["nll_nats"], rel=1e-12)
