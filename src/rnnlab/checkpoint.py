"""The one on-disk format for every rnnlab model: a folder of safetensors + JSON.

::

    DIR/config.json           what the model is (JSON; includes file checksums)
    DIR/model.safetensors     named tensors (weights, counts, ...)
    DIR/<other>.safetensors   optional extra tensor files (optimizer state, ...)

Nothing is ever pickled. ``config.json`` records the SHA-256 of every tensor file, so
a reader detects a folder that was modified.

Crash safety: a checkpoint is replaced as a whole. A save writes the complete new set
of files into a temporary folder inside ``DIR`` (``.rnnlab-tmp-...``), flushes them to
disk and renames that folder to ``DIR/.rnnlab-commit``: that rename is the commit
point. The files are then moved into ``DIR`` one by one and the empty commit folder is
removed. A reader takes each file from ``DIR/.rnnlab-commit`` when it is there and
from ``DIR`` otherwise, so it always sees either the old complete checkpoint (before
the commit point) or the new complete one (after it), whatever moment a crash or
SIGKILL hit; the next save (or :func:`recover_checkpoint`) finishes an interrupted
move and deletes abandoned temporary folders. Other files in ``DIR`` (a training run's
``metrics.jsonl``, ``perplexity.png``, ``best/``) are never touched by a save. A
checkpoint folder that does not exist yet is created by renaming a complete temporary
sibling folder into place, so it never exists half-written.

Output folders: :func:`prepare_output_folder` is the one check every command runs on
its output folder before any work starts (see its docstring for the rules).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from rnnlab.errors import CheckpointError, UsageError
from rnnlab.fileio import (TEMP_PREFIX, file_digest, fsync_dir, probe_writable, temporary_name, utf8_path_problem,
                           write_synced)

CONFIG = "config.json"
FORMAT = "rnnlab.checkpoint/1"
COMMIT = f"{TEMP_PREFIX}commit"
# Temporary files of the atomic_write of rnnlab 0.1 (".model.safetensors.tmp-1234"): ours too.
_LEGACY_TEMPORARY = re.compile(r"^\.(config\.json|[\w\-]+\.safetensors)\.tmp-\d+$")

# What each kind of output folder holds: rnnlab's own files and subfolders. Only these
# are ever removed by --overwrite; anything else in a folder belongs to the user.
OUTPUT_KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "language-model": {"files": (CONFIG, "model.safetensors", "optimizer.safetensors", "state.safetensors",
                                 "metrics.jsonl", "perplexity.png"),
                       "folders": ("best",)},
    "ngram": {"files": (CONFIG, "model.safetensors"), "folders": ()},
    "forecaster": {"files": (CONFIG, "model.safetensors"), "folders": ()},
    # rnnlab reproduce: the report, its data and its figures (names in rnnlab.reproduce.FIGURES)
    "reproduction": {"files": (CONFIG, "report.md", "results.json", "sine.png", "zipf.png", "perplexity.png",
                               "clipping.png", "bptt.png"),
                     "folders": ()},
}
KIND_NAMES = {"language-model": "language-model run", "ngram": "n-gram model", "forecaster": "forecaster",
              "reproduction": "chapter reproduction"}


def _to_torch(tensors: Mapping[str, object]) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in tensors.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
        out[name] = tensor.detach().to("cpu").contiguous()
    return out


def is_temporary(name: str) -> bool:
    """True for the names of rnnlab's own temporary files and folders."""
    return name.startswith(TEMP_PREFIX) or bool(_LEGACY_TEMPORARY.match(name))


def checkpoint_file(folder: str | os.PathLike, name: str) -> Path:
    """Where the current version of checkpoint file ``name`` is (see the module docstring)."""
    folder = Path(folder)
    committed = folder / COMMIT / name
    return committed if committed.is_file() else folder / name


# ----------------------------------------------------------------------------------
# writing


