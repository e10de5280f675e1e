"""Corpora, preprocessing, vocabulary, encoding and statistics; exactness against the book."""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.data import corpus as corpus_mod
from rnnlab.data.corpus import load_corpus
from rnnlab.data.dataset import encode_text, prepare_text
from rnnlab.data.encode import encode
from rnnlab.data.stats import corpus_stats, ngram_counts, pack_ngrams, unpack_ngram, zipf_alpha
from rnnlab.data.text import detokenize, preprocess, tokenize
from rnnlab.data.vocab import Vocab
from rnnlab.errors import CorpusNotFoundError, DataError, UsageError

from conftest import TIMEMACHINE_SHA1


# ---- the book's numbers ----------------------------------------------------------------

def d2l_read_time_machine(path):
    """d2l 0.17's reader, verbatim in behaviour, as the reference."""
    with open(path) as f:
        lines = f.readlines()
    return [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in lines]


def test_timemachine_file_is_the_books(timemachine_dir, timemachine):
    data = (timemachine_dir / "timemachine.txt").read_bytes()
    assert hashlib.sha1(data).hexdigest() == TIMEMACHINE_SHA1 and len(data) == 178_979
    assert timemachine.sha1 == TIMEMACHINE_SHA1


def test_d2l_preprocessing_is_exactly_the_books(timemachine_dir, timemachine):
    assert preprocess(timemachine.text, "d2l") == d2l_read_time_machine(timemachine_dir / "timemachine.txt")


def test_char_level_numbers(timemachine):
    data = prepare_text(timemachine, mode="d2l", token="char", split="d2l")
    assert len(data.train) == 170_580
    assert len(data.vocab) == 28
    assert data.vocab.idx_to_token[:10] == ["<unk>", " ", "e", "t", "a", "i", "n", "o", "s", "h"]
    assert data.train.dtype == np.uint8


def test_word_level_numbers(timemachine):
    data = prepare_text(timemachine, mode="d2l", token="word", split="d2l")
    assert len(data.train) == 32_775 and len(data.vocab) == 4_580
    stats = corpus_stats(data.train, data.vocab, orders=(1, 2, 3), top_k=3)
    assert stats[1].top == [("the", 2261), ("i", 1267), ("and", 1245)]
    assert stats[2].top[:2] == [("of-the", 309), ("in-the", 169)]
    assert stats[3].top[0] == ("the-time-traveller", 59)
    assert data.train.dtype == np.uint16


# ---- corpora -------------------------------------------------------------------------------

def test_builtin_corpus_is_offline_and_deterministic():
    a, b = load_corpus(), load_corpus("pydoc")
    assert a.text == b.text and len(a.text) > 400_000 and a.name == "pydoc"


def test_file_folder_and_glob(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first\n")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.md").write_text("third")
    assert load_corpus(tmp_path / "a.txt").text == "first\n"
    assert load_corpus(tmp_path).text == "first\nsecond\nthird\n"  # sorted, newline-joined, recursive
    assert load_corpus(str(tmp_path / "*.txt")).text == "first\nsecond\n"


def test_timemachine_is_found_in_data_dir_and_env(timemachine_dir, monkeypatch):
    assert load_corpus("timemachine", data_dir=timemachine_dir).sha1 == TIMEMACHINE_SHA1
    monkeypatch.setenv("RNNLAB_DATA", str(timemachine_dir))
    assert len(load_corpus("timemachine").text) == 178_979


def test_timemachine_offline_and_absent_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(corpus_mod.urllib.request, "urlopen", offline)
    with pytest.raises(CorpusNotFoundError, match=r"put timemachine.txt in one of: .*cache.*RNNLAB_DATA"):
        load_corpus("timemachine")


def test_checksum_mismatch_is_refused(tmp_path):
    (tmp_path / "timemachine.txt").write_text("not the book")
    with pytest.raises(DataError, match="SHA-1"):
        load_corpus("timemachine", data_dir=tmp_path, download=False)


