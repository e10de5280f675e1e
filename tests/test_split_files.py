"""Separate train / validation / test files: --val/--test, split folders, provenance."""
from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.data.corpus import load_corpus, split_folder_files
from rnnlab.data.dataset import encode_text, prepare_text
from rnnlab.errors import DataError, UsageError

# Distinct character counts, so the vocabulary order is plain to read:
# <unk>=0, a=1 (5x), b=2 (4x), c=3 (3x), ' '=4 (2x), '\n'=5 (1x).
TRAIN = "aaaaa bbbb ccc\n"
VALID = "cab dz\n"  # d and z never occur in TRAIN
TEST = "ba\n"


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, text in (("train.txt", TRAIN), ("valid.txt", VALID), ("test.txt", TEST)):
        paths[name] = tmp_path / name
        paths[name].write_text(text)
    return paths


def test_held_out_files_are_encoded_with_the_training_vocabulary(files):
    corpus = load_corpus(files["train.txt"], val=files["valid.txt"], test=files["test.txt"])
    data = prepare_text(corpus, mode="raw", token="char")
    assert data.split == "files"
    assert data.vocab.idx_to_token == ["<unk>", "a", "b", "c", " ", "\n"]
    assert data.train.tolist() == [1, 1, 1, 1, 1, 4, 2, 2, 2, 2, 4, 3, 3, 3, 5]  # the whole training file
    assert data.val.tolist() == [3, 1, 2, 4, 0, 0, 5]
    assert data.test.tolist() == [2, 1, 5]
    for part, text in ((data.val, VALID), (data.test, TEST)):
        assert np.array_equal(part, encode_text(text, data.vocab, "raw", "char"))
    assert data.info == {"num_tokens": 15 + 7 + 3, "train_tokens": 15, "val_tokens": 7, "test_tokens": 3}


def test_unknown_characters_in_valid_become_unk(files):
    data = prepare_text(load_corpus(files["train.txt"], val=files["valid.txt"]), mode="raw", token="char")
    assert "d" not in data.vocab and "z" not in data.vocab  # the vocabulary never sees the validation text
    assert data.vocab["<unk>"] == 0
    assert [i for i, ch in enumerate(VALID) if data.val[i] == 0] == [VALID.index("d"), VALID.index("z")]
    assert len(data.test) == 0 and data.test.dtype == data.train.dtype  # no --test: an empty test split


def test_word_tokens_and_d2l_preprocessing_match_the_training_text(tmp_path):
    (tmp_path / "tr.txt").write_text("The cat sat.\nThe cat ran!\n")
    (tmp_path / "va.txt").write_text("THE DOG sat\n")
    data = prepare_text(load_corpus(tmp_path / "tr.txt", val=tmp_path / "va.txt"), mode="d2l", token="word")
    # d2l mode lower-cases and drops punctuation in both files; "dog" is unknown.
    assert data.vocab.to_tokens(data.val.tolist()) == ["the", "<unk>", "sat"]
    assert np.array_equal(data.val, encode_text("THE DOG sat\n", data.vocab, "d2l", "word"))


def test_max_tokens_caps_training_and_the_vocabulary(files):
    data = prepare_text(load_corpus(files["train.txt"], val=files["valid.txt"]), max_tokens=5)
    assert data.train.tolist() == [1] * 5
    assert data.vocab.idx_to_token == ["<unk>", "a"]
    assert data.val.tolist() == [0, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("names", [
    ("train.txt", "valid.txt", "test.txt"),
    ("train.txt", "val.txt", "test.txt"),
    ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"),
    ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
    ("corpus.train.txt", "corpus.val.txt", None),
])
def test_split_folder_is_detected(tmp_path, names, caplog):
    for name, text in zip(names, (TRAIN, VALID, TEST)):
        if name:
            (tmp_path / name).write_text(text)
    (tmp_path / "README.md").write_text("not part of any split\n")
    (tmp_path / ".train.swp").write_text("hidden\n")
    with caplog.at_level(logging.INFO, logger="rnnlab"):
        corpus = load_corpus(tmp_path)
    assert corpus.text == TRAIN and corpus.sources == [str(tmp_path / names[0])]
    assert corpus.val.text == VALID
    assert (corpus.test.text if corpus.test else None) == (TEST if names[2] else None)
    lines = [r.getMessage() for r in caplog.records if "split files" in r.getMessage()]
    assert len(lines) == 1 and names[0] in lines[0]
    data = prepare_text(corpus)
    assert data.split == "files" and data.val.tolist() == [3, 1, 2, 4, 0, 0, 5]


def test_a_folder_without_held_out_files_is_joined_as_before(tmp_path):
    (tmp_path / "train.txt").write_text("one\n")
    (tmp_path / "notes.txt").write_text("two\n")
    assert split_folder_files(tmp_path) is None
    corpus = load_corpus(tmp_path)
    assert corpus.text == "two\none\n" and corpus.val is None and corpus.test is None


def test_two_train_files_are_ambiguous(tmp_path):
    for name in ("ptb.train.txt", "ptb.char.train.txt", "ptb.valid.txt"):
        (tmp_path / name).write_text(TRAIN)
    with pytest.raises(DataError, match="2 train files") as info:
        load_corpus(tmp_path)
    assert "ptb.train.txt" in str(info.value) and "ptb.char.train.txt" in str(info.value)


def test_split_option_conflicts(files, tmp_path):
    corpus = load_corpus(files["train.txt"], val=files["valid.txt"])
    with pytest.raises(UsageError, match="cannot be combined with --split"):
        prepare_text(corpus, split="d2l")
    with pytest.raises(UsageError, match="cannot be combined with --split"):
        prepare_text(corpus, split=(0.8, 0.1, 0.1))
    with pytest.raises(UsageError, match="needs validation or test files"):
        prepare_text(load_corpus(files["train.txt"]), split="files")
    with pytest.raises(UsageError, match="drop --val/--test"):
        load_corpus(tmp_path, val=files["valid.txt"])  # tmp_path is a split folder already


# ----------------------------------------------------------------------------------
# command line

SMALL = ["--hidden", "16", "--layers", "1", "--embed", "8", "--batch-size", "2", "--num-steps", "8",
         "--sample-length", "0"]
FOX = "the quick brown fox jumps over the lazy dog. " * 8


@pytest.fixture
def fox(tmp_path):
    (tmp_path / "fox.txt").write_text(FOX)
    (tmp_path / "v.txt").write_text("the lazy dog jumps! QZ")  # no newline: FOX has none
    (tmp_path / "t.txt").write_text("a quick fox")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "digits.txt").write_text("123 456\n")
    return tmp_path


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_train_with_val_and_test_files_then_eval_and_resume(fox, capsys, monkeypatch):
    monkeypatch.chdir(fox)
    assert main(["train", "--corpus", "fox.txt", "--val", "v.txt", "--test", "t.txt", *SMALL, "--max-steps", "3",
                 "--out", "ck", "--json"]) == 0
    summary = last_json(capsys)
    assert summary["val_tokens"] == len("the lazy dog jumps! QZ")  # characters of the val file
    assert summary["train_tokens"] == len(FOX)  # the whole --corpus trains

    saved = json.loads((fox / "ck" / "config.json").read_text())
    assert saved["train_config"]["val_corpus"] == "v.txt" and saved["train_config"]["split"] == "files"
    assert saved["data"]["val_sha1"] == hashlib.sha1((fox / "v.txt").read_bytes()).hexdigest()
    assert saved["data"]["test_sha1"] == hashlib.sha1((fox / "t.txt").read_bytes()).hexdigest()

    assert main(["eval", "ck", "--split", "test", "--json"]) == 0
    result = last_json(capsys)
    assert result["tokens"] == len("a quick fox") - 1 and result["unknown_tokens"] == 0
    assert main(["eval", "ck", "--json"]) == 0
    assert last_json(capsys)["unknown_tokens"] == 3  # !, Q and Z never occur in fox.txt

    assert main(["train", "--resume", "ck", "--max-steps", "4", "--json"]) == 0
    assert last_json(capsys)["val_tokens"] == summary["val_tokens"]

    (fox / "v.txt").write_text("something else\n")
    assert main(["eval", "ck"]) == 1
    err = capsys.readouterr().err
    assert f"validation file {fox / 'v.txt'} changed" in err  # the absolute path the checkpoint recorded


