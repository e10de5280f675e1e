"""Evaluation, generation and the LanguageModel API."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
    result = evaluate(lm.model, ids, rows=rows, num_steps=5, warmup=0)
    assert result["tokens"] == 102
    row_len = 25
    expected = 0.0
    for r in range(rows):
        segment = ids[r * row_len: (r + 1) * row_len + 1]
        if r == rows - 1:
            segment = ids[r * row_len:]  # the last row also scores the tail
        expected += direct_nll(lm.model, segment)
    assert result["nll_nats"] == pytest.approx(expected, rel=1e-5)


def per_token_nll(model, ids):
    """Reference: each target's NLL in one forward pass over ``ids`` from a fresh state."""
    logits, _ = model(torch.tensor(ids[:-1]).unsqueeze(0), model.begin_state(1))
    return F.cross_entropy(logits[0], torch.tensor(ids[1:]), reduction="none").detach().numpy()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(length=st.integers(2, 300), rows=st.integers(1, 12), num_steps=st.integers(1, 40), warmup=st.integers(0, 60))
def test_evaluate_warmed_rows_read_the_tokens_before_them(lm, length, rows, num_steps, warmup):
    """Row r > 0 scores its targets after reading min(warmup, row_len) tokens before it."""
    ids = np.random.default_rng(length).integers(0, len(lm.vocab), length)
    n = length - 1
    rows = min(rows, n)
    row_len, w = n // rows, min(warmup, n // rows)
    expected = 0.0
    for r in range(rows):
        start, end = r * row_len, (r + 1) * row_len if r < rows - 1 else n  # targets ids[start+1:end+1]
        context = min(w, start)
        expected += per_token_nll(lm.model, ids[start - context:end + 1])[context:].sum()
    result = evaluate(lm.model, ids, rows=rows, num_steps=num_steps, warmup=warmup)
    assert result["tokens"] == n
    assert result["nll_nats"] == pytest.approx(expected, rel=1e-5)


def test_evaluate_warmed_rows_approach_one_stream(lm):
    """Rows warmed on the 100 tokens before them (a whole row) score closer to the one-stream
    score than rows that start fresh."""
    ids = np.random.default_rng(2).integers(1, len(lm.vocab), 401)
    one = evaluate(lm.model, ids, rows=1)["nll_nats"]
    fresh = evaluate(lm.model, ids, rows=4, warmup=0)["nll_nats"]
    warmed = evaluate(lm.model, ids, rows=4, warmup=100)["nll_nats"]
    assert abs(warmed - one) < abs(fresh - one)


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


# ---- several prompts in one batch, beam search --------------------------------------
PROMPTS = ["the quick", "h", "brown fox, hello wor", "the quick"]  # lengths differ; one repeats


@pytest.mark.parametrize("name,options", [
    ("gru", dict(hidden_size=12, num_layers=1, embed_size=6)),
    ("lstm", dict(hidden_size=10, num_layers=2, embed_size=5)),
    ("rnn-scratch", dict(hidden_size=16, init_std=0.5)),
])
def test_prompts_in_one_batch_equal_each_prompt_alone(name, options):
    torch.manual_seed(2)
    vocab = Vocab(list("hello world, the quick brown fox"))
    lm = LanguageModel(build_model(name, len(vocab), **options), vocab)
    with torch.no_grad():
        for weight in lm.model.parameters():
            weight.normal_(0, 1)  # an untrained model forgets its prompt at once; large weights remember it
    alone = [lm.generate(p, 40, greedy=True) for p in PROMPTS]
    together = lm.generate_prompts(PROMPTS, 40, greedy=True)
    assert [g.text for g in together] == alone and [g.prompt for g in together] == PROMPTS
    assert len({g.text[len(g.prompt):][:4] for g in together}) == 3  # each prompt leads elsewhere
    seeded = lm.generate_prompts(PROMPTS, 30, num_samples=2, temperature=1.5, seed=7)
    assert [g.text for g in seeded] == [lm.generate(p, 30, temperature=1.5, seed=7 + j)
                                        for p in PROMPTS for j in range(2)]


def test_prompt_rows_step_with_a_state_of_one_row_per_prompt(lm, monkeypatch):
    """One batch: the stepper is made once, for prompts x samples rows."""
    import rnnlab.generation as generation
    made = []
    original = generation.make_stepper
    monkeypatch.setattr(generation, "make_stepper", lambda m, b, **k: made.append(b) or original(m, b, **k))
    lm.generate_prompts(PROMPTS, 5, num_samples=3, seed=0)
    assert made == [len(PROMPTS) * 3]


def test_generated_log_prob_is_the_models(lm):
    g = lm.generate_prompts(["the "], 12, seed=3)[0]
    ids = lm.prefix_ids(g.text)  # char tokens: the text's ids are the prompt's then the continuation's
    X = torch.tensor([ids[:-1]])
    with torch.no_grad():
        log_p = torch.log_softmax(lm.model(X, lm.model.begin_state(1))[0][0].double(), dim=1)
    expected = sum(float(log_p[t - 1, ids[t]]) for t in range(4, len(ids)))
    assert g.log_prob == pytest.approx(expected, rel=1e-6) and g.log_prob < 0


