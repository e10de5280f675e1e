"""ARPA export/import round trip and the `rnnlab ngram` commands end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnlab.cli import main
from rnnlab.data.vocab import Vocab
from rnnlab.errors import DataError, UsageError
from rnnlab.ngram import NGramLM
from rnnlab.ngram.arpa import escape, read_arpa, unescape, write_arpa

CORPUS = ("The time traveller, for so it will be convenient to speak of him, was expounding a recondite "
          "matter to us. His grey eyes shone and twinkled, and his usually pale face was flushed and "
          "animated. The fire burned brightly, and the soft radiance of the incandescent lights.\n") * 6


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=8))
def test_escape_round_trip_and_no_whitespace(token):
    escaped = escape(token)
    assert unescape(escaped) == token
    assert escaped.split() == [escaped]  # one ARPA word


@pytest.mark.parametrize("smoothing", ["kn", "mle"])
def test_arpa_round_trip(tmp_path, smoothing):
    rng = np.random.default_rng(0)
    tokens = np.minimum(rng.zipf(1.5, 500), 7)
    vocab = Vocab(reserved_tokens=["a", " ", "\n", "b\\", "c", "<s>", "d"])  # char-like tokens, a literal <s>
    lm = NGramLM(3, smoothing).fit(tokens, vocab_size=len(vocab))
    lm.vocab = vocab
    path = tmp_path / "model.arpa"
    write_arpa(lm, path)
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("\\data\\") and text.rstrip().endswith("\\end\\")
    assert "\n-99\t</s>" in text  # marker added for KenLM; the vocabulary's own <s> is kept
    back = read_arpa(path)
    assert back.vocab.idx_to_token == vocab.idx_to_token
    assert back.order == 3
    for mine, theirs in zip(lm.logp + lm.logbow, back.logp + back.logbow):
        finite = np.isfinite(mine)
        np.testing.assert_array_equal(finite, np.isfinite(theirs))
        np.testing.assert_allclose(theirs[finite], mine[finite], rtol=1e-13, atol=1e-13)
    held_out = rng.integers(0, len(vocab), 300)
    a, b = lm.evaluate(held_out), back.evaluate(held_out)
    if smoothing == "kn":
        assert b["perplexity"] == pytest.approx(a["perplexity"], rel=1e-12)
    for h in ([], [1], [1, 2], [7, 7]):
        assert back.distribution(h).sum() == pytest.approx(1, abs=1e-9)


def test_arpa_handwritten_backoff(tmp_path):
    path = tmp_path / "tiny.arpa"
    path.write_text("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1\t<unk>\t0\n-0.30103\ta\t-0.5\n"
                    "-0.5\tb\t0\n\n\\2-grams:\n-0.2\ta b\n\n\\end\\\n")
    lm = read_arpa(path)
    a, b = lm.vocab["a"], lm.vocab["b"]
    assert lm.distribution([a])[b] == pytest.approx(10 ** -0.2)
    assert lm.distribution([a])[a] == pytest.approx(10 ** (-0.5 - 0.30103))  # bow(a) * p(a)
    assert lm.distribution([b])[a] == pytest.approx(10 ** -0.30103)  # bow(b) = 1


def test_arpa_errors(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("hello\n")
    with pytest.raises(DataError):
        read_arpa(bad)
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<unk>\n\n\\end\\\n")
    with pytest.raises(DataError, match="header says 2"):
        read_arpa(bad)
    bad.write_text("\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1\ta\t0\n\n\\2-grams:\n-1\ta c\n\\end\\\n")
    with pytest.raises(DataError, match="missing from the 1-grams"):
        read_arpa(bad)
    with pytest.raises(DataError):
        read_arpa(tmp_path / "absent.arpa")
    with pytest.raises(UsageError, match="add-k"):
        write_arpa(NGramLM(2, "addk").fit(np.array([1, 2]), 3), tmp_path / "x.arpa")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_eval_generate_export_import(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    model = tmp_path / "m"
    code, out, _ = run(capsys, "ngram", "train", "--corpus", str(corpus), "--order", "3", "--out", str(model),
                       "--arpa", str(tmp_path / "m.arpa"), "--json")
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["order"] == 3 and summary["smoothing"] == "kn" and summary["token"] == "word"
    assert math.isfinite(summary["val"]["perplexity"]) and summary["val"]["tokens"] > 0
    code, out, _ = run(capsys, "ngram", "eval", str(model), "--split", "test", "--json")
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0
    assert set(result) >= {"perplexity", "bits_per_token", "nll_nats", "tokens", "unknown_tokens"}
    text = tmp_path / "other.txt"
    text.write_text("the time traveller was expounding a zyzzyva to us", encoding="utf-8")
    code, out, _ = run(capsys, "ngram", "eval", str(model), "--text", str(text), "--json")
    scored = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and scored["tokens"] == 8 and scored["unknown_tokens"] == 1
    assert math.isfinite(scored["perplexity"])
    code, out, _ = run(capsys, "ngram", "generate", str(model), "--prefix", "The Time", "--length", "5",
                       "--seed", "3", "--json")
    sample = json.loads(out.strip().splitlines()[-1])["sample"]
    assert code == 0 and sample.startswith("the time ") and len(sample.split()) == 7
    code, out, _ = run(capsys, "ngram", "import", str(tmp_path / "m.arpa"), "--out", str(tmp_path / "imp"),
                       "--mode", "d2l", "--token", "word")
    assert code == 0
    code, out, _ = run(capsys, "ngram", "eval", str(tmp_path / "imp"), "--text", str(text), "--json")
    again = json.loads(out.strip().splitlines()[-1])
    assert again["perplexity"] == pytest.approx(scored["perplexity"], rel=1e-12)


def test_cli_char_model_and_addk(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    code, out, _ = run(capsys, "ngram", "train", "--corpus", str(corpus), "--token", "char", "--order", "4",
                       "--smoothing", "addk", "--k", "0.1", "--out", str(tmp_path / "c"), "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and summary["k"] == 0.1 and summary["ngrams"][0] > 10
    code, out, _ = run(capsys, "ngram", "generate", str(tmp_path / "c"), "--prefix", "the ", "--length", "20",
                       "--greedy")
    assert code == 0 and out.startswith("the ") and len(out.rstrip("\n")) == 24


@pytest.mark.parametrize("argv, code, message", [
    (["ngram", "train", "--order", "0", "--out", "X"], 2, "order"),
    (["ngram", "train", "--smoothing", "wb", "--out", "X"], 2, "unknown smoothing"),
    (["ngram", "train", "--smoothing", "addk", "--k", "-1", "--out", "X"], 2, "k > 0"),
    (["ngram", "eval", "NOPE"], 1, "not a folder"),
    (["ngram", "generate", "NOPE"], 1, "not a folder"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, code, message):
    argv = [a if a != "X" else str(tmp_path / "x") for a in argv]
    got, out, err = run(capsys, *argv)
    assert got == code
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_cli_eval_of_rnn_checkpoint_kind_is_refused(tmp_path, capsys):
    from rnnlab.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "rnn", {}, {"w": np.zeros(1)}, kind="lm")
    got, _, err = run(capsys, "ngram", "eval", str(tmp_path / "rnn"))
    assert got == 1 and "not a 'ngram' model" in err
