"""The one on-disk format for every rnnlab model: a folder of safetensors + JSON.

::

    DIR/config.json           what the model is (JSON; includes file checksums)
    DIR/model.safetensors     named tensors (weights, counts, ...)
    DIR/<other>.safetensors   optional extra tensor files (optimizer state, ...)
    DIR/tokenizer.json        a subword tokenizer, in its library's own JSON (``documents``)

Nothing is ever pickled. ``config.json`` records the SHA-256 of every tensor file, so
a reader detects a folder that was modified.

Crash safety, cleanup of interrupted saves, the output-folder rule and the checks of
every file name ``config.json`` records are the one artifact protocol of
:mod:`rnnlab.artifacts`: a checkpoint is replaced as a whole (the old complete one or
the new complete one, whatever moment a crash hit), and files of the folder that a
save does not write (a run's ``metrics.jsonl``, ``perplexity.png``, ``best/``) are
never touched.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from safetensors.torch import load_file, save

# The protocol's parts, also under the names the checkpoint readers use (checkpoint_file, recover_checkpoint).
from rnnlab.artifacts import (CHECKPOINT_FORMAT, COMMIT, CONFIG, artifact_file, commit_files,  # noqa: F401
                              is_temporary, load_config, prepare_output_folder, recover, remove_owned, verify_member)
from rnnlab.data.subword import SUBWORD_KINDS, SubwordTokenizer
from rnnlab.errors import CheckpointError

FORMAT = CHECKPOINT_FORMAT
checkpoint_file = artifact_file
recover_checkpoint = recover


def _to_torch(tensors: Mapping[str, object]) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in tensors.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
        out[name] = tensor.detach().to("cpu").contiguous()
    return out


# ----------------------------------------------------------------------------------
# writing


def save_checkpoint(folder: str | os.PathLike, config: dict, tensors: Mapping[str, object],
                    extra: Mapping[str, Mapping[str, object]] | None = None, kind: str = "",
                    documents: Mapping[str, bytes] | None = None) -> Path:
    """Write ``config`` and tensor files into ``folder`` (created if needed), replacing
    the checkpoint there as a whole.

    ``tensors`` go to ``model.safetensors``; ``extra={"optimizer": {...}}`` adds
    ``optimizer.safetensors``. Values are torch tensors or NumPy arrays. ``documents``:
    other files by name (a tokenizer's JSON), written and checksummed the same way
    (read back with :func:`load_document`).
    """
    folder = Path(folder)
    files = {"model": tensors, **(extra or {})}
    contents: dict[str, bytes] = {}
    checksums = {}
    for stem, group in files.items():
        name = f"{stem}.safetensors"
        contents[name] = save(_to_torch(group))
        checksums[name] = hashlib.sha256(contents[name]).hexdigest()
    for name, data in (documents or {}).items():
        contents[name] = bytes(data)
        checksums[name] = hashlib.sha256(contents[name]).hexdigest()
    document = {"format": FORMAT, "kind": kind, "files": checksums, **config}
    try:
        contents[CONFIG] = json.dumps(document, indent=1, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a non-UTF-8 file name (lone surrogates): \u escapes round-trip it
        contents[CONFIG] = json.dumps(document, indent=1, ensure_ascii=True).encode("ascii")
    return commit_files(folder, contents)


# ----------------------------------------------------------------------------------
# reading


def load_tensors(folder: str | os.PathLike, stem: str = "model", config: dict | None = None,
                 device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load ``stem.safetensors`` after verifying its SHA-256 against ``config.json``."""
    folder = Path(folder)
    config = config if config is not None else load_config(folder)
    path = _verified_file(folder, f"{stem}.safetensors", config, "files", "")
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors' own error type, OSError, MemoryError...: a file that is not safetensors
        raise CheckpointError(f"{path} is not a valid safetensors file ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None


def load_document(folder: str | os.PathLike, name: str, config: dict, key: str) -> bytes:
    """The bytes of file ``name`` of ``folder`` (named by ``config.json``'s ``key``) after
    verifying its SHA-256 against ``config.json``'s ``files``."""
    folder = Path(folder)
    if not isinstance(name, str) or not re.fullmatch(r"[\w\-]+\.json", name):
        raise config_error(folder, key, f"must be a plain file name ending in .json, got {_show(name)}")
    return _verified_file(folder, name, config, key, f" (named by {key} in {CONFIG})").read_bytes()


def _verified_file(folder: Path, name: str, config: dict, key: str, named_by: str) -> Path:
    """The path of file ``name`` of ``folder`` once its SHA-256 matches ``config.json``'s ``files``."""
    files = config.get("files")
    expected = files.get(name) if isinstance(files, dict) else None
    if expected is None or not artifact_file(folder, name).is_file():
        raise CheckpointError(f"{folder} has no {name}{named_by}")
    return verify_member(folder, name, f"{folder / CONFIG}: key '{key}'", CONFIG, sha256=expected,
                         advice="the checkpoint was modified or its write was interrupted")


def attach_subword(folder: str | os.PathLike, config: dict, vocab) -> None:
    """For ``bpe``/``unigram`` tokens, read the tokenizer that ``preprocessing.tokenizer_file``
    names (verified, :func:`load_document`) into ``vocab.subword``; it must make exactly the
    vocabulary's tokens. Other token kinds: nothing to do."""
    pre = config.get("preprocessing") or {}
    token = pre.get("token") if isinstance(pre, dict) else None
    if token not in SUBWORD_KINDS:
        return
    key = "preprocessing.tokenizer_file"
    name = pre.get("tokenizer_file")
    raw = load_document(folder, name, config, key)
    path = checkpoint_file(folder, name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not UTF-8 text, so not a tokenizer's JSON") from None
    subword = SubwordTokenizer.from_json(text, str(path), kind=token)
    if set(subword.vocabulary()) - set(vocab.idx_to_token):
        raise CheckpointError(f"{path} makes tokens that the vocabulary in {CONFIG} lacks: they belong to "
                              "different runs")
    vocab.subword = subword


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