def exhaustive_best(model, prefix, length, end_ids, length_penalty):
    """Every continuation (ending at the first end id or at ``length``), scored by one forward each."""
    import itertools
    V = model.vocab_size
    best = None
    for n in range(1, length + 1):
        for tail in itertools.product(range(1, V), repeat=n):
            if any(t in end_ids for t in tail[:-1]) or (n < length and tail[-1] not in end_ids):
                continue
            X = torch.tensor([prefix + list(tail[:-1])])
            with torch.no_grad():
                log_p = torch.log_softmax(model(X, model.begin_state(1))[0][0].double(), dim=1)
            total = sum(float(log_p[len(prefix) - 1 + k, tok]) for k, tok in enumerate(tail))
            score = total / n ** length_penalty
            if best is None or score > best[0]:
                best = (score, total, list(tail))
    return best


@pytest.mark.parametrize("end_ids,length_penalty", [((), 1.0), ((2,), 1.0), ((2,), 0.0), ((1, 3), 0.5)])
def test_beam_search_equals_exhaustive_search_on_a_tiny_vocabulary(end_ids, length_penalty):
    from rnnlab.generation import beam_search_ids
    torch.manual_seed(4)
    model = build_model("lstm", 5, hidden_size=8, num_layers=1, embed_size=3).eval()  # 4 tokens and <unk>
    with torch.no_grad():
        model.output.bias.mul_(0).add_(torch.tensor([3.0, 0.5, 0.0, -0.5, 0.2]))  # <unk> likely: never chosen
    prefix, length = [1, 3], 5
    score, total, ids = exhaustive_best(model, prefix, length, set(end_ids), length_penalty)
    found = beam_search_ids(model, prefix, length, 4 ** length, length_penalty, end_ids)
    assert found.ids == ids
    assert found.log_prob == pytest.approx(total, abs=1e-6) and found.score == pytest.approx(score, abs=1e-6)
    small = beam_search_ids(model, prefix, length, 2, length_penalty, end_ids)
    assert small.score <= found.score + 1e-9 and 0 not in small.ids


def test_beam_1_is_greedy(lm):
    for prefix in ("the", "quick brown"):
        beam = lm.beam_search(prefix, 50, beam=1)
        assert beam.text == lm.generate(prefix, 50, greedy=True)
        assert beam.score == pytest.approx(beam.log_prob / 50)


def test_beam_search_stops_at_a_stop_token(lm):
    for found in (lm.beam_search("the", 60, beam=6, stop=[" "], length_penalty=penalty) for penalty in (0, 1)):
        continuation = found.text[3:]
        assert " " not in continuation[:-1] and (continuation.endswith(" ") or len(continuation) == 60)
    # with the plain total (no normalisation) an early ending beats 60 more tokens
    short = lm.beam_search("the", 60, beam=6, stop=[" "], length_penalty=0)
    assert short.text.endswith(" ") and len(short.text) < 63


def test_sampled_texts_end_at_their_first_stop_token(lm):
    for seed in range(6):
        whole = lm.generate("the", 80, seed=seed, temperature=1.5)
        cut = whole[3:].find(" ")
        expected = whole if cut < 0 else whole[:3 + cut + 1]  # up to and including the first space
        assert lm.generate("the", 80, seed=seed, temperature=1.5, stop=" ") == expected
        assert "".join(lm.stream("the", 80, seed=seed, temperature=1.5, stop=[" ", ","])) == \
            whole[3:][:min([i + 1 for i in (whole[3:].find(" "), whole[3:].find(",")) if i >= 0], default=80)]
    texts = lm.generate_prompts(["the ", "fox"], 80, num_samples=3, seed=2, temperature=1.5, stop=["o"])
    alone = lm.generate_prompts(["the ", "fox"], 80, num_samples=3, seed=2, temperature=1.5)
    assert any(len(t.text) < len(a.text) for t, a in zip(texts, alone))
    for cut, whole in zip(texts, alone):
        continuation = whole.text[len(whole.prompt):]
        k = continuation.find("o")
        assert cut.text == whole.prompt + (continuation if k < 0 else continuation[:k + 1])
        ids = lm.prefix_ids(cut.text)  # its log-probability is that of the text it kept
        with torch.no_grad():
            log_p = torch.log_softmax(lm.model(torch.tensor([ids[:-1]]), lm.model.begin_state(1))[0][0].double(), 1)
        assert cut.log_prob == pytest.approx(sum(float(log_p[t - 1, ids[t]])
                                                 for t in range(len(cut.prompt), len(ids))), rel=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda lm: lm.generate("the", 5, stop="zz"), "stop 'zz' is not one token"),
    (lambda lm: lm.generate("the", 5, stop=5), "stop must be a token or a list of tokens, got int"),
    (lambda lm: lm.beam_search("the", 5, stop=[3]), "stop must be a string"),
    (lambda lm: lm.generate_prompts(["the"], 5, stop=["<unk>"]), "stop '<unk>' is not one token"),
    (lambda lm: lm.beam_search("the", 5, beam=0), "beam must be an integer from 1"),
    (lambda lm: lm.beam_search("the", 5, length_penalty=-1), "length_penalty must be"),
    (lambda lm: lm.beam_search("the", 5, length_penalty=float("nan")), "length_penalty must be"),
    (lambda lm: lm.beam_search("the", 5, stop=["zz"]), "stop 'zz' is not one token"),
    (lambda lm: lm.beam_search("the", 5, stop=["<unk>"]), "stop '<unk>' is not one token"),
    (lambda lm: lm.generate_prompts([], 5), "prompts must be a non-empty list"),
    (lambda lm: lm.generate_prompts("the", 5), "prompts must be a non-empty list"),
    (lambda lm: lm.generate_prompts(["the", 3], 5), "prefix must be a string"),
    (lambda lm: lm.generate_prompts(["the"], 5, num_samples=0), "num_samples must be an integer from 1"),
])
def test_bad_prompt_and_beam_arguments(lm, call, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        call(lm)