def test_cli_split_folder_and_missing_test_split(fox, capsys, monkeypatch):
    monkeypatch.chdir(fox)  # a project folder holding its texts and runs
    folder = fox / "wiki"
    folder.mkdir()
    (folder / "wiki.train.tokens").write_text(FOX)
    (folder / "wiki.valid.tokens").write_text("the dog\n")
    out = fox / "ck"
    assert main(["train", "--corpus", str(folder), *SMALL, "--max-steps", "1", "--out", str(out), "--json"]) == 0
    assert last_json(capsys)["val_tokens"] == len("the dog\n")
    assert main(["-q", "eval", str(out), "--split", "test"]) == 1  # -q: no info line about the folder
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained without a test file" in err[0]


def test_cli_corpus_stats_of_a_split_folder_counts_the_train_file(files, capsys):
    assert main(["-q", "corpus", "stats", "--corpus", str(files["train.txt"].parent), "--mode", "raw",
                 "--json"]) == 0
    assert last_json(capsys)["num_tokens"] == len(TRAIN)


def test_cli_ngram_with_val_and_test_files(fox, capsys, monkeypatch):
    monkeypatch.chdir(fox)
    out = fox / "ng"
    assert main(["ngram", "train", "--corpus", str(fox / "fox.txt"), "--val", str(fox / "v.txt"),
                 "--test", str(fox / "t.txt"), "--out", str(out), "--json"]) == 0
    result = last_json(capsys)
    assert result["train_tokens"] == 9 * 8 and result["val"]["unknown_tokens"] == 1  # d2l words: "qz"
    assert main(["ngram", "eval", str(out), "--split", "test", "--json"]) == 0
    assert last_json(capsys)["tokens"] == 2  # "a quick fox": 3 words, 2 predicted


@pytest.mark.parametrize("extra,code,message", [
    (["--val", "v.txt", "--split", "0.8,0.1,0.1"], 2, "cannot be combined with --split 0.8,0.1,0.1"),
    (["--val", "v.txt", "--split", "d2l"], 2, "cannot be combined with --split d2l"),
    (["--preset", "d2l-concise", "--val", "v.txt"], 2, "the d2l presets set it"),
    (["--val", "nope.txt"], 1, "--val nope.txt: no such file"),
    (["--test", "nope.txt"], 1, "--test nope.txt: no such file"),
    (["--val", "empty.txt"], 1, "--val empty.txt is empty"),
    (["--val", "digits.txt", "--mode", "d2l"], 1, "validation file digits.txt has no char tokens"),
])
def test_cli_errors_are_one_line(fox, extra, code, message, capsys, monkeypatch):
    monkeypatch.chdir(fox)
    assert main(["train", "--corpus", "fox.txt", *extra, *SMALL, "--max-steps", "1"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_cli_ngram_val_with_split_is_refused(fox, capsys):
    assert main(["ngram", "train", "--corpus", str(fox / "fox.txt"), "--val", str(fox / "v.txt"),
                 "--split", "d2l", "--out", str(fox / "ng")]) == 2
    assert "cannot be combined with --split d2l" in capsys.readouterr().err
