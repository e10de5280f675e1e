"""Evaluation, generation and the LanguageModel API."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlab.data.vocab import Vocab
from rnnlab.errors import UsageError
from rnnlab.evaluation import evaluate, unigram_result
from rnnlab.generation import Sampling, generate_ids
from rnnlab.lm import LanguageModel
from rnnlab.models import build_model


@pytest.fixture
def lm():
    torch.manual_seed(0)
    vocab = Vocab(list("hello world, the quick brown fox"))
    model = build_model("gru", len(vocab), hidden_size=12, num_layers=1, embed_size=6)
    return LanguageModel(model, vocab, mode="raw", token="char")


def direct_nll(model, ids):
    """Reference: one forward pass over the whole stream with batch size 1."""
    X = torch.tensor(ids[:-1]).unsqueeze(0)
    Y = torch.tensor(ids[1:])
    logits, _ = model(X, model.begin_state(1))
    return F.cross_entropy(logits[0], Y, reduction="sum").item()


@pytest.mark.parametrize("num_steps", [1, 7, 1000])
def test_evaluate_single_row_equals_one_forward_pass(lm, num_steps):
    ids = np.random.default_rng(0).integers(0, len(lm.vocab), 101)
    result = evaluate(lm.model, ids, rows=1, num_steps=num_steps)
    assert result["tokens"] == 100
    assert result["nll_nats"] == pytest.approx(direct_nll(lm.model, ids), rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(result["nll_nats"] / 100), rel=1e-9)
    assert result["bits_per_token"] == pytest.approx(result["nll_nats"] / 100 / math.log(2))


def test_evaluate_rows_score_every_token_once(lm):
    ids = np.random.default_rng(1).integers(0, len(lm.vocab), 103)  # 102 targets: 3 rows of 34
    rows = 4  # 102 = 4 * 25 + 2: two tail tokens continue the last row
    result = evaluate(lm.model, ids, rows=rows, num_steps=5)
    assert result["tokens"] == 102
    row_len = 25
    expected = 0.0
    for r in range(rows):
        segment = ids[r * row_len: (r + 1) * row_len + 1]
        if r == rows - 1:
            segment = ids[r * row_len:]  # the last row also scores the tail
        expected += direct_nll(lm.model, segment)
    assert result["nll_nats"] == pytest.approx(expected, rel=1e-5)


def test_unknown_targets_are_counted(lm):
    ids = np.array([1, 0, 2, 0, 3])
    assert evaluate(lm.model, ids)["unknown_tokens"] == 2
    assert unigram_result(np.array([1, 1, 2]), ids, len(lm.vocab))["unknown_tokens"] == 2


def test_unigram_reference_by_hand():
    counts = np.array([0, 3, 1]) + 1.0  # add-one over a 3-token vocabulary
    probs = counts / counts.sum()
    result = unigram_result(np.array([1, 1, 1, 2]), np.array([2, 1, 2]), 3)
    expected = -(np.log(probs[1]) + np.log(probs[2]))
    assert result["nll_nats"] == pytest.approx(expected)


def test_greedy_is_deterministic_and_equals_top_k_1(lm):
    a = lm.generate("hello", 30, greedy=True)
    b = lm.generate("hello", 30, greedy=True)
    c = lm.generate("hello", 30, top_k=1, seed=3)
    assert a == b == c
    assert a.startswith("hello") and len(a) == 35


def test_tiny_top_p_equals_greedy(lm):
    assert lm.generate("the", 20, top_p=1e-9, seed=1) == lm.generate("the", 20, greedy=True)


def test_seeded_sampling_is_reproducible_and_seed_dependent(lm):
    first = lm.generate("the", 40, seed=7, temperature=2.0)
    assert first == lm.generate("the", 40, seed=7, temperature=2.0)
    assert any(lm.generate("the", 40, seed=s, temperature=2.0) != first for s in range(8, 12))


def test_unk_is_never_generated(lm):
    with torch.no_grad():
        lm.model.output.bias[0] = 100.0  # <unk> would win every argmax
    ids = list(generate_ids(lm.model, [1, 2], 50, Sampling(greedy=True)))
    assert 0 not in ids
    ids = list(generate_ids(lm.model, [1, 2], 50, Sampling(temperature=5.0), torch.Generator().manual_seed(0)))
    assert 0 not in ids


def test_warm_up_changes_the_continuation_only_through_the_state(lm):
    """Warm-up on a prefix equals stepping the same tokens one at a time."""
    ids = lm.prefix_ids("hello wor")
    state = lm.model.begin_state(1)
    for i in ids:
        logits, state = lm.model(torch.tensor([[i]]), state)
    expected = int(logits[0, -1, 1:].argmax()) + 1
    first = next(generate_ids(lm.model, ids, 1, Sampling(greedy=True)))
    assert first == expected


def test_prefix_outside_the_vocabulary_warns_and_maps_to_unk(lm, caplog):
    with caplog.at_level("WARNING", logger="rnnlab"):
        ids = lm.prefix_ids("hello ZZ")
    assert ids[-1] == 0 and ids[-2] == 0
    assert "'Z'" in caplog.text


@pytest.mark.parametrize("options,message", [
    (dict(temperature=0), "temperature"), (dict(top_k=-1), "top_k"), (dict(top_p=0), "top_p"),
])
def test_bad_sampling_options(lm, options, message):
    with pytest.raises(UsageError, match=message):
        lm.generate("the", 5, **options)


def test_byte_model_streams_valid_utf8():
    torch.manual_seed(0)
    text = "naïve café – ünïcödé " * 3
    from rnnlab.data.text import tokenize
    vocab = Vocab(tokenize(text, "byte"))
    model = build_model("lstm", len(vocab), hidden_size=8, num_layers=1, embed_size=4)
    lm = LanguageModel(model, vocab, mode="raw", token="byte")
    out = lm.generate("caf", 30, seed=0)
    assert out.startswith("caf")
    out.encode("utf-8")  # always a valid str


def test_word_model_joins_tokens_with_spaces():
    vocab = Vocab("the time traveller , said he .".split())
    torch.manual_seed(0)
    model = build_model("rnn", len(vocab), hidden_size=8, num_layers=1, embed_size=4)
    lm = LanguageModel(model, vocab, mode="raw", token="word")
    text = lm.generate("the time", 10, seed=0)
    assert text.startswith("the time")
    assert "  " not in text and " ," not in text and " ." not in text
