"""`rnnlab score` and `LanguageModel.score_text`: exact per-token log-probabilities.

The per-token log-probabilities must add up to the total, and the total must equal an
independent computation (one forward call over the whole id sequence); offsets must point
at the tokens in the preprocessed text for any text (hypothesis).
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.cli import main
from rnnlab.data.text import tokenize, preprocess
from rnnlab.data.vocab import Vocab
from rnnlab.errors import DataError
from rnnlab.lm import LanguageModel
from rnnlab.models import build_model
from rnnlab.scoring import CHUNK, token_spans

TEXT = ("The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite "
        "matter to us. His grey eyes shone and twinkled, and his usually pale face was flushed. café!\n") * 4


def tiny_lm(model: str, token: str, mode: str = "raw", **options) -> LanguageModel:
    tokens = tokenize(preprocess(TEXT[:120], mode), token, mode)  # a vocabulary that misses some of TEXT
    vocab = Vocab(tokens)
    net = build_model(model, len(vocab), seed=3, **options)
    return LanguageModel(net, vocab, mode=mode, token=token)


def independent_total(lm: LanguageModel, text: str) -> float:
    """log p of ids[1:] from one forward call over the whole sequence (no chunks, no rnnlab.scoring)."""
    ids = torch.tensor(lm.encode(text).astype(np.int64))
    with torch.no_grad():
        logits, _ = lm.model.eval()(ids[None, :-1], lm.model.begin_state(1))
    logp = logits[0].double().log_softmax(-1)
    return float(logp.gather(1, ids[1:, None]).sum())


@pytest.mark.parametrize("model,token,mode,options", [
    ("lstm", "char", "raw", dict(hidden_size=16, num_layers=2)),
    ("mingru", "word", "raw", dict(hidden_size=16, num_layers=2)),
    ("rnn-scratch", "byte", "raw", dict(hidden_size=16)),
    ("gru", "word", "d2l", dict(hidden_size=16, embed_size=8)),
], ids=["lstm-char", "mingru-word", "scratch-byte", "gru-word-d2l"])
def test_per_token_sum_is_the_total_and_matches_one_forward_call(model, token, mode, options):
    lm = tiny_lm(model, token, mode, **options)
    result = lm.score_text(TEXT, per_token=True)
    per_token = [t.log_prob for t in result.per_token]
    assert len(per_token) == result.tokens == len(lm.encode(TEXT)) - 1
    assert math.fsum(per_token) == pytest.approx(result.log_prob, rel=1e-12, abs=1e-9)
    # float32 forward either way; chunks of CHUNK steps against one call differ only in rounding
    assert result.log_prob == pytest.approx(independent_total(lm, TEXT), rel=1e-5)
    assert result.nats_per_char == pytest.approx(-result.log_prob / result.chars)
    assert result.bits_per_char == pytest.approx(result.nats_per_char / math.log(2))
    assert result.perplexity == pytest.approx(math.exp(-result.log_prob / result.tokens))
    assert result.unknown_tokens == sum(t.id == 0 for t in result.per_token) > 0
    for item in result.per_token:
        assert item.log_prob <= 0 and 1 <= item.rank <= len(lm.vocab)
        assert len(item.top) == 5 and item.top[0][1] >= item.top[-1][1]
        if item.rank == 1:
            assert item.top[0][1] == pytest.approx(item.log_prob)
    if token == "char":
        assert len(lm.encode(TEXT)) > CHUNK  # the state really is carried across chunks


def test_characters_are_comparable_across_token_kinds():
    """The same text: a char model scores len - 1 characters, a byte model the same characters
    (the first character is the context of both), a word model the text after its first word."""
    text = "the café was open, and the time traveller smiled\n"
    chars = {token: tiny_lm("lstm", token, hidden_size=8).score_text(text).chars for token in ("char", "byte", "word")}
    assert chars["char"] == chars["byte"] == len(text) - 1
    assert chars["word"] == len(text) - len("the")


def test_score_without_per_token_gives_the_same_total():
    lm = tiny_lm("lstm", "char", hidden_size=8)
    assert lm.score_text(TEXT).log_prob == lm.score_text(TEXT, per_token=True).log_prob
    assert lm.score_text(TEXT).per_token is None


@pytest.mark.parametrize("text,fragment", [("", "is empty"), ("a", "scoring needs at least 2")])
def test_score_refuses_texts_with_nothing_to_score(text, fragment):
    with pytest.raises(DataError, match=fragment):
        tiny_lm("lstm", "char", hidden_size=8).score_text(text)


def test_score_refuses_a_text_of_unknown_words_only():
    with pytest.raises(DataError, match="is unknown to the model's vocabulary"):
        tiny_lm("lstm", "word", hidden_size=8).score_text("zebra quagga okapi")


words = st.lists(st.sampled_from(list("ab Zé\n\t.,'!-") + ["日", "\r\n", "\r"]), max_size=60).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=words, mode=st.sampled_from(["raw", "d2l"]), token=st.sampled_from(["char", "word", "byte"]))
def test_offsets_point_at_the_tokens(text, mode, token):
    tokens, starts, ends, scored = token_spans(text, mode, token)
    assert scored == "".join(preprocess(text, mode))
    assert tokens == tokenize(preprocess(text, mode), token, mode)
    assert np.all(np.diff(starts) >= 0) and np.all(ends >= starts) and (len(ends) == 0 or ends[-1] <= len(scored))
    if token == "byte":
        # the bytes rebuild the text, and each byte lies in the character at its offset
        assert "".join(tokens).encode("latin-1") == scored.encode("utf-8")
        for tok, start in zip(tokens, starts):
            assert ord(tok) in scored[start].encode("utf-8")
        assert len(ends) == 0 or ends[-1] == len(scored)
        return
    for tok, start, end in zip(tokens, starts, ends):
        assert scored[start:end] == tok
    gaps = [scored[a:b] for a, b in zip([0, *ends], [*starts, len(scored)])]
    assert all(gap.strip() == "" for gap in gaps)  # nothing but whitespace between tokens: a round trip


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT * 3)
    (root / "held.txt").write_text("The Time Traveller smiled. His grey eyes shone.\n")
    argv = ["-q", "train", "--corpus", str(corpus), "--model", "lstm", "--hidden", "8", "--layers", "1",
            "--batch-size", "4", "--num-steps", "8", "--sample-length", "0", "--max-steps", "2", "--device", "cpu",
            "--precision", "fp32", "--out", str(root / "lm")]
    assert main(argv) == 0
    assert main(["-q", "ngram", "train", "--corpus", str(corpus), "--out", str(root / "ng")]) == 0
    return root


def test_cli_score_json_and_per_token_lines(folders, capsys):
    capsys.readouterr()
    held = str(folders / "held.txt")
    assert main(["-q", "score", str(folders / "lm"), "--text", held, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["-q", "score", str(folders / "lm"), "--text", held, "--per-token"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    tokens, last = lines[:-1], lines[-1]
    assert last == summary and len(tokens) == summary["tokens"] == len("The Time Traveller smiled. His grey eyes shone.\n") - 1
    assert [t["offset"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert math.fsum(t["log_prob"] for t in tokens) == pytest.approx(summary["log_prob"], rel=1e-12)
    lm = LanguageModel.load(folders / "lm")
    assert summary["log_prob"] == pytest.approx(independent_total(lm, (folders / "held.txt").read_text()), rel=1e-5)


def test_cli_score_ngram_folder(folders, capsys):
    from rnnlab.ngram import encode_for, store
    capsys.readouterr()
    assert main(["-q", "score", str(folders / "ng"), "--text", str(folders / "held.txt"), "--per-token"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    model = store.load(folders / "ng")
    ids = encode_for(model, (folders / "held.txt").read_text())
    expected = model.evaluate(ids)
    assert lines[-1]["token_kind"] == "word" and lines[-1]["tokens"] == expected["tokens"] == len(lines) - 1
    assert -lines[-1]["log_prob"] == pytest.approx(expected["nll_nats"], rel=1e-12)
    assert all(1 <= t["rank"] and t["log_prob"] <= 0 for t in lines[:-1])
