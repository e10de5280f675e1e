"""Output folders and files: never overwrite what rnnlab did not write, check paths before
the work, --overwrite; provenance of the training data on eval and --resume; honest JSON."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from rnnlab.checkpoint import load_config
from rnnlab.cli import main

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
SMALL = ["--model", "gru", "--hidden", "8", "--layers", "1", "--embed", "4", "--batch-size", "4", "--num-steps", "8",
         "--sample-length", "0", "--device", "cpu", "--precision", "fp32"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "fox.txt"
    path.write_text(TEXT)
    return path


def train(corpus, out, *extra):
    return main(["-q", "train", "--corpus", str(corpus), *SMALL, "--max-steps", "3", "--out", str(out), *extra])


def one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_of_other_files_is_never_written(corpus, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"learning_rate": 3}')
    (mine / "model.safetensors").write_bytes(b"my weights")
    before = snapshot(mine)
    for extra in ((), ("--overwrite",)):
        assert train(corpus, mine, *extra) == 2
        message = one_error(capsys)
        assert f"--out {mine} is not empty and is not an rnnlab output folder" in message and "config.json" in message
        assert snapshot(mine) == before
    assert main(["-q", "ngram", "train", "--corpus", str(corpus), "--out", str(mine), "--overwrite"]) == 2
    assert "not an rnnlab output folder" in one_error(capsys)
    assert snapshot(mine) == before


def test_a_new_run_into_an_existing_run_needs_resume_or_overwrite(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(corpus, run) == 0
    before = snapshot(run)
    assert train(corpus, run) == 2
    message = one_error(capsys)
    assert "already holds an rnnlab language-model run" in message
    assert f"rnnlab train --resume {run}" in message and "--overwrite" in message
    assert snapshot(run) == before  # its best/ and metrics.jsonl too
    # --overwrite removes rnnlab's files only: the user's notes stay, the log restarts.
    (run / "notes.txt").write_text("keep me")
    (run / "best" / "mine.txt").write_text("keep me too")
    assert train(corpus, run, "--overwrite", "--seed", "1") == 0
    assert (run / "notes.txt").read_text() == "keep me" and (run / "best" / "mine.txt").read_text() == "keep me too"
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3] and load_config(run)["train_config"]["seed"] == 1
    # Another kind of rnnlab output is refused even with --overwrite.
    assert main(["-q", "ngram", "train", "--corpus", str(corpus), "--out", str(run), "--overwrite"]) == 2
    assert "holds an rnnlab language-model run, not an rnnlab n-gram model" in one_error(capsys)


def test_resume_into_another_existing_run_is_refused(corpus, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train(corpus, a) == 0 and train(corpus, b) == 0
    before = snapshot(b)
    assert main(["-q", "train", "--resume", str(a), "--max-steps", "5", "--out", str(b)]) == 2
    assert "already holds" in one_error(capsys)
    assert snapshot(b) == before


@pytest.mark.parametrize("make_out,fragment", [
    (lambda tmp: tmp / "fox.txt", "is a file, not a folder"),
    (lambda tmp: tmp / "fox.txt" / "run", "cannot create the folder"),
])
def test_an_unusable_out_fails_before_training(corpus, tmp_path, capsys, monkeypatch, make_out, fragment):
    import rnnlab.training.loop as loop

    def no_training(*args, **kwargs):
        raise AssertionError("training started")
    monkeypatch.setattr(loop.Trainer, "fit", no_training)
    assert train(corpus, make_out(tmp_path)) == 2
    assert fragment in one_error(capsys)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_an_unwritable_out_fails_before_training(corpus, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert train(corpus, locked / "run") == 2
        assert "cannot create the folder" in one_error(capsys)
        assert train(corpus, locked) == 2
        assert "cannot write into" in one_error(capsys)
    finally:
        locked.chmod(0o755)


def test_output_files_are_not_replaced_without_overwrite(corpus, tmp_path, capsys):
    plot = tmp_path / "zipf.png"
    plot.write_bytes(b"my figure")
    assert main(["-q", "corpus", "stats", "--corpus", str(corpus), "--plot", str(plot)]) == 2
    assert f"--plot {plot} already exists; pass --overwrite" in one_error(capsys)
    assert plot.read_bytes() == b"my figure"
    assert main(["-q", "corpus", "stats", "--corpus", str(corpus), "--plot", str(plot), "--overwrite"]) == 0
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert main(["-q", "corpus", "stats", "--corpus", str(corpus), "--plot", str(tmp_path / "zipf.nope")]) == 2
    assert "unknown figure format" in one_error(capsys)

    arpa = tmp_path / "lm.arpa"
    arpa.write_text("mine")
    assert main(["-q", "ngram", "train", "--corpus", str(corpus), "--out", str(tmp_path / "ng"),
                 "--arpa", str(arpa)]) == 2
    assert "--arpa" in one_error(capsys) and arpa.read_text() == "mine"
    assert not (tmp_path / "ng").exists()  # checked before anything was created or trained
    assert main(["-q", "ngram", "train", "--corpus", str(corpus), "--out", str(tmp_path / "ng")]) == 0
    assert main(["-q", "ngram", "export", str(tmp_path / "ng"), str(arpa)]) == 2
    assert "export file" in one_error(capsys) and arpa.read_text() == "mine"
    assert main(["-q", "ngram", "export", str(tmp_path / "ng"), str(arpa), "--overwrite"]) == 0
    assert "\\data\\" in arpa.read_text()
    assert main(["-q", "ngram", "import", str(arpa), "--out", str(tmp_path / "ng")]) == 2
    assert "already holds an rnnlab n-gram model" in one_error(capsys)
    assert main(["-q", "ngram", "import", str(arpa), "--out", str(tmp_path / "ng"), "--overwrite"]) == 0


def test_eval_reads_the_recorded_corpus_and_refuses_changed_text(corpus, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "train", "--corpus", "fox.txt", *SMALL, "--max-steps", "3", "--out", "run"]) == 0
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "fox.txt").write_text("other text in a file of the same relative name " * 40)
    monkeypatch.chdir(elsewhere)  # the relative name now names another file: not read
    assert main(["-q", "eval", str(run)]) == 1  # and the recorded location is outside the user's folders
    assert "pass --corpus PATH" in one_error(capsys)
    assert main(["-q", "eval", str(run), "--corpus", str(corpus), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out.splitlines()[-1])

    moved = tmp_path / "moved.txt"
    shutil.move(corpus, moved)  # the recorded file is gone; ./fox.txt here is other text
    assert main(["-q", "eval", str(run)]) == 1
    assert "changed since the checkpoint was written" in one_error(capsys)
    assert main(["-q", "eval", str(run), "--corpus", str(moved), "--json"]) == 0
    again = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert again["perplexity"] == scored["perplexity"] and again["tokens"] == scored["tokens"]
    assert main(["-q", "eval", str(run), "--corpus", "fox.txt"]) == 1
    assert "--corpus fox.txt is not a copy of the training corpus" in one_error(capsys)

    assert main(["-q", "train", "--resume", str(run), "--max-steps", "5"]) == 1
    assert "changed since the checkpoint" in one_error(capsys)
    assert main(["-q", "train", "--resume", str(run), "--max-steps", "5", "--corpus", "fox.txt"]) == 1
    assert "not a copy of the training corpus" in one_error(capsys)
    assert main(["-q", "train", "--resume", str(run), "--max-steps", "5", "--corpus", str(moved)]) == 0
    assert load_config(run)["progress"]["step"] == 5
    assert main(["-q", "train", "--resume", str(run), "--max-steps", "5", "--corpus", str(moved)]) == 2
    assert "is not above the 5 steps" in one_error(capsys)


def test_folder_corpora_record_a_hash_of_names_and_contents(tmp_path, capsys, monkeypatch):
    from rnnlab.data.corpus import load_corpus
    monkeypatch.chdir(tmp_path)  # the project folder: its texts and runs
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT)
    (folder / "b.txt").write_text(TEXT.upper())
    first = load_corpus(str(folder))
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert load_corpus(str(copy)).sha1 == first.sha1 == load_corpus(str(folder / "*.txt")).sha1
    (copy / "b.txt").rename(copy / "c.txt")
    assert load_corpus(str(copy)).sha1 != first.sha1
    assert load_corpus("pydoc").sha1  # the built-in text is hashed too

    run = tmp_path / "run"
    assert main(["-q", "train", "--corpus", str(folder), *SMALL, "--max-steps", "3", "--out", str(run)]) == 0
    assert load_config(run)["data"]["sha1"] == first.sha1
    (folder / "a.txt").write_text(TEXT + "edited")
    capsys.readouterr()
    assert main(["-q", "eval", str(run)]) == 1
    assert "corpus" in one_error(capsys)
    assert main(["-q", "train", "--resume", str(run), "--max-steps", "4"]) == 1
    assert "changed since the checkpoint" in one_error(capsys)


def test_interrupt_saves_and_prints_the_resume_command(corpus, tmp_path, capsys, monkeypatch):
    import rnnlab.training.loop as loop
    calls = []
    original = loop.Trainer._write_logs

    def interrupted_on_the_third(self, record):
        calls.append(record)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, record)
    monkeypatch.setattr(loop.Trainer, "_write_logs", interrupted_on_the_third)
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "train", "--corpus", str(corpus), *SMALL, "--eval-every-steps", "1", "--out", str(run)]) == 130
    message = one_error(capsys)
    assert message.startswith("error: interrupted") and f"rnnlab train --resume {run}" in message
    assert load_config(run)["progress"]["stopped"] == "interrupted"
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    # The log lost its third line; the resumed run rebuilds it from the checkpoint's history.
    assert main(["-q", "train", "--resume", str(run), "--max-steps", "4"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [r["step"] for r in load_config(run)["progress"]["history"]] and steps[-1] == 4


def test_json_output_is_standard_json(tmp_path, capsys):
    series = tmp_path / "flat.txt"
    series.write_text("\n".join(["5"] * 200))  # a flat series: MASE divides by zero
    assert main(["-q", "forecast", "--series", str(series), "--epochs", "1", "--horizon", "4", "--json"]) == 0

    def strict(constant):
        raise ValueError(f"not JSON: {constant}")
    result = json.loads(capsys.readouterr().out.splitlines()[-1], parse_constant=strict)
    assert result["mase"] is None

    from rnnlab.jsonout import dumps
    assert dumps({"a": [float("nan"), {"b": float("-inf")}], "c": (1.5,)}) == '{"a": [null, {"b": null}], "c": [1.5]}'


@pytest.mark.parametrize("optimizer,given,expected", [
    ("adamw", None, 0.01), ("adamw", 0.0, 0.0), ("adamw", 0.1, 0.1), ("adam", None, 0.0), ("sgd", 0.0, 0.0)])
def test_weight_decay_zero_means_zero(optimizer, given, expected):
    from rnnlab.models import build_model
    from rnnlab.training.config import make_config
    from rnnlab.training.loop import make_optimizer
    config = make_config(model="gru", hidden_size=8, optimizer=optimizer, weight_decay=given)
    optim = make_optimizer(build_model("gru", 10, hidden_size=8, num_layers=1), config)
    assert optim.param_groups[0]["weight_decay"] == expected
