"""End-to-end CLI: train -> eval -> generate -> resume, and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rnnlab.cli import main

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
SMALL = ["--model", "gru", "--hidden", "16", "--layers", "1", "--embed", "8", "--batch-size", "4",
         "--num-steps", "8", "--sample-length", "10"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "fox.txt"
    path.write_text(TEXT)
    return path


def last_json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_train_eval_generate_resume(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a project folder holding its text and its runs
    out = tmp_path / "ck"
    assert main(["train", "--corpus", str(corpus), *SMALL, "--epochs", "2", "--out", str(out), "--json"]) == 0
    summary = last_json(capsys)
    for key in ("train_perplexity", "val_perplexity", "tokens_per_second", "epochs", "seconds"):
        assert summary[key] is not None, key
    assert summary["epochs"] == 2

    assert main(["eval", str(out), "--split", "test", "--json"]) == 0
    result = last_json(capsys)
    assert set(result) >= {"perplexity", "bits_per_token", "tokens", "unknown_tokens"}
    assert result["tokens"] == int(len(TEXT) * 0.05) - 1

    other = tmp_path / "other.txt"
    other.write_text("the lazy dog XYZ")
    assert main(["eval", str(out), "--text", str(other), "--json"]) == 0
    result = last_json(capsys)
    assert result["tokens"] == len("the lazy dog XYZ") - 1 and result["unknown_tokens"] == 3

    assert main(["generate", str(out), "--prefix", "the ", "--length", "20", "--greedy", "--num-samples", "2",
                 "--json"]) == 0
    samples = last_json(capsys)["samples"]
    assert len(samples) == 2 and samples[0] == samples[1] and samples[0].startswith("the ")

    assert main(["generate", str(out), "--prefix", "the ", "--length", "15", "--seed", "3"]) == 0
    streamed = capsys.readouterr().out
    assert streamed.startswith("the ") and len(streamed.rstrip("\n")) == 19

    assert main(["train", "--resume", str(out), "--epochs", "3", "--json"]) == 0
    assert last_json(capsys)["epochs"] == 3


def test_d2l_preset_can_be_shortened(timemachine_dir, tmp_path, capsys):
    assert main(["train", "--preset", "d2l-concise", "--data-dir", str(timemachine_dir), "--epochs", "2",
                 "--eval-every", "1", "--json"]) == 0
    summary = last_json(capsys)
    assert summary["train_tokens"] == 10_000 and summary["vocab_size"] == 28
    assert summary["val_tokens"] == 170_580 - 10_000  # the rest of the book is held out
    assert summary["sample"].startswith("time traveller")


@pytest.mark.parametrize("argv,code,message", [
    (["train", "--model", "transformer"], 2, "unknown model 'transformer'"),
    (["train", "--optimizer", "rmsprop"], 2, "unknown optimizer"),
    (["train", "--hidden", "0"], 2, "--hidden must be an integer from 1 to"),
    (["train", "--preset", "d2l-huge"], 2, "unknown preset"),
    (["eval", "/nonexistent/ck"], 1, "not a folder"),
])
def test_errors_are_one_line(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_resume_refuses_other_options_and_non_checkpoints(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert "not an rnnlab checkpoint" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--hidden", "8"]) == 2
    assert "--hidden" in capsys.readouterr().err


def test_short_corpus_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "short.txt"
    path.write_text("tiny text")
    assert main(["train", "--corpus", str(path)]) == 1
    err = capsys.readouterr().err
    # The size rule's line may come first (when logging reaches stderr); the failure is one line.
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "batch_size * num_steps + 1" in errors[0]
    assert "Traceback" not in err and all(line.startswith(("error:", "size:")) for line in err.splitlines())


def test_console_script_runs_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "train", "--corpus", str(tmp_path / "missing.txt")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_a_refused_command_leaves_no_empty_output_folder(tmp_path, capsys, monkeypatch):
    from rnnlab.cli import main
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept").mkdir()  # the user's own empty folder stays
    for argv in (["train", "--corpus", "missing.txt", "--out", "new/deep/run"],
                 ["ngram", "train", "--corpus", "missing.txt", "--out", "ng"],
                 ["classify", "train", "--data", "missing.csv", "--out", "clf"],
                 ["train", "--corpus", "missing.txt", "--out", "kept"]):
        assert main(["-q", *argv]) == 1
    assert "error:" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    # a folder that received work keeps it, even when a later step fails
    (tmp_path / "fox.txt").write_text("the quick brown fox jumps over the lazy dog. " * 30)
    assert main(["-q", "train", "--corpus", "fox.txt", "--hidden", "8", "--layers", "1", "--batch-size", "4",
                 "--num-steps", "8", "--max-steps", "1", "--sample-length", "0", "--out", "run"]) == 0
    assert main(["-q", "train", "--corpus", "fox.txt", "--out", "run"]) == 2  # exists: refused
    assert (tmp_path / "run" / "config.json").is_file()
