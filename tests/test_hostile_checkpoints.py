"""Hostile checkpoint folders: every value read from one is checked before use.

A hand-edited or crafted ``config.json`` (keys, types, ranges, the vocabulary) and tensor
files whose checksums were recomputed (names, shapes, dtypes, values) end in one
:class:`CheckpointError` naming the file and the key, never a traceback; paths recorded
in a checkpoint are read only inside the folders the user named.
"""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.errors import CheckpointError, DataError

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
SMALL = ["--model", "lstm", "--hidden", "8", "--layers", "1", "--embed", "4", "--batch-size", "4", "--num-steps", "8",
         "--sample-length", "0", "--device", "cpu", "--precision", "fp32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "fox.txt").write_text(TEXT)
    assert main(["-q", "train", "--corpus", str(root / "fox.txt"), *SMALL, "--max-steps", "2",
                 "--out", str(root / "run")]) == 0
    return root


@pytest.fixture
def run(trained, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained / "run", copy)
    return copy


def edit_config(folder, path: str, value=None, delete: bool = False) -> None:
    config = json.loads((folder / "config.json").read_text())
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if delete:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    (folder / "config.json").write_text(json.dumps(config))


def edit_tensors(folder, stem: str, change) -> None:
    """Rewrite ``stem.safetensors`` with ``change(tensors)`` applied and its checksum recomputed."""
    from safetensors.torch import load_file, save

    path = folder / f"{stem}.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    data = save(tensors)
    path.write_bytes(data)
    config = json.loads((folder / "config.json").read_text())
    config["files"][path.name] = hashlib.sha256(data).hexdigest()
    (folder / "config.json").write_text(json.dumps(config))


CONFIG_EDITS = [
    ("model.hidden_size", "8", "key 'model.hidden_size' must be an integer from 1"),
    ("model.hidden_size", 10**12, "key 'model.hidden_size' must be an integer from 1"),
    ("model.num_layers", 10**9, "key 'model.num_layers' must be an integer from 1 to 1024"),
    ("model.model", "transformer", "key 'model.model' must be one of"),
    ("model.dropout", float("nan"), "key 'model.dropout' must be in [0, 1)"),
    ("model.tie_weights", "yes", "key 'model.tie_weights' must be True or False"),
    ("model.vocab_size", 3, "key 'model.vocab_size' is 3, but the vocabulary has"),
    ("model.extra", 1, "key 'model.extra' is not an option of the lstm model"),
    ("model", [1, 2], "key 'model' must be a JSON object"),
    ("vocab.token_freqs", [["a", "many"]], "key 'vocab.token_freqs' must be a list of [token, count] pairs"),
    ("vocab.idx_to_token", ["<unk>", "a"], "key 'vocab' is not a valid vocabulary"),
    ("preprocessing.token", "sentence", "key 'preprocessing.token' must be one of"),
    ("train_config.batch_size", "4", "key 'train_config.batch_size' must be int"),
    ("train_config.hidden_size", 16, "key 'train_config.hidden_size' is 16, but the model has hidden_size 8"),
    ("train_config.lr", -1, "key 'train_config' is not a valid training configuration"),
    ("train_config.sample_length", 10**12, "key 'train_config.sample_length' must be at most 1,000,000"),
    ("train_config.batch_size", 10**12, "key 'train_config.batch_size' must be at most"),
    ("progress.step", -5, "key 'progress.step' must be an integer >= 0"),
    ("progress.history", [{"step": 1}], "key 'progress.history[0]' must be an evaluation record"),
    ("data.location", 7, "key 'data.location' must be a string or null"),
    ("carried_state_parts", 9, "key 'carried_state_parts' must be 0, 1 or 2"),
]


@pytest.mark.parametrize("key,value,fragment", CONFIG_EDITS, ids=[f"{k}={v!r}" for k, v, _ in CONFIG_EDITS])
def test_config_values_are_checked_key_by_key(run, key, value, fragment):
    """Inference (rnnlab.load) reads and checks the model, vocabulary and preprocessing; the
    training state is read, and checked, by what resumes or re-reads the data."""
    from rnnlab.training.checkpoint import load_training_config
    edit_config(run, key, value)
    inference = key.split(".")[0] in ("model", "vocab", "preprocessing")
    with pytest.raises(CheckpointError, match="config.json: ") as info:
        rnnlab.load(run) if inference else load_training_config(run)
    assert fragment in str(info.value)
    if not inference:
        rnnlab.load(run)  # what inference does not read cannot stop it


def test_a_missing_key_is_named(run, capsys):
    edit_config(run, "model.model", delete=True)
    with pytest.raises(CheckpointError, match=r"key 'model.model' is missing"):
        rnnlab.load(run)
    assert main(["-q", "eval", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.json: key 'model.model' is missing" in err[0]


@pytest.mark.parametrize("change,fragment", [
    (lambda t: t.pop("output.weight"), "lacks tensor 'output.weight'"),
    (lambda t: t.update(extra=torch.zeros(2)), "has tensor 'extra'"),
    (lambda t: t.update({"output.weight": torch.zeros(3, 3)}), "tensor 'output.weight' is float32 [3, 3]"),
    (lambda t: t.update({"output.weight": t["output.weight"].double()}), "tensor 'output.weight' is float64"),
    (lambda t: t["output.weight"].fill_(float("nan")), "tensor 'output.weight' holds NaN"),
], ids=["missing", "extra", "shape", "dtype", "nan"])
def test_weights_are_checked_against_the_model_the_config_describes(run, change, fragment):
    edit_tensors(run, "model", change)
    with pytest.raises(CheckpointError, match="model.safetensors") as info:
        rnnlab.load(run)
    assert fragment in str(info.value)


def test_a_damaged_tensor_file_with_a_matching_checksum(run):
    data = b"\x08\x00\x00\x00\x00\x00\x00\x00{not json"
    (run / "model.safetensors").write_bytes(data)
    edit_config(run, "files", {**json.loads((run / "config.json").read_text())["files"],
                               "model.safetensors": hashlib.sha256(data).hexdigest()})
    with pytest.raises(CheckpointError, match="is not a valid safetensors file"):
        rnnlab.load(run)


@pytest.mark.parametrize("stem,change,fragment", [
    ("optimizer", lambda t: t.update({"0.exp_avg": torch.zeros(2, 2)}), "tensor '0.exp_avg' is float32 [2, 2]"),
    ("optimizer", lambda t: t.update({"99.exp_avg": torch.zeros(2)}), "has tensor '99.exp_avg'"),
    ("optimizer", lambda t: t.pop("0.exp_avg_sq"), "lacks its '0.exp_avg_sq'"),
    ("optimizer", lambda t: t["0.exp_avg_sq"].fill_(-1.0), "NaN, infinite or negative"),
    ("state", lambda t: t.update(torch_rng=torch.zeros(3, dtype=torch.uint8)), "tensor 'torch_rng' is uint8 [3]"),
], ids=["shape", "index", "missing", "negative", "rng"])
def test_resume_checks_optimizer_and_rng_state(run, capsys, stem, change, fragment):
    edit_tensors(run, stem, change)
    assert main(["-q", "train", "--resume", str(run), "--max-steps", "3", "--corpus", _corpus(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{stem}.safetensors" in err[0] and fragment in err[0], err


@pytest.mark.parametrize("key,value,fragment", [
    ("optimizer.param_groups.0.betas", ["a", 2], "key 'optimizer.param_groups[0].betas' must be like"),
    ("optimizer.param_groups.0.betas", [0.9, 1e308], "key 'optimizer.param_groups[0].betas' must be from 0 to 1"),
    ("optimizer.param_groups.0.weight_decay", 1e308, "key 'optimizer.param_groups[0].weight_decay' must be from"),
    ("optimizer.param_groups.0.amsgrad", True, "key 'optimizer.param_groups[0].amsgrad' must be False"),
    ("optimizer.param_groups.0.capturable", True, "key 'optimizer.param_groups[0].capturable' must be False"),
    ("optimizer.param_groups.0.params", [0, 0], "key 'optimizer.param_groups[0].params' must be"),
    ("progress.loss_sum", 1e300, "key 'progress.loss_sum' is 1e+300"),
], ids=["betas-type", "betas-range", "weight-decay", "amsgrad", "capturable", "params", "epoch-nll"])
def test_resume_checks_optimizer_hyper_parameters(run, capsys, key, value, fragment):
    edit_config(run, key, value)
    assert main(["-q", "train", "--resume", str(run), "--max-steps", "3", "--corpus", _corpus(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def _corpus(run):
    return json.loads((run / "config.json").read_text())["data"]["location"]


def test_recorded_paths_are_read_only_inside_the_users_folders(trained, tmp_path, capsys, monkeypatch):
    """A checkpoint elsewhere whose config names a file: the file is not read unless the
    user names it (--corpus, --data-dir) or it lies in the current folder."""
    secret = tmp_path / "private" / "notes.txt"
    secret.parent.mkdir()
    secret.write_text(TEXT.upper())
    downloaded = tmp_path / "downloads" / "run"
    shutil.copytree(trained / "run", downloaded)
    edit_config(downloaded, "data.location", str(secret))
    edit_config(downloaded, "train_config.corpus", str(secret))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    reads = []
    import rnnlab.data.corpus as corpus_module
    original = corpus_module.read_text_file
    monkeypatch.setattr(corpus_module, "read_text_file", lambda path, *a: reads.append(str(path)) or original(path, *a))
    for command in (["eval", str(downloaded)], ["train", "--resume", str(downloaded), "--max-steps", "3"]):
        assert main(["-q", *command]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"records its training corpus at {secret}, outside the current folder" in err[0]
    assert reads == []
    edit_config(downloaded, "data.location", None)
    edit_config(downloaded, "train_config.corpus", "../private/notes.txt")
    assert main(["-q", "eval", str(downloaded)]) == 1
    assert "names its training corpus '../private/notes.txt', outside" in capsys.readouterr().err
    assert reads == []
    # Named by the user: read (and then checked against the recorded SHA-1 as always).
    assert main(["-q", "eval", str(downloaded), "--corpus", str(secret)]) == 1
    assert "is not a copy of the training corpus" in capsys.readouterr().err
    assert reads == [str(secret)]
    with pytest.raises(DataError, match="outside the current folder"):
        from rnnlab.data.corpus import recorded_location
        recorded_location(str(secret), "notes.txt")


def test_nothing_beside_a_checkpoint_is_read_unless_the_user_names_it(trained, tmp_path, capsys, monkeypatch):
    """A downloaded run folder whose config names a file beside it (by its recorded absolute
    location, a symlink, or a relative path): rnnlab reads none of them because the
    checkpoint says so; a refusal says to pass --corpus PATH, and a path the user gives
    (--corpus, --data-dir, the current folder) is read."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    beside = downloads / "fox.txt"
    shutil.copy(trained / "fox.txt", beside)  # same text, so only the rule can refuse it
    private = tmp_path / "private"
    private.mkdir()
    shutil.copy(trained / "fox.txt", private / "notes.txt")
    (downloads / "link.txt").symlink_to(private / "notes.txt")
    run = downloads / "run"
    shutil.copytree(trained / "run", run)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    for location, as_given in ((str(beside), "fox.txt"), (str(downloads / "link.txt"), "../downloads/link.txt"),
                               (None, "../downloads/fox.txt")):
        edit_config(run, "data.location", location)
        edit_config(run, "train_config.corpus", as_given)
        for command in (["eval", str(run)], ["train", "--resume", str(run), "--max-steps", "3"]):
            assert main(["-q", *command]) == 1
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "outside the current folder" in err[0] and "--corpus PATH" in err[0], err
    # Named by the user: read.
    edit_config(run, "data.location", str(beside))
    assert main(["-q", "eval", str(run), "--corpus", str(beside)]) == 0, capsys.readouterr().err
    assert main(["-q", "eval", str(run), "--data-dir", str(downloads)]) == 0, capsys.readouterr().err
    monkeypatch.chdir(downloads)
    edit_config(run, "train_config.corpus", "fox.txt")
    assert main(["-q", "eval", "run"]) == 0, capsys.readouterr().err


def test_a_recorded_fifo_is_refused_before_reading(trained, tmp_path, capsys, monkeypatch):
    """A checkpoint whose recorded corpus is now a FIFO: a DataError, not a read that blocks."""
    import os
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(trained / "run", tmp_path / "run")
    os.mkfifo(tmp_path / "pipe.txt")
    edit_config(tmp_path / "run", "data.location", str(tmp_path / "pipe.txt"))
    assert main(["-q", "eval", "run"]) == 1  # would block forever without the check
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pipe.txt is a FIFO (named pipe), not a regular file" in err[0], err


def test_ngram_folders_are_checked(tmp_path, capsys, monkeypatch):
    from rnnlab.ngram import store
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fox.txt").write_text(TEXT)
    assert main(["-q", "ngram", "train", "--corpus", "fox.txt", "--out", "ng"]) == 0
    model = store.load(tmp_path / "ng")
    copy = tmp_path / "copy"
    for key, value, fragment in [("model.order", 10**6, "key 'model.order' must be an integer from 1 to 64"),
                                 ("model.smoothing", 3, "key 'model.smoothing' must be one of"),
                                 ("model.k", float("inf"), "key 'model.k' must be a finite number"),
                                 ("model.vocab_size", 2, "key 'model.vocab_size' is 2, but the vocabulary has"),
                                 ("preprocessing.mode", "lower", "key 'preprocessing.mode' must be one of")]:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(tmp_path / "ng", copy)
        edit_config(copy, key, value)
        with pytest.raises(CheckpointError, match="config.json: ") as info:
            store.load(copy)
        assert fragment in str(info.value)
    for change, fragment in [(lambda t: t.update({"keys.2": t["keys.2"].flip(0)}), "'keys.2' must be strictly"),
                             (lambda t: t.update({"counts.1": -t["counts.1"]}), "'counts.1' holds negative"),
                             (lambda t: t.update({"logp.1": t["logp.1"].float()}), "'logp.1' must be float64"),
                             (lambda t: t.pop("logbow.1"), "lacks tensor 'logbow.1'")]:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(tmp_path / "ng", copy)
        edit_tensors(copy, "model", change)
        with pytest.raises(CheckpointError, match="model.safetensors") as info:
            store.load(copy)
        assert fragment in str(info.value)
    assert model.order == store.load(tmp_path / "ng").order


def test_forecaster_folders_are_checked(tmp_path):
    from rnnlab.forecasting.models import ForecastConfig, Forecaster
    series = np.sin(np.arange(120) / 5)
    Forecaster(ForecastConfig(model="gru", tau=2, hidden=4, epochs=1)).fit(series).save(tmp_path / "f")
    assert Forecaster.load(tmp_path / "f").config.hidden == 4
    for key, value, fragment in [("std", 0, "key 'std' must be a finite number > 0"),
                                 ("config.hidden", 10**9, "key 'config.hidden' must be an integer from 1"),
                                 ("config.model", "arima", "key 'config.model' must be one of"),
                                 ("config.tau", "2", "key 'config.tau' must be an integer"),
                                 ("config.window", 3, "key 'config.window' is not a forecaster option"),
                                 ("config.hidden", 5, "tensor 'rnn.weight_ih_l0' is float64 [12, 1]")]:
        copy = tmp_path / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(tmp_path / "f", copy)
        edit_config(copy, key, value)
        with pytest.raises(CheckpointError) as info:
            Forecaster.load(copy)
        assert fragment in str(info.value)
