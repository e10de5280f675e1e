"""Subword tokens (``--token bpe``/``unigram``) and bits per character of every token kind.

Byte-level tokenizers must round-trip any Unicode text exactly (hypothesis), learn only
from the training split, travel inside checkpoint folders, and give every evaluation the
same per-character unit: the total log-loss over the characters the scored tokens cover.
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
from rnnlab.data import subword
from rnnlab.data.dataset import encode_text, prepare_text
from rnnlab.data.subword import SubwordTokenizer, check_vocab_size, decode_stream, decode_tokens
from rnnlab.data.text import detokenize, preprocess, tokenize
from rnnlab.data.vocab import Vocab
from rnnlab.errors import UsageError
from rnnlab.lm import LanguageModel
from rnnlab.models import build_model
from rnnlab.scoring import covered_chars, subword_spans, text_chars

TEXT = ("The Time Traveller (for so it will be convenient to speak of him) was expounding a recondite "
        "matter to us. His grey eyes shone and twinkled, and his usually pale face was flushed. café 😀!\n") * 30


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def trained(request) -> SubwordTokenizer:
    return SubwordTokenizer.train(TEXT, 300, request.param)


def test_byte_symbols_are_the_libraries_and_decoding_agrees_with_it(trained):
    from tokenizers import pre_tokenizers
    assert set(subword.BYTE_SYMBOLS.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert len(set(subword.BYTE_SYMBOLS.values())) == 256
    text = "Ünïcode 😀 and\ttabs\n\n  spaces"
    encoding = trained.tokenizer.encode(text)
    assert trained.tokens(text) == encoding.tokens
    assert decode_tokens(encoding.tokens) == trained.tokenizer.decode(encoding.ids) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_any_unicode_round_trips_exactly(trained, text):
    tokens = trained.tokens(text)
    assert decode_tokens(tokens) == text
    assert "".join(decode_stream(tokens)) == text
    assert detokenize(tokens, trained.kind) == text
    assert set(tokens) <= set(trained.vocabulary())  # nothing falls outside the vocabulary


@settings(max_examples=50, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab \n\t😀é"), max_size=300), size=st.integers(1, 40))
def test_encoding_in_pieces_gives_the_tokens_of_the_whole_text(trained, text, size):
    pieces = subword._pieces_of(text, size)
    assert "".join(pieces) == text
    assert [tok for piece in pieces for tok in trained.tokenizer.encode(piece).tokens] == \
        trained.tokenizer.encode(text).tokens


def test_the_json_round_trips_and_bad_sizes_are_refused(trained):
    again = SubwordTokenizer.from_json(trained.to_json(), "tokenizer.json", kind=trained.kind)
    assert again.vocabulary() == trained.vocabulary()
    assert again.tokens(TEXT[:500]) == trained.tokens(TEXT[:500])
    assert check_vocab_size(None, "bpe") == subword.DEFAULT_VOCAB_SIZE
    assert check_vocab_size(None, "char") is None
    assert check_vocab_size(256, "unigram") == 256
    for size, fragment in ((0, "positive integer"), (-3, "positive integer"), (2.5, "positive integer"),
                           (True, "positive integer"), (255, "too small for the alphabet"),
                           (10**9, "at most")):
        with pytest.raises(UsageError, match=fragment):
            check_vocab_size(size, "bpe")
    with pytest.raises(UsageError, match="applies to --token bpe or unigram only"):
        check_vocab_size(500, "byte")
    with pytest.raises(UsageError, match="needs its trained tokenizer"):
        tokenize(["text"], "bpe")


def test_the_tokenizer_learns_from_the_training_split_only():
    # The held-out tail repeats a word the training text never has: a tokenizer that saw it
    # would merge it into one token.
    text = TEXT * 4 + "zyzzyva " * 300  # the tail lies wholly in the last 20%
    data = prepare_text(text, mode="raw", token="bpe", split=(0.8, 0.1, 0.1), vocab_size=400)
    vocab = data.vocab
    assert vocab.subword is not None and vocab.subword.kind == "bpe"
    assert not any("zyz" in tok for tok in vocab.idx_to_token)
    assert len(vocab) == len(vocab.subword.vocabulary()) + 1  # <unk> + every subword, seen or not
    assert set(subword.BYTE_SYMBOLS.values()) <= set(vocab.idx_to_token)
    assert int((data.val == 0).sum()) == 0 and int((data.test == 0).sum()) == 0
    # the splits are cut by characters of the text and read back exactly
    scored = "".join(preprocess(text, "raw"))
    n = len(scored)
    parts = [detokenize(vocab.to_tokens(part.tolist()), "bpe") for part in (data.train, data.val, data.test)]
    assert parts == [scored[:int(n * 0.8)], scored[int(n * 0.8):int(n * 0.8) + int(n * 0.1)],
                     scored[int(n * 0.8) + int(n * 0.1):int(n * 0.8) + 2 * int(n * 0.1)]]
    # a vocabulary given (a checkpoint's) encodes new text with its own tokenizer
    assert encode_text("zyzzyva", vocab, "raw", "bpe").tolist() == vocab[vocab.subword.tokens("zyzzyva")]
    with pytest.raises(UsageError, match="needs the vocabulary's bpe tokenizer"):
        prepare_text(text, token="bpe", vocab=Vocab(list("abc")))


@pytest.mark.parametrize("token", ["char", "byte", "word", "bpe"])
def test_covered_characters_of_every_token_kind(token):
    text = "the café opened 😀 at nine and the café closed at ten"
    tok = SubwordTokenizer.train(text * 20, 270) if token == "bpe" else None
    tokens = tokenize(preprocess(text, "raw"), token, "raw", subword=tok)
    vocab = Vocab(tokens, subword=tok)
    ids = np.asarray(vocab[tokens])
    # the characters after the first token, as score_text counts them
    first = {"char": 1, "byte": 0, "word": len("the"), "bpe": len(decode_tokens(tokens[:1]))}[token]
    expected = len(text) - first if token != "byte" else len(text) - 1  # 't' is one byte: one character
    assert text_chars(text, vocab, "raw", token) == expected  # from the text: exact for every kind
    # from ids alone, word spacing is rebuilt: no space before the emoji (a punctuation token)
    assert covered_chars(vocab, token, ids) == expected - (token == "word")


def test_subword_spans_point_at_the_characters_of_each_token():
    text = "é😀ab 😀"
    tok = SubwordTokenizer.train(text * 50, 262)
    tokens = tok.tokens(text)
    starts, ends = subword_spans(tokens, text)
    assert ends[-1] == len(text) and starts[0] == 0
    rebuilt = ""
    for t, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        rebuilt += text[len(rebuilt):e]  # each character is completed by exactly one token
        assert s <= e
    assert rebuilt == text


def uniform_lm(vocab: Vocab, token: str, mode: str = "raw") -> LanguageModel:
    """A model whose every prediction is uniform over the vocabulary (zero output layer)."""
    net = build_model("gru", len(vocab), seed=0, hidden_size=8, num_layers=1, embed_size=4, dropout=0.0)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith("output"):
                param.zero_()
    return LanguageModel(net, vocab, mode=mode, token=token)


@pytest.mark.parametrize("token", ["char", "byte", "word", "bpe", "unigram"])
def test_a_uniform_models_nats_per_char_is_log_v_times_tokens_over_chars(token):
    data = prepare_text(TEXT, mode="raw", token=token, split=(0.8, 0.2, 0.0),
                        vocab_size=300 if token in ("bpe", "unigram") else None)
    lm = uniform_lm(data.vocab, token)
    V, tokens = len(data.vocab), len(data.val) - 1
    chars = covered_chars(data.vocab, token, data.val)
    result = lm.score(data.val)
    assert result["tokens"] == tokens and result["chars"] == chars
    assert result["nats_per_char"] == pytest.approx(math.log(V) * tokens / chars, rel=1e-5)
    assert result["bits_per_char"] == pytest.approx(math.log2(V) * tokens / chars, rel=1e-5)
    text = TEXT[:400]
    exact = lm.score_text(text)
    from_text = lm.score(text)
    assert from_text["chars"] == exact.chars == text_chars(text, data.vocab, "raw", token)
    assert exact.nats_per_char == pytest.approx(math.log(V) * exact.tokens / exact.chars, rel=1e-5)
    assert from_text["nats_per_char"] == pytest.approx(exact.nats_per_char, rel=1e-5)


def test_the_validation_line_and_summary_report_bits_per_char():
    from rnnlab.tasks.lm import LanguageModelTask
    from rnnlab.training.config import make_config
    data = prepare_text(TEXT, mode="raw", token="bpe", split=(0.8, 0.2, 0.0), vocab_size=300)
    config = make_config(token="bpe", vocab_size=300, sample_length=0, batch_size=2, num_steps=4)
    task = LanguageModelTask(config, data)
    lm = uniform_lm(data.vocab, "bpe")
    scores = task.evaluate(lm.model)
    record = task.record(1.0, scores, lm.model)
    chars = covered_chars(data.vocab, "bpe", data.val)
    assert record["val_bits_per_char"] == pytest.approx(math.log2(len(data.vocab)) * (len(data.val) - 1) / chars,
                                                        rel=1e-5)
    line = task.log_line({**record, "epoch": 1, "step": 1, "tokens_per_second": 1.0, "grad_norm_mean": 0.1,
                          "grad_norm_max": 0.2, "lr": 0.1})
    assert f"{record['val_bits_per_char']:.4f} bits/char" in line


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_bpe_end_to_end_train_save_load_generate_eval_score(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the checkpoint's corpus is read only inside the user's folders
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "run"
    tiny = ["--corpus", str(corpus), "--token", "bpe", "--vocab-size", "300", "--model", "gru", "--hidden", "16",
            "--layers", "1", "--embed", "8", "--batch-size", "4", "--num-steps", "16", "--max-steps", "6",
            "--eval-every-steps", "3", "--sample-length", "5", "--device", "cpu", "--precision", "fp32", "--seed", "1"]
    assert main(["-q", "train", *tiny, "--out", str(out), "--json"]) == 0
    summary = last_json(capsys)
    assert summary["val_bits_per_char"] is not None and summary["vocab_size"] == 301
    config = json.loads((out / "config.json").read_text())
    assert config["preprocessing"] == {"mode": "raw", "token": "bpe", "tokenizer_file": "tokenizer.json"}
    assert "tokenizer.json" in config["files"] and config["train_config"]["vocab_size"] == 300
    lm = LanguageModel.load(out)
    assert lm.vocab.subword is not None and lm.vocab.subword.vocabulary() == \
        SubwordTokenizer.from_json((out / "tokenizer.json").read_text(), "t").vocabulary()
    # generation decodes to exact text: the sample's own tokens read back to it
    prefix = "Ünïcode 😀 prefix "
    sample = lm.generate(prefix, 40, seed=2)
    assert sample.startswith(prefix)
    assert decode_tokens(lm.vocab.subword.tokens(sample)) == sample
    streamed = lm.prefix_text(prefix) + "".join(lm.stream(prefix, 40, seed=2))
    assert streamed == sample
    assert main(["-q", "generate", str(out), "--prefix", prefix, "--length", "40", "--seed", "2", "--json"]) == 0
    assert last_json(capsys)["samples"] == [sample]
    assert main(["-q", "eval", str(out), "--json"]) == 0
    evaluated = last_json(capsys)
    assert evaluated["bits_per_char"] == pytest.approx(summary["val_bits_per_char"], rel=1e-6)
    assert evaluated["nats_per_char"] == pytest.approx(evaluated["nll_nats"] / evaluated["chars"])
    text = tmp_path / "other.txt"
    text.write_text("The Time Traveller 😀 was expounding", encoding="utf-8")
    assert main(["-q", "score", str(out), "--text", str(text), "--json"]) == 0
    scored = last_json(capsys)
    assert scored["chars"] == len("The Time Traveller 😀 was expounding") - len(decode_tokens(
        lm.vocab.subword.tokens("The")[:1]))
    assert scored["bits_per_char"] == pytest.approx(-scored["log_prob"] / scored["chars"] / math.log(2))
    # resume reads the run's own tokenizer
    assert main(["-q", "train", "--resume", str(out), "--max-steps", "8", "--json"]) == 0
    assert last_json(capsys)["steps"] == 8


@pytest.mark.slow
def test_bpe_ngram_train_eval_generate(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "ng"
    assert main(["-q", "ngram", "train", "--corpus", str(corpus), "--mode", "raw", "--token", "bpe", "--vocab-size",
                 "300", "--order", "3", "--out", str(out), "--json"]) == 0
    trained = last_json(capsys)
    assert trained["vocab_size"] == 301 and (out / "tokenizer.json").is_file()
    assert trained["val"]["bits_per_char"] == pytest.approx(trained["val"]["nll_nats"] / trained["val"]["chars"]
                                                            / math.log(2))
    assert main(["-q", "ngram", "eval", str(out), "--split", "val", "--json"]) == 0
    assert last_json(capsys)["bits_per_char"] == pytest.approx(trained["val"]["bits_per_char"])
    assert main(["-q", "ngram", "generate", str(out), "--prefix", "The 😀", "--length", "30", "--seed", "0",
                 "--json"]) == 0
    sample = last_json(capsys)["sample"]
    assert sample.startswith("The 😀") and len(sample) > len("The 😀")
    assert main(["-q", "score", str(out), "--text", str(corpus), "--json"]) == 0
    assert last_json(capsys)["token_kind"] == "bpe"


def test_a_raw_word_split_counts_the_characters_of_the_text_spaces_included():
    text = "a  b   c\n" * 100  # 9 characters, 4 tokens (a, b, c, newline) a line
    data = prepare_text(text, mode="raw", token="word", split=(0.5, 0.3, 0.2))
    line_end = {0: 1, 1: 4, 2: 8, 3: 9}

    def end(i):
        return 9 * (i // 4) + line_end[i % 4]

    lo, hi = len(data.train), len(data.train) + len(data.val)
    assert data.covered_chars("val") == end(hi - 1) - end(lo)
    assert data.covered_chars("val") > covered_chars(data.vocab, "word", data.val)  # rebuilt text: single spaces
    lm = uniform_lm(data.vocab, "word")
    scored = lm.score(data.val, chars=data.covered_chars("val"))
    assert scored["nats_per_char"] == pytest.approx(math.log(len(data.vocab)) * (len(data.val) - 1)
                                                    / data.covered_chars("val"), rel=1e-5)


def test_export_metadata_carries_the_tokenizer(tmp_path):
    from pathlib import Path

    from rnnlab.export import metadata
    from tokenizers import Tokenizer
    data = prepare_text(TEXT, mode="raw", token="bpe", split=(0.8, 0.2, 0.0), vocab_size=300)
    meta = metadata(uniform_lm(data.vocab, "bpe"), "torchscript", None, Path(tmp_path / "m.pt"), 0.0)
    again = Tokenizer.from_str(json.dumps(meta["preprocessing"]["tokenizer"]))
    text = "Ünïcode 😀 text"
    tokens = again.encode(text).tokens
    assert tokens == data.vocab.subword.tokens(text) and all(tok in meta["tokens"] for tok in tokens)


def test_a_stop_token_of_a_subword_model_is_spelled_with_byte_symbols():
    from rnnlab.lm import LanguageModel
    from rnnlab.models import build_model
    vocab = prepare_text(TEXT, mode="raw", token="bpe", split=(1.0, 0.0, 0.0), vocab_size=300).vocab
    lm = LanguageModel(build_model("gru", len(vocab), seed=0, hidden_size=8, num_layers=1), vocab, token="bpe")
    with pytest.raises(UsageError, match=r"a bpe token spells each byte with a symbol: try 'Ġ'"):
        lm.generate("the", 5, stop=" ")
    whole, cut = (lm.generate("the", 40, seed=seed, temperature=2.0, stop=stop) for seed, stop in ((1, ()), (1, "Ġ")))
    assert whole.startswith(cut) and (cut == whole or cut.endswith(" "))
