"""The artifact protocol (rnnlab.artifacts): commit, cleanup, verified reads, kinds as values.

Also the holes it closes in prepared corpora: a manifest naming a file outside its
folder, shards swapped or resized behind the manifest's back, and the staging folder a
killed prepare leaves.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab import artifacts
from rnnlab.artifacts import (COMMIT, KINDS, commit_files, member_path, prepare_output_folder, recover,
                              staged_folder)
from rnnlab.checkpoint import load_config, load_tensors, save_checkpoint
from rnnlab.data import prepare as prep
from rnnlab.data.corpus import load_corpus
from rnnlab.data.dataset import prepare_text
from rnnlab.errors import CheckpointError, DataError, UsageError

_WORDS = "the quick brown fox jumps over lazy dog pack my box with five dozen liquor jugs".split()
TEXT = "".join(" ".join(_WORDS[(i * 7 + j * j) % len(_WORDS)] for j in range(i % 9 + 3)) + ".\n" for i in range(300))


@pytest.fixture()
def corpus(tmp_path) -> Path:
    """A prepared corpus ``out/`` of TEXT (val and test shards of equal size)."""
    (tmp_path / "text.txt").write_text(TEXT)
    prep.prepare_corpus(tmp_path / "text.txt", tmp_path / "out", show_progress=False)
    return tmp_path / "out"


def edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def use(folder: Path):
    """What train/eval/ngram do with a prepared folder: load_corpus, then prepare_text."""
    return prepare_text(load_corpus(str(folder)), mode="raw", token="char")


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------------
# the holes of prepared corpora


@pytest.mark.parametrize("name", ["absolute", "dotdot", "symlink"])
def test_a_shard_named_outside_the_folder_is_refused(corpus, name):
    outside = corpus.parent / "secret.bin"
    shard = json.loads((corpus / "manifest.json").read_text())["splits"]["val"]["shards"][0]
    outside.write_bytes((corpus / "val-00000.bin").read_bytes())  # same size and SHA-256: only the place differs
    if name == "symlink":
        (corpus / "val-00000.bin").unlink()
        (corpus / "val-00000.bin").symlink_to(outside)
        fragment = "a symbolic link leading outside"
    else:
        file = str(outside) if name == "absolute" else "../secret.bin"
        edit_manifest(corpus, lambda m: m["splits"]["val"]["shards"][0].update(file=file))
        fragment = "is an absolute path" if name == "absolute" else r"must be a relative path inside the folder"
    assert shard["bytes"] == outside.stat().st_size
    for read in (prep.open_prepared, use, prep.verify_prepared):
        with pytest.raises(DataError, match=rf"manifest.json: key 'splits.val.shards\[0\].file' .*{fragment}"):
            read(corpus)


def test_swapped_shards_are_refused_where_the_data_is_used(corpus):
    val, test = corpus / "val-00000.bin", corpus / "test-00000.bin"
    assert val.stat().st_size == test.stat().st_size and val.read_bytes() != test.read_bytes()
    swap = corpus / "swap"
    val.rename(swap)
    test.rename(val)
    swap.rename(test)
    prep.open_prepared(corpus)  # the stated cheap open: names and sizes only
    with pytest.raises(DataError, match="val-00000.bin does not match the checksum in manifest.json"):
        use(corpus)
    with pytest.raises(DataError, match="does not match the checksum"):
        prep.verify_prepared(corpus)


def test_a_resized_shard_is_refused_even_with_its_manifest_counts_edited(corpus):
    shard = corpus / "train-00000.bin"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"has \d+ bytes, the manifest says \d+"):
        prep.open_prepared(corpus)

    def shrink(manifest):
        record = manifest["splits"]["train"]["shards"][0]
        record["bytes"] -= 100
        record["num_tokens"] -= 100
        manifest["splits"]["train"]["num_tokens"] -= 100
    edit_manifest(corpus, shrink)
    prep.open_prepared(corpus)
    with pytest.raises(DataError, match="train-00000.bin does not match the checksum"):
        use(corpus)


@pytest.mark.parametrize("key, value, fragment", [
    ("file", 7, "must be a non-empty file name"),
    ("file", "", "must be a non-empty file name"),
    ("file", "sub/../../x.bin", "must be a relative path inside the folder"),
    ("file", "missing.bin", "is missing"),
    ("sha256", "abc", "must be a SHA-256"),
    ("bytes", -1, "must be an integer >= 0"),
    ("num_tokens", "many", "must be a positive integer"),
])
def test_bad_shard_records_name_the_key(corpus, key, value, fragment):
    edit_manifest(corpus, lambda m: m["splits"]["test"]["shards"][0].update({key: value}))
    with pytest.raises(DataError, match=fragment) as error:
        prep.open_prepared(corpus)
    assert "splits.test.shards[0]" in str(error.value) or "missing.bin" in str(error.value)


def test_the_checksum_of_a_shard_is_computed_once_per_process(corpus, monkeypatch):
    calls = []
    real = artifacts.file_digest
    monkeypatch.setattr(artifacts, "file_digest", lambda path, *a: calls.append(Path(path).name) or real(path, *a))
    use(corpus)
    use(corpus)
    assert sorted(calls) == ["test-00000.bin", "train-00000.bin", "val-00000.bin"]
    prep.verify_prepared(corpus)  # always every shard again
    assert len(calls) == 6
    shard = corpus / "val-00000.bin"
    data = bytearray(shard.read_bytes())
    data[0] ^= 1
    shard.write_bytes(bytes(data))  # a new modification time: hashed again, and refused
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1))
    with pytest.raises(DataError, match="val-00000.bin does not match the checksum"):
        use(corpus)


def test_a_reused_folder_with_a_corrupted_shard_is_rebuilt(corpus):
    shard = corpus / "test-00000.bin"
    data = bytearray(shard.read_bytes())
    data[3] ^= 1
    shard.write_bytes(bytes(data))
    again = prep.prepare_corpus(corpus.parent / "text.txt", corpus, show_progress=False)
    assert again["reused"] is False and "does not match the checksum" in again["rebuilt"]
    use(corpus)


def test_the_staging_folder_of_a_killed_prepare_is_removed_at_the_next_run(tmp_path):
    (tmp_path / "text.txt").write_text(TEXT)
    pid = dead_pid()
    left = tmp_path / f".rnnlab-tmp-out-{pid}-0123abcd"
    left.mkdir()
    (left / "train-00000.bin").write_bytes(b"half")
    running = tmp_path / f".rnnlab-tmp-out-{os.getpid()}-89abcdef"  # a prepare still running: its own
    other = tmp_path / f".rnnlab-tmp-outer-{pid}-0123abcd"  # another folder's
    user = tmp_path / ".rnnlab-tmp-out-notes"  # not a name rnnlab gives
    for path in (running, other, user):
        path.mkdir()
    prep.prepare_corpus(tmp_path / "text.txt", tmp_path / "out", show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [running.name, other.name, user.name, "out", "text.txt"])
    assert sorted(os.listdir(tmp_path / "out")) == ["manifest.json", "test-00000.bin", "train-00000.bin",
                                                     "val-00000.bin"]


def test_a_rebuild_with_fewer_splits_removes_the_old_shards_only(corpus):
    (corpus / ".rnnlab-tmp-commit-1-abcd").mkdir()  # an abandoned staging folder inside
    prep.prepare_corpus(corpus.parent / "text.txt", corpus, split="d2l", overwrite=True, show_progress=False)
    assert sorted(os.listdir(corpus)) == ["manifest.json", "train-00000.bin"]
    assert len(prep.open_prepared(corpus, verify="full").val) == 0


def test_verify_levels_are_checked(corpus):
    with pytest.raises(UsageError, match="verify must be one of sizes, first-use, full"):
        prep.open_prepared(corpus, verify="sometimes")


def test_corpus_verify_command(corpus, capsys):
    from rnnlab.cli import main
    assert main(["-q", "corpus", "verify", str(corpus), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["shards"] == 3 and result["num_tokens"] == sum(
        s["num_tokens"] for s in json.loads((corpus / "manifest.json").read_text())["splits"].values())
    assert result["bytes"] == sum(p.stat().st_size for p in corpus.glob("*.bin"))
    (corpus / "test-00000.bin").write_bytes((corpus / "val-00000.bin").read_bytes())
    assert main(["-q", "corpus", "verify", str(corpus)]) == 1
    assert "test-00000.bin does not match the checksum" in capsys.readouterr().err


# ----------------------------------------------------------------------------------
# the commit and the cleanup


def test_a_new_folder_appears_complete_or_not_at_all(tmp_path, monkeypatch):
    def crash(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(artifacts.os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        commit_files(tmp_path / "new", {"config.json": b"{}", "a.bin": b"data"})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []
    commit_files(tmp_path / "new", {"config.json": b"{}", "a.bin": b"data"})
    assert sorted(os.listdir(tmp_path)) == ["new"] and sorted(os.listdir(tmp_path / "new")) == ["a.bin", "config.json"]


def test_a_commit_keeps_the_files_it_does_not_write_and_removes_the_stale_ones(tmp_path):
    folder = tmp_path / "run"
    commit_files(folder, {"config.json": b"1", "old.bin": b"old", "keep.bin": b"k"})
    (folder / "metrics.jsonl").write_text("{}\n")
    with staged_folder(folder, stale=lambda staging: {"old.bin"} - set(os.listdir(staging))) as staging:
        assert staging.parent == folder and staging.name.startswith(".rnnlab-tmp-")
        (staging / "config.json").write_bytes(b"2")
    assert sorted(os.listdir(folder)) == ["config.json", "keep.bin", "metrics.jsonl"]
    assert (folder / "config.json").read_bytes() == b"2"


def test_a_failed_staging_leaves_the_old_version(tmp_path):
    folder = tmp_path / "run"
    commit_files(folder, {"config.json": b"1"})
    with pytest.raises(RuntimeError):
        with staged_folder(folder) as staging:
            (staging / "config.json").write_bytes(b"2")
            raise RuntimeError("cut short")
    assert os.listdir(folder) == ["config.json"] and (folder / "config.json").read_bytes() == b"1"


def test_recover_finishes_a_commit_and_removes_only_rnnlab_temporaries(tmp_path):
    folder = tmp_path / "ck"
    save_checkpoint(folder, {"n": 1}, {"w": torch.zeros(2)}, kind="forecaster")
    new = tmp_path / "new"
    save_checkpoint(new, {"n": 2}, {"w": torch.ones(2)}, kind="forecaster")
    shutil.move(str(new), str(folder / COMMIT))  # a commit killed right after its commit point
    assert load_config(folder)["n"] == 2 and torch.equal(load_tensors(folder)["w"], torch.ones(2))
    (folder / ".rnnlab-tmp-commit-5-abcd").mkdir()
    (folder / "notes.txt").write_text("the user's")
    beside = [tmp_path / f".rnnlab-tmp-ck-{dead_pid()}-00ff00ff", tmp_path / f".rnnlab-tmp-ck-{os.getpid()}-00ff00ff",
              tmp_path / ".rnnlab-tmp-ck-x"]
    for path in beside:
        path.mkdir()
    recover(folder)
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors", "notes.txt"]
    assert [p.exists() for p in beside] == [False, True, True]
    assert load_config(folder)["n"] == 2


# ----------------------------------------------------------------------------------
# verified reads of checkpoints


def test_a_checkpoint_file_symlinked_outside_is_refused(tmp_path):
    folder = tmp_path / "ck"
    save_checkpoint(folder, {}, {"w": torch.zeros(2)}, kind="forecaster")
    outside = tmp_path / "elsewhere.safetensors"
    shutil.move(str(folder / "model.safetensors"), str(outside))  # the same bytes, the recorded SHA-256
    (folder / "model.safetensors").symlink_to(outside)
    with pytest.raises(CheckpointError, match="a symbolic link leading outside"):
        load_tensors(folder)
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").symlink_to(folder / "config.json")  # inside: its checksum decides
    with pytest.raises(CheckpointError, match="does not match the checksum in config.json"):
        load_tensors(folder)


@pytest.mark.parametrize("files, fragment", [
    ({"../x.safetensors": "0" * 64}, "names '../x.safetensors', which must be a relative path"),
    ({"/tmp/x.safetensors": "0" * 64}, "which is an absolute path"),
    ({"model.safetensors": "not-a-digest"}, "key 'files.model.safetensors' must be a SHA-256"),
    (["model.safetensors"], "key 'files' must be a JSON object"),
])
def test_config_files_records_are_checked(tmp_path, files, fragment):
    folder = tmp_path / "ck"
    save_checkpoint(folder, {}, {"w": torch.zeros(2)}, kind="forecaster")
    config = json.loads((folder / "config.json").read_text())
    config["files"] = files
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=fragment):
        load_config(folder)


# One folder for the property below: files inside, a subfolder, symlinks in and out.
_TREE = Path(tempfile.mkdtemp(prefix="rnnlab-members-"))
_FOLDER = _TREE / "folder"
(_FOLDER / "sub").mkdir(parents=True)
(_FOLDER / "a.bin").write_bytes(b"a")
(_FOLDER / "sub" / "b.bin").write_bytes(b"b")
(_TREE / "secret.bin").write_bytes(b"secret")
(_FOLDER / "out.bin").symlink_to(_TREE / "secret.bin")
(_FOLDER / "in.bin").symlink_to("a.bin")
(_FOLDER / "up").symlink_to("..")
(_FOLDER / "self").symlink_to(".")
_PARTS = ["a.bin", "b.bin", "sub", "out.bin", "in.bin", "up", "self", "secret.bin", "folder", "..", ".", "",
          str(_TREE), str(_FOLDER)]


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(_PARTS), min_size=1, max_size=5), sep=st.sampled_from(["/", "\\"]),
       noise=st.text(max_size=6))
def test_property_a_member_is_a_regular_file_inside_the_folder_or_refused(parts, sep, noise):
    for name in (sep.join(parts), sep.join(parts) + noise, noise):
        try:
            path = member_path(_FOLDER, name, "m.json: key 'file'")
        except CheckpointError as exc:
            assert "m.json: key 'file'" in str(exc) or "m.json" in str(exc)
            continue
        real = os.path.realpath(path)
        assert os.path.commonpath([os.path.realpath(_FOLDER), real]) == os.path.realpath(_FOLDER)
        assert os.path.isfile(real) and real != os.path.realpath(_TREE / "secret.bin")
        assert not os.path.isabs(name) and ".." not in name.replace("\\", "/").split("/")


# ----------------------------------------------------------------------------------
# kinds are declared values


def test_kinds_are_a_frozen_table_not_registered_at_import():
    import rnnlab.tasks.base
    before = dict(KINDS)
    importlib.reload(rnnlab.tasks.base)
    assert dict(KINDS) == before
    assert {"language-model", "ngram", "forecaster", "classifier", "tagger", "reproduction",
            "prepared-corpus"} <= set(KINDS)
    with pytest.raises(TypeError):
        KINDS["mine"] = KINDS["ngram"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        KINDS["ngram"].owned = ()  # type: ignore[misc]
    corpus_kind = KINDS["prepared-corpus"]
    assert corpus_kind.owns("val-00000.bin") and corpus_kind.owns("manifest.json") and not corpus_kind.owns("x.bin")


def test_overwrite_removes_the_owned_files_of_a_task_kind_only(tmp_path):
    folder = tmp_path / "clf"
    save_checkpoint(folder, {}, {"w": torch.zeros(2)}, kind="classifier")
    (folder / "last.safetensors").write_bytes(b"x")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="already holds an rnnlab sequence classifier"):
        prepare_output_folder(folder, "classifier")
    prepare_output_folder(folder, "classifier", overwrite=True)
    assert os.listdir(folder) == ["notes.txt"]
    with pytest.raises(ValueError, match="unknown artifact kind"):
        prepare_output_folder(folder, "mystery")


def test_sha256_of_manifest_records_is_the_file_digest(corpus):
    for part in json.loads((corpus / "manifest.json").read_text())["splits"].values():
        for shard in part["shards"]:
            assert hashlib.sha256((corpus / shard["file"]).read_bytes()).hexdigest() == shard["sha256"]


def test_every_kind_declares_a_manifest_it_requires_and_owns():
    for kind in KINDS.values():
        assert kind.manifest in kind.required and set(kind.required) <= set(kind.owned), kind.name
        assert all(kind.owns(name) for name in kind.required)


def test_a_saved_forecaster_holds_the_required_files_of_its_kind(tmp_path):
    save_checkpoint(tmp_path / "f", {}, {"w": torch.zeros(2)}, kind="forecaster")
    assert sorted(os.listdir(tmp_path / "f")) == sorted(KINDS["forecaster"].required)