def test_download_verifies_the_checksum(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b"tampered"

    monkeypatch.setattr(corpus_mod.urllib.request, "urlopen", lambda *a, **k: Response())
    with pytest.raises(DataError, match="SHA-1"):
        load_corpus("timemachine")
    assert not (tmp_path / "cache" / "rnnlab" / "timemachine.txt").exists()


@pytest.mark.parametrize("make,error,message", [
    (lambda p: p / "missing.txt", CorpusNotFoundError, "neither a file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", DataError, "no text files"),
    (lambda p: (p / "e.txt").write_text("") or p / "e.txt", DataError, "is empty"),
    (lambda p: (p / "bad.txt").write_bytes(b"ok\nline two \xff\xfe") and p / "bad.txt", DataError,
     r"not valid UTF-8: byte 0xff at offset 12 \(line 2\).*--encoding-errors replace"),
    (lambda p: str(p / "*.nothing"), CorpusNotFoundError, "no files match"),
])
def test_bad_corpora(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        load_corpus(make(tmp_path))


def test_encoding_errors_replace(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"caf\xe9 ok")
    assert load_corpus(path, encoding_errors="replace").text == "caf\ufffd ok"


# ---- preprocessing and tokens ---------------------------------------------------------------

def test_d2l_mode_lines_and_raw_mode():
    text = "The Time-Machine,\r\nby H. G. Wells!\n\n"
    assert preprocess(text, "d2l") == ["the time machine", "by h g wells", ""]
    assert preprocess(text, "raw") == [text]
    assert tokenize(preprocess(text, "d2l"), "char") == list("the time machineby h g wells")
    assert tokenize(preprocess(text, "d2l"), "word") == ["the", "time", "machine", "by", "h", "g", "wells"]


def test_raw_word_and_byte_tokens_round_trip():
    text = "Hello, wörld!\nNew line."
    words = tokenize(text, "word", mode="raw")
    assert words == ["Hello", ",", "wörld", "!", "\n", "New", "line", "."]
    assert detokenize(words, "word") == "Hello, wörld!\nNew line."
    assert detokenize(tokenize(text, "byte"), "byte") == text
    assert len(tokenize(text, "byte")) == len(text.encode("utf-8"))


@pytest.mark.parametrize("call,message", [
    (lambda: preprocess("x", "lower"), "unknown mode 'lower'"),
    (lambda: tokenize("x", "sentencepiece"), "unknown tokenizer 'sentencepiece'"),
    (lambda: tokenize("x", "bpe"), "--token bpe needs its trained tokenizer"),
])
def test_unknown_mode_and_tokenizer(call, message):
    with pytest.raises(UsageError, match=message):
        call()


# ---- vocabulary -----------------------------------------------------------------------------

def test_vocab_order_min_freq_reserved_and_unk():
    v = Vocab(list("aabbbcd"), min_freq=2, reserved_tokens=["<bos>"])
    assert v.idx_to_token == ["<unk>", "<bos>", "b", "a"]
    assert v["b"] == 2 and v["zzz"] == 0 and v[["a", "q"]] == [3, 0]
    assert v.token_freqs == [("b", 3), ("a", 2), ("c", 1), ("d", 1)]  # ties by token


def test_vocab_to_tokens_on_one_element_lists():
    v = Vocab(list("hello"))
    assert v.to_tokens([v["h"]]) == ["h"]  # d2l returned the bare string here
    assert v.to_tokens(v["h"]) == "h"
    assert v.to_tokens(np.array([1, 2])) == v.idx_to_token[1:3]


def test_vocab_accepts_nested_token_lists():
    assert Vocab([["a", "b"], ["b"]]).idx_to_token == ["<unk>", "b", "a"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=3), max_size=40), st.integers(0, 3),
       st.lists(st.sampled_from(["<pad>", "<bos>", "<eos>"]), max_size=3, unique=True))
def test_vocab_json_round_trip(tmp_path_factory, tokens, min_freq, reserved):
    v = Vocab(tokens, min_freq=min_freq, reserved_tokens=reserved)
    path = tmp_path_factory.mktemp("v") / "vocab.json"
    v.save(path)
    w = Vocab.load(path)
    assert w == v and w.idx_to_token == v.idx_to_token and w.token_freqs == v.token_freqs
    counts = Counter(tokens)
    # Order is by descending frequency whatever the input order.
    kept = [t for t in v.idx_to_token[1 + len(reserved):]]
    assert [counts[t] for t in kept] == sorted((counts[t] for t in kept), reverse=True)


def test_inconsistent_vocab_file_is_refused(tmp_path):
    data = Vocab(list("abc")).to_dict()
    data["idx_to_token"] = ["<unk>", "c", "b", "a"]
    (tmp_path / "v.json").write_text(json.dumps(data))
    with pytest.raises(DataError):
        Vocab.load(tmp_path / "v.json")


# ---- encoding -------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200), st.text(max_size=50))
def test_vectorised_char_encoding_equals_dict_lookup(train, other):
    vocab = Vocab(list(train))
    expected = [vocab[c] for c in other]
    assert encode(other, vocab, "char").tolist() == expected
    assert encode(list(other), vocab, "word").tolist() == expected


def test_smallest_dtype():
    assert Vocab(list("ab")).dtype == np.uint8
    assert Vocab([str(i) for i in range(300)]).dtype == np.uint16
    assert Vocab([str(i) for i in range(70_000)]).dtype == np.uint32


def test_splits_are_contiguous_and_vocab_comes_from_train():
    text = "abcdefghij" * 10 + "XYZ"
    data = prepare_text(text, mode="raw", token="char", split=(0.9, 0.05, 0.05))
    assert (len(data.train), len(data.val), len(data.test)) == (92, 5, 5)
    assert "X" not in data.vocab  # only in the held-out tail
    whole = encode_text(text, data.vocab, "raw", "char")
    assert np.array_equal(np.concatenate([data.train, data.val, data.test]), whole[:102])
    again = prepare_text(text, mode="raw", token="char")
    assert np.array_equal(again.val, data.val)


@pytest.mark.parametrize("split", ["0.9,0.2,0.1", "0,0.5,0.5", "a,b,c", (0.5, 0.5)])
def test_bad_splits(split):
    with pytest.raises(UsageError):
        prepare_text("abc" * 10, split=split)


def test_d2l_split_trains_on_the_first_max_tokens_and_holds_out_the_rest():
    data = prepare_text("abcdefghij" * 10, mode="raw", token="char", split="d2l", max_tokens=30)
    assert len(data.train) == 30 and len(data.val) == 70 and len(data.test) == 0


# ---- statistics -----------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=60), st.integers(1, 4))
def test_ngram_counts_match_counter(ids, n):
    ids = np.array(ids, dtype=np.int64)
    codes, counts = ngram_counts(ids, n, 7)
    got = {unpack_ngram(c, n, 7): int(k) for c, k in zip(codes, counts)}
    expected = Counter(tuple(ids[i:i + n].tolist()) for i in range(len(ids) - n + 1))
    assert got == dict(expected)
    assert list(counts) == sorted(counts, reverse=True)
    assert len(pack_ngrams(ids, n, 7)) == max(0, len(ids) - n + 1)


def test_zipf_alpha_recovers_an_exact_power_law():
    ranks = np.arange(1, 200)
    assert zipf_alpha(1e6 * ranks ** -1.3) == pytest.approx(1.3, abs=1e-9)
    assert np.isnan(zipf_alpha(np.array([5])))
