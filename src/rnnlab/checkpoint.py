"""The one on-disk format for every rnnlab model: a folder of safetensors + JSON.

::

    DIR/config.json           what the model is (JSON; includes file checksums)
    DIR/model.safetensors     named tensors (weights, counts, ...)
    DIR/<other>.safetensors   optional extra tensor files (optimizer state, ...)

Nothing is ever pickled. Each file is written to a temporary name, flushed to
disk and renamed into place; ``config.json`` is renamed last and records the
SHA-256 of every tensor file, so a reader detects a folder whose write was cut
short instead of loading a mix of two versions.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from rnnlab.errors import CheckpointError
from rnnlab.fileio import atomic_write, file_digest

CONFIG = "config.json"
FORMAT = "rnnlab.checkpoint/1"


def _to_torch(tensors: Mapping[str, object]) -> dict[str, torch.Tensor]:
    out = {}
    for name, value in tensors.items():
        tensor = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
        out[name] = tensor.detach().to("cpu").contiguous()
    return out


def save_checkpoint(folder: str | os.PathLike, config: dict, tensors: Mapping[str, object],
                    extra: Mapping[str, Mapping[str, object]] | None = None, kind: str = "") -> Path:
    """Write ``config`` and tensor files into ``folder`` (created if needed).

    ``tensors`` go to ``model.safetensors``; ``extra={"optimizer": {...}}`` adds
    ``optimizer.safetensors``. Values are torch tensors or NumPy arrays.
    """
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"model": tensors, **(extra or {})}
    checksums = {}
    for stem, group in files.items():
        path = folder / f"{stem}.safetensors"
        atomic_write(path, save(_to_torch(group)))
        checksums[path.name] = file_digest(path)
    document = {"format": FORMAT, "kind": kind, "files": checksums, **config}
    atomic_write(folder / CONFIG, json.dumps(document, indent=1, ensure_ascii=False).encode("utf-8"))
    return folder


def load_config(folder: str | os.PathLike, kind: str | None = None) -> dict:
    """Read and check ``config.json``; raise :class:`CheckpointError` if it is not ours."""
    folder = Path(folder)
    path = folder / CONFIG
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; expected an rnnlab checkpoint folder")
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
    path = folder / name
    expected = config.get("files", {}).get(name)
    if expected is None or not path.is_file():
        raise CheckpointError(f"{folder} has no {name}")
    if file_digest(path) != expected:
        raise CheckpointError(f"{path} does not match the checksum in {CONFIG}: the checkpoint was "
                              "modified or its write was interrupted")
    return load_file(str(path), device=str(device))
