"""Crash safety of checkpoints: SIGKILL at random moments, SIGTERM, and the commit protocol.

After any kill, the latest checkpoint of a run folder and its ``best/`` must each be a
complete checkpoint (the old one or the new one), loadable by :func:`rnnlab.load` and
by the resume loader.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnlab.checkpoint import COMMIT, is_temporary, load_config, load_tensors, recover_checkpoint, save_checkpoint
from rnnlab.errors import CheckpointError

TEXT = "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs. " * 30
# Tiny model, a step evaluation (and so a checkpoint) after every step.
TRAIN = ["--model", "gru", "--hidden", "8", "--layers", "1", "--embed", "4", "--batch-size", "2", "--num-steps", "8",
         "--sample-length", "0", "--eval-every-steps", "1", "--early-stop", "0", "--lr-schedule", "constant",
         "--lr", "0.02", "--device", "cpu", "--precision", "fp32", "--split", "0.9,0.05,0.05"]


def _has_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / COMMIT).is_dir()


def _check_loads(folder: Path) -> None:
    """Everything ``rnnlab.load``, ``eval`` and ``--resume`` read from ``folder``."""
    import rnnlab
    config = load_config(folder)
    for stem in ("model", "optimizer", "state"):
        load_tensors(folder, stem, config)
    rnnlab.load(folder)


def _saving(name: str) -> bool:
    """A temporary of a checkpoint save (not the write probe of the start-up check)."""
    return is_temporary(name) and "probe" not in name


def _wait_for_a_save(out: Path, deadline: float) -> None:
    """Poll until a save is in progress in ``out`` or ``out/best`` (its temporaries exist)."""
    while time.monotonic() < deadline:
        for folder in (out, out / "best"):
            try:
                if any(_saving(name) for name in os.listdir(folder)):
                    return
            except OSError:
                pass
        time.sleep(0.0002)


def _train_in_child(out: Path, corpus: Path) -> None:
    """Body of a forked child: start the run, or resume it when a checkpoint exists."""
    from rnnlab.cli import main
    try:
        load_config(out)
        argv = ["-q", "train", "--resume", str(out), "--epochs", "100000"]
    except CheckpointError:
        argv = ["-q", "train", "--corpus", str(corpus), *TRAIN, "--epochs", "100000", "--out", str(out)]
    code = 99
    try:
        code = main(argv)
    finally:
        os._exit(code)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_at_random_moments_never_breaks_latest_or_best(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the project folder: the resume at the end reads the corpus here
    corpus = tmp_path / "fox.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "run"
    rng = random.Random(1234)
    # One short run in this process first: every lazy import (the optimizers pull in
    # torch._dynamo, about a second) is then done, and each forked child trains at once.
    from rnnlab.cli import main
    assert main(["-q", "train", "--corpus", str(corpus), *TRAIN, "--max-steps", "2",
                 "--out", str(tmp_path / "warm-up")]) == 0
    kills, loaded, mid_save, saved_once = 0, 0, 0, {"latest": False, "best": False}
    started = time.monotonic()
    while kills < 50 and time.monotonic() - started < 60:  # the issue: at least 50 kills within a minute
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            _train_in_child(out, corpus)
        if kills % 2:
            time.sleep(rng.uniform(0.05, 0.9))  # any moment
        else:
            _wait_for_a_save(out, deadline=time.monotonic() + 2)  # a moment inside a save
            time.sleep(rng.uniform(0, 0.004))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), f"the training child exited by itself (status {status})"
        kills += 1
        entries = set(os.listdir(out)) if out.is_dir() else set()
        best_entries = set(os.listdir(out / "best")) if (out / "best").is_dir() else set()
        mid_save += any(_saving(name) for name in entries | best_entries)
        for name, folder in (("latest", out), ("best", out / "best")):
            if name == "best" and not folder.exists():
                assert not saved_once["best"], "best/ disappeared"
                continue
            if not _has_checkpoint(folder):
                # Only before the first completed save; best/ never exists half-written.
                assert name == "latest" and not saved_once["latest"], f"{name} lost its checkpoint after {kills} kills"
                continue
            _check_loads(folder)
            saved_once[name] = True
            loaded += 1
    assert kills >= 50, f"only {kills} kills in the time limit"
    assert mid_save >= 5, f"only {mid_save} kills hit a save in progress"
    assert saved_once["latest"] and saved_once["best"]
    print(f"\n{kills} SIGKILLs, {loaded} checkpoint loads after them, {mid_save} kills left temporary files "
          f"(a save in progress)")
    # The next start recovers: no temporaries left, and the log agrees with the history.
    recover_checkpoint(out)
    recover_checkpoint(out / "best")
    assert not [n for n in os.listdir(out) + os.listdir(out / "best") if is_temporary(n)]
    assert main(["-q", "train", "--resume", str(out), "--max-steps",
                 str(load_config(out)["progress"]["step"] + 1)]) == 0
    history = load_config(out)["progress"]["history"]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [r["step"] for r in history]


def _wait_until_training_is_steady(proc: subprocess.Popen, out: Path, deadline: float) -> None:
    """Wait for a readiness signal, not for a guessed time: the run has saved its latest
    checkpoint and ``best/`` and written ``perplexity.png`` (after the second evaluation),
    so the start-up imports, including the lazy import of matplotlib for the plot, are
    over. A SIGTERM raised inside a half-done import of a C extension (matplotlib, PIL)
    could leave the interpreter to abort while finalizing ("Fatal Python error",
    exit -6), which is what a fixed 0.2 s sleep after the first save hit under load."""
    while True:
        ready = ((out / "config.json").is_file() and (out / "best" / "config.json").is_file()
                 and (out / "perplexity.png").is_file())
        if ready:
            return
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training did not reach its second evaluation in time"
        time.sleep(0.05)


def test_sigterm_saves_and_prints_the_resume_command(tmp_path):
    corpus = tmp_path / "fox.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "-q", "train", "--corpus", str(corpus), *TRAIN,
                             "--epochs", "100000", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_until_training_is_steady(proc, out, deadline=time.monotonic() + 120)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: terminated (SIGTERM)")
    assert f"rnnlab train --resume {out}" in lines[0]
    config = load_config(out)
    assert config["progress"]["stopped"] == "interrupted"
    assert f"(step {config['progress']['step']})" in lines[0]
    _check_loads(out)
    _check_loads(out / "best")


def test_a_commit_cut_short_reads_as_the_new_checkpoint_and_is_finished(tmp_path):
    folder = tmp_path / "ck"
    save_checkpoint(folder, {"n": 1}, {"w": torch.zeros(3)}, kind="test")
    save_checkpoint(folder, {"n": 2}, {"w": torch.ones(3)}, kind="test")
    # Replay a save killed after its commit point, with model.safetensors already moved:
    staging = tmp_path / "stage"
    save_checkpoint(staging, {"n": 3}, {"w": torch.full((3,), 3.0)}, kind="test")
    (folder / COMMIT).mkdir()
    os.replace(staging / "model.safetensors", folder / "model.safetensors")
    os.replace(staging / "config.json", folder / COMMIT / "config.json")
    assert load_config(folder)["n"] == 3  # the reader sees the new checkpoint, read-only
    assert torch.equal(load_tensors(folder)["w"], torch.full((3,), 3.0))
    (folder / ".rnnlab-tmp-checkpoint-1-abcd").mkdir()  # an abandoned staging folder
    recover_checkpoint(folder)
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"]
    assert load_config(folder)["n"] == 3


def test_a_save_cut_short_before_its_commit_point_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "ck"
    save_checkpoint(folder, {"n": 1}, {"w": torch.zeros(3)}, kind="test")
    import rnnlab.checkpoint as checkpoint

    def crash(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(checkpoint.os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(folder, {"n": 2}, {"w": torch.ones(3)}, kind="test")
    monkeypatch.undo()
    assert load_config(folder)["n"] == 1 and torch.equal(load_tensors(folder)["w"], torch.zeros(3))
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"]


def test_checkpoints_of_the_previous_layout_load_and_their_temporaries_are_cleaned(tmp_path):
    """A folder saved file by file (each a temporary name + rename) has the same final layout."""
    import hashlib
    from safetensors.torch import save

    from rnnlab.checkpoint import FORMAT, prepare_output_folder
    folder = tmp_path / "old"
    folder.mkdir()
    data = save({"w": torch.arange(4.0)})
    (folder / "model.safetensors").write_bytes(data)
    (folder / "config.json").write_text(json.dumps({"format": FORMAT, "kind": "forecaster", "files": {
        "model.safetensors": hashlib.sha256(data).hexdigest()}}))
    (folder / ".model.safetensors.tmp-4242").write_bytes(b"half a file")  # a save killed mid-write
    (folder / ".notes.tmp-1").write_text("the user's")
    assert torch.equal(load_tensors(folder)["w"], torch.arange(4.0))
    with pytest.raises(Exception, match="already holds an rnnlab forecaster"):
        prepare_output_folder(folder, "forecaster")
    prepare_output_folder(folder, "forecaster", resume=True)  # continuing in place: recovers
    assert sorted(os.listdir(folder)) == [".notes.tmp-1", "config.json", "model.safetensors"]
