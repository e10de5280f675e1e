"""`rnnlab corpus prepare` and `--corpus DIR` in train, eval and ngram train."""
from __future__ import annotations

import json

import numpy as np

from rnnlab.cli import main
from rnnlab.data.corpus import load_corpus
from rnnlab.data.dataset import prepare_text
from rnnlab.data.prepare import manifest_sha1, open_prepared


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def text(seed: int, n_words: int = 6000) -> str:
    words = load_corpus("pydoc").text[:40_000].split()
    rng = np.random.default_rng(seed)
    return " ".join(words[i] for i in rng.integers(0, len(words), n_words)) + "\n"


def test_prepare_json_reuse_and_errors(tmp_path, capsys):
    source = tmp_path / "text.txt"
    source.write_text(text(0), encoding="utf-8")
    out = tmp_path / "prepared"
    code, stdout, _ = run(["corpus", "prepare", "--corpus", str(source), "--out", str(out), "--token", "word",
                           "--min-freq", "2", "--json"], capsys)
    assert code == 0
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["reused"] is False and result["token"] == "word" and result["dtype"] == "uint16"
    ref = prepare_text(load_corpus(str(source)), token="word", min_freq=2)
    assert result["train_tokens"] == len(ref.train) and result["vocab_size"] == len(ref.vocab)
    code, stdout, _ = run(["corpus", "prepare", "--corpus", str(source), "--out", str(out), "--token", "word",
                           "--min-freq", "2"], capsys)
    assert code == 0 and stdout.startswith("up to date")
    code, _, err = run(["corpus", "prepare", "--corpus", str(source), "--out", str(out)], capsys)
    assert code == 2 and err.startswith("error: ") and "--overwrite" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["corpus", "prepare", "--corpus", str(tmp_path / "missing.txt"), "--out", str(out)], capsys)
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    code, _, err = run(["corpus", "prepare", "--corpus", str(source), "--out", str(tmp_path / "x"),
                        "--split", "0.9,0.2,0.1"], capsys)
    assert code == 2 and "split fractions" in err


def test_train_eval_and_ngram_from_a_prepared_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # recorded paths are read only inside the user's folders
    source = tmp_path / "text.txt"
    source.write_text(text(1), encoding="utf-8")
    assert run(["corpus", "prepare", "--corpus", str(source), "--out", "prepared"], capsys)[0] == 0
    code, stdout, err = run(["--threads", "1", "train", "--corpus", "prepared", "--out", "run", "--max-steps", "2",
                             "--hidden", "8", "--layers", "1", "--batch-size", "4", "--num-steps", "8",
                             "--json"], capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["sha1"] == manifest_sha1(tmp_path / "prepared")
    assert config["data"]["location"] == str(tmp_path / "prepared")
    code, stdout, err = run(["eval", "run", "--json"], capsys)
    assert code == 0, err
    code, stdout, err = run(["ngram", "train", "--corpus", "prepared", "--out", "ngram", "--order", "3",
                             "--mode", "raw", "--token", "char",  # ngram train defaults to d2l words
                             "--json"], capsys)
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["train_tokens"] == len(open_prepared(tmp_path / "prepared").train)
    code, stdout, err = run(["ngram", "eval", "ngram", "--split", "test", "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["tokens"] == len(open_prepared(tmp_path / "prepared").test) - 1
    # the folder prepared again from changed text: eval refuses to score other data
    source.write_text(text(2), encoding="utf-8")
    assert run(["corpus", "prepare", "--corpus", str(source), "--out", "prepared"], capsys)[0] == 0
    code, _, err = run(["eval", "run"], capsys)
    assert code == 1 and "changed since the checkpoint was written" in err


def test_a_bpe_folder_trains_a_model_that_keeps_its_tokenizer(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "text.txt"
    source.write_text(text(3, 3000), encoding="utf-8")
    code, stdout, err = run(["corpus", "prepare", "--corpus", str(source), "--out", "bpe", "--token", "bpe",
                             "--vocab-size", "300", "--json"], capsys)
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    ref = prepare_text(load_corpus(str(source)), token="bpe", vocab_size=300)
    assert result["token"] == "bpe" and result["train_tokens"] == len(ref.train)
    code, _, err = run(["--threads", "1", "train", "--corpus", "bpe", "--token", "bpe", "--out", "run",
                        "--max-steps", "2", "--hidden", "8", "--layers", "1", "--batch-size", "4",
                        "--num-steps", "8", "--sample-length", "0"], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "tokenizer.json").read_text(encoding="utf-8") == \
        (tmp_path / "bpe" / "tokenizer.json").read_text(encoding="utf-8")
    code, stdout, err = run(["generate", "run", "--prefix", "import os", "--length", "8", "--seed", "0"], capsys)
    assert code == 0 and stdout.startswith("import os"), err
    code, stdout, err = run(["eval", "run", "--json"], capsys)
    assert code == 0 and json.loads(stdout.strip().splitlines()[-1])["bits_per_char"] > 0, err
    code, stdout, err = run(["corpus", "stats", "--corpus", "bpe", "--token", "bpe", "--mode", "raw", "--json"],
                            capsys)  # its training split, without --split
    assert code == 0 and json.loads(stdout.strip().splitlines()[-1])["num_tokens"] == len(ref.train), err
    code, _, err = run(["train", "--corpus", "bpe", "--out", "run2", "--max-steps", "1"], capsys)
    assert code == 2 and "--token bpe" in err  # the folder's tokens must be asked for