def save_checkpoint(folder: str | os.PathLike, config: dict, tensors: Mapping[str, object],
                    extra: Mapping[str, Mapping[str, object]] | None = None, kind: str = "") -> Path:
    """Write ``config`` and tensor files into ``folder`` (created if needed), replacing
    the checkpoint there as a whole.

    ``tensors`` go to ``model.safetensors``; ``extra={"optimizer": {...}}`` adds
    ``optimizer.safetensors``. Values are torch tensors or NumPy arrays.
    """
    from safetensors.torch import save

    folder = Path(folder)
    files = {"model": tensors, **(extra or {})}
    contents: dict[str, bytes] = {}
    checksums = {}
    for stem, group in files.items():
        name = f"{stem}.safetensors"
        contents[name] = save(_to_torch(group))
        checksums[name] = hashlib.sha256(contents[name]).hexdigest()
    document = {"format": FORMAT, "kind": kind, "files": checksums, **config}
    try:
        contents[CONFIG] = json.dumps(document, indent=1, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a non-UTF-8 file name (lone surrogates): \u escapes round-trip it
        contents[CONFIG] = json.dumps(document, indent=1, ensure_ascii=True).encode("ascii")
    _replace_files(folder, contents)
    return folder


def _write_folder(staging: Path, contents: Mapping[str, bytes]) -> None:
    staging.mkdir()
    for name, data in contents.items():
        write_synced(staging / name, data)
    fsync_dir(staging)


def _replace_files(folder: Path, contents: Mapping[str, bytes]) -> None:
    """Replace the files ``contents`` names in ``folder`` as one unit (the commit protocol)."""
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    if not folder.exists():
        staging = parent / temporary_name(folder.name)
        try:
            _write_folder(staging, contents)
            os.rename(staging, folder)  # the folder appears complete or not at all
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_dir(parent)
        return
    recover_checkpoint(folder)
    staging = folder / temporary_name("checkpoint")
    try:
        _write_folder(staging, contents)
        os.rename(staging, folder / COMMIT)  # the commit point
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(folder)
    _finish_commit(folder)


def _finish_commit(folder: Path) -> None:
    """Move the files of a committed checkpoint into place, then drop the commit folder."""
    commit = folder / COMMIT
    # config.json last: until then a reader still finds it, and every file it lists, in the commit folder.
    for name in sorted(os.listdir(commit), key=lambda n: n == CONFIG):
        os.replace(commit / name, folder / name)
    fsync_dir(folder)
    commit.rmdir()
    fsync_dir(folder)


def recover_checkpoint(folder: str | os.PathLike) -> None:
    """Finish a save that was cut short after its commit point and delete abandoned
    temporary files and folders (safe when no other process writes into ``folder``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    if (folder / COMMIT).is_dir():
        _finish_commit(folder)
    for entry in folder.iterdir():
        if is_temporary(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------
# output folders


def _describe(config: dict) -> str:
    kind = config.get("kind")
    return f"an rnnlab {KIND_NAMES.get(kind, repr(kind) + ' checkpoint')}"


def prepare_output_folder(folder: str | os.PathLike, kind: str, overwrite: bool = False, resume: bool = False,
                          option: str = "--out") -> Path:
    """Check and create an output folder before any work starts; return it as a Path.

    The rules, shared by every command that writes a folder:

    * a path that is a file, or where no folder can be created or written, is refused;
    * a path inside another rnnlab output folder (a run's ``best/``, an n-gram model) is
      refused: a save there would mix a foreign folder into that checkpoint;
    * a name that is not UTF-8 is refused (it is recorded and printed);
    * an empty or missing folder is used (created here);
    * a non-empty folder that is not an rnnlab output of ``kind`` is refused, naming one
      of its files: rnnlab never writes into a folder of someone else's files;
    * an rnnlab output of ``kind`` is refused unless ``resume`` (the run continues in
      place) or ``overwrite``, which removes rnnlab's own files there
      (:data:`OUTPUT_KINDS`) and nothing else.

    Also finishes or cleans up an interrupted save (:func:`recover_checkpoint`).
    """
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    problem = utf8_path_problem(folder)
    if problem:
        raise UsageError(f"{option} {problem}")
    path = Path(os.path.expanduser(os.fspath(folder)))
    what = f"{option} {path}"
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} is a file, not a folder; give a folder path")
    _refuse_nested(path, what)
    if path.is_dir():
        try:
            entries = sorted(entry.name for entry in path.iterdir())
        except OSError as exc:
            raise UsageError(f"{what}: cannot read the folder ({exc.strerror or exc})") from None
        if any(not is_temporary(name) for name in entries) or COMMIT in entries:
            _check_existing(path, kind, entries, overwrite, resume, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{what}: cannot create the folder ({exc.strerror or exc})") from None
    probe_writable(path, what)
    recover_checkpoint(path)
    return path


def _refuse_nested(path: Path, what: str) -> None:
    """Refuse an output folder inside another rnnlab output folder (symlinks followed)."""
    real = Path(os.path.realpath(path))
    for parent in real.parents:
        if not (parent / CONFIG).is_file():
            continue
        try:
            config = load_config(parent)
        except CheckpointError:  # a user's own config.json: not ours
            continue
        raise UsageError(f"{what} lies inside {parent}, which holds {_describe(config)}; rnnlab never writes "
                         "into another output folder: choose a folder outside it")


def _check_existing(path: Path, kind: str, entries: list[str], overwrite: bool, resume: bool, what: str) -> None:
    try:
        config = load_config(path)
    except CheckpointError:
        config = None
    if config is None:
        visible = [name for name in entries if not is_temporary(name)] or [COMMIT]
        raise UsageError(f"{what} is not empty and is not an rnnlab output folder (it holds {visible[0]!r}"
                         f"{f' and {len(visible) - 1} more' if len(visible) > 1 else ''}); rnnlab never writes "
                         "into a folder of other files: choose a new or empty folder")
    if config.get("kind") != kind:
        raise UsageError(f"{what} holds {_describe(config)}, not {_describe({'kind': kind})}; choose another folder")
    if resume:
        return
    if not overwrite:
        again = f"continue it with rnnlab train --resume {path}, pass " if kind == "language-model" else "pass "
        raise UsageError(f"{what} already holds {_describe(config)}; {again}--overwrite to replace it, "
                         "or choose another folder")
    remove_owned(path, kind)


def remove_owned(folder: str | os.PathLike, kind: str) -> None:
    """Delete rnnlab's own files of ``kind`` from ``folder`` (config.json last), and
    nothing else; an owned subfolder goes only when nothing else is left in it."""
    folder = Path(folder)
    spec = OUTPUT_KINDS[kind]
    try:
        for sub in spec["folders"]:
            if (folder / sub).is_dir() and not (folder / sub).is_symlink():
                remove_owned(folder / sub, kind)
                try:
                    (folder / sub).rmdir()
                except OSError:  # the user's files are still in it
                    pass
        for name in [n for n in os.listdir(folder) if is_temporary(n)]:
            target = folder / name
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        # config.json last: a removal cut short still leaves a folder recognisable as ours.
        for name in sorted(spec["files"], key=lambda n: n == CONFIG):
            if (folder / name).is_file() or (folder / name).is_symlink():
                (folder / name).unlink()
    except OSError as exc:
        raise UsageError(f"--overwrite: cannot remove the old files of {folder} ({exc.strerror or exc})") from None


# ----------------------------------------------------------------------------------
# reading


def load_config(folder: str | os.PathLike, kind: str | None = None) -> dict:
    """Read and check ``config.json``; raise :class:`CheckpointError` if it is not ours
    (:class:`UsageError` when ``folder`` is not a path at all)."""
    if not isinstance(folder, (str, os.PathLike)):
        raise UsageError(f"the checkpoint folder must be a path (a str or os.PathLike), got {type(folder).__name__}")
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; expected an rnnlab checkpoint folder")
    path = checkpoint_file(folder, CONFIG)
    if not path.is_file():
        raise CheckpointError(f"{folder} is not an rnnlab checkpoint (no {CONFIG})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is unreadable: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{folder} is not an rnnlab checkpoint (config format is not {FORMAT})")
    if kind is not None and config.get("kind") != kind:
        raise CheckpointError(f"{folder} holds a '{config.get('kind')}' model, not a '{kind}' model")
    return config


def load_tensors(folder: str | os.PathLike, stem: str = "model", config: dict | None = None,
                 device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load ``stem.safetensors`` after verifying its SHA-256 against ``config.json``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = config if config is not None else load_config(folder)
    name = f"{stem}.safetensors"
    path = checkpoint_file(folder, name)
    files = config.get("files")
    expected = files.get(name) if isinstance(files, dict) else None
    if expected is None or not path.is_file():
        raise CheckpointError(f"{folder} has no {name}")
    if file_digest(path) != expected:
        raise CheckpointError(f"{path} does not match the checksum in {CONFIG}: the checkpoint was "
                              "modified or its write was interrupted")
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors' own error type, OSError, MemoryError...: a file that is not safetensors
        raise CheckpointError(f"{path} is not a valid safetensors file ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None


# ----------------------------------------------------------------------------------
# validating what a checkpoint holds: every value is data to check, never trusted

_MISSING = object()


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list, str, int, float, bool, type(None))) \
        else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def config_error(folder: str | os.PathLike, key: str, problem: str) -> CheckpointError:
    """The one error for a bad value in a checkpoint's ``config.json``: it names the file and the key."""
    return CheckpointError(f"{Path(folder) / CONFIG}: key '{key}' {problem}")


def config_value(config: dict, key: str, folder: str | os.PathLike, check, expected: str, default=_MISSING):
    """The value at the dotted ``key`` (``"model.hidden_size"``) of a checkpoint's config.

    ``check(value)`` must be true, else :class:`CheckpointError` saying the key must be
    ``expected``; a missing key is an error unless a ``default`` is given.
    """
    value = config
    for depth, part in enumerate(key.split(".")):
        if not isinstance(value, dict):
            raise config_error(folder, ".".join(key.split(".")[:depth]), f"must be a JSON object, got {_show(value)}")
        if part not in value:
            if default is not _MISSING:
                return default
            raise config_error(folder, key, f"is missing (it must be {expected})")
        value = value[part]
    if not check(value):
        raise config_error(folder, key, f"must be {expected}, got {_show(value)}")
    return value


def is_int(low: int | None = None, high: int | None = None):
    """A check: an integer (not a bool) within ``low..high``."""
    return lambda v: (isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low)
                      and (high is None or v <= high))


def is_number(low: float | None = None, high: float | None = None, optional: bool = False):
    """A check: a finite int or float (not a bool) within ``low..high``; ``optional``: or None."""
    import math

    def check(v) -> bool:
        if v is None:
            return optional
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and (low is None or v >= low) and (high is None or v <= high))
    return check


def is_str(optional: bool = False):
    return lambda v: isinstance(v, str) or (optional and v is None)


def is_str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(item, str) for item in v)


def check_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                  expected: Mapping[str, torch.Tensor], described_by: str = CONFIG) -> None:
    """Refuse tensors whose names, shapes or dtypes differ from ``expected`` (tensors of
    the model ``described_by`` describes, on any device, ``meta`` included)."""
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise CheckpointError(f"{path} lacks tensor '{missing[0]}' that the model {described_by} describes needs"
                              f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
    extra = [name for name in tensors if name not in expected]
    if extra:
        raise CheckpointError(f"{path} has tensor '{extra[0]}' that the model {described_by} describes does not "
                              f"have{f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''}")
    for name, want in expected.items():
        got = tensors[name]
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            raise CheckpointError(f"{path}: tensor '{name}' is {str(got.dtype).replace('torch.', '')} "
                                  f"{list(got.shape)}, but the model {described_by} describes needs "
                                  f"{str(want.dtype).replace('torch.', '')} {list(want.shape)}")
