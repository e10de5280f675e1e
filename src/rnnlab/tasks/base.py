"""What every sequence task shares: token indices, length-bucketed batches, saving and loading.

A task (:class:`rnnlab.tasks.classify.ClassificationTask`,
:class:`rnnlab.tasks.tag.TaggingTask`) defines what differs: how examples become
batches of tensors, the model, the loss, the metrics (with the one the training loop
maximises, ``task.metric``) and predictions. :mod:`rnnlab.tasks.loop` trains any task.

Checkpoints are the training loop's folders (:func:`rnnlab.training.checkpoint.save_training`,
safetensors + JSON), as for language models::

    DIR/config.json        {"task": vocabularies, labels, preprocessing; "model": the network's
                            options; "train_config": the options; "progress": counters, history,
                            best validation scores; "optimizer": its hyper-parameters}
    DIR/model.safetensors, optimizer.safetensors, state.safetensors
                           the latest weights and what resuming needs
    DIR/best/              the same files for the weights with the best validation score
    DIR/metrics.jsonl      one line per evaluation

:func:`load_task` reads ``DIR/best`` when it exists (the weights to use), else ``DIR``.
"""
from __future__ import annotations

import itertools
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from rnnlab.checkpoint import config_error, config_value, is_str_list, load_config, save_checkpoint
from rnnlab.errors import RnnlabError
from rnnlab.model_checkpoint import load_checked_weights

PAD, UNK = "<pad>", "<unk>"


class Index:
    """Tokens <-> indices with ``<pad>`` = 0 and ``<unk>`` = 1; then tokens by descending count, ties by token."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self.lookup = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def from_counts(cls, counts: Counter, min_count: int = 1, max_size: int | None = None) -> "Index":
        kept = sorted((t for t, c in counts.items() if c >= min_count and t not in (PAD, UNK)),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max(0, max_size - 2)]
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.lookup.get(token, 1) for token in tokens]


def bucketed_batches(lengths: Sequence[int], batch_size: int,
                     generator: torch.Generator | None = None) -> Iterator[list[int]]:
    """Example indices in batches of similar lengths (little padding, so fast).

    With a ``generator``: a random order, sorted by length within pools of 50 batches,
    the batches then shuffled (the order is a function of the generator's state).
    Without: sorted by length, longest first (evaluation; callers restore the order).
    """
    if generator is None:
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        for start in range(0, len(order), batch_size):
            yield order[start:start + batch_size]
        return
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool = 50 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    for position in torch.randperm(len(batches), generator=generator).tolist():
        yield batches[position]


def pad(rows: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
    """(len(rows), width) int64, zero-padded on the right (one NumPy scatter, not a loop of small tensors)."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    width = width if width is not None else int(lengths.max(initial=0))
    out = np.zeros((len(rows), width), dtype=np.int64)
    out[np.arange(width)[None, :] < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    return torch.from_numpy(out)


def save_task(folder: str | os.PathLike, task, model: torch.nn.Module, training: dict | None = None) -> None:
    """Write ``task`` and ``model`` alone (no training state) as one checkpoint folder, replaced as a whole."""
    config = {"task": task.state(), "model": model.config(), "training": training or {}}
    save_checkpoint(folder, config, model.state_dict(), kind=task.kind)


def distinct_strings(folder, config: dict, key: str, what: str, minimum: int = 1, index: bool = False) -> list[str]:
    """The list of strings at ``key`` of a task checkpoint's config, each one distinct (a
    label or tag listed twice would make two outputs of one name), at least ``minimum`` of
    them; ``index``: a saved :class:`Index`, so ``<pad>`` and ``<unk>`` come first."""
    expected = (f"a list of strings starting with {PAD!r}, {UNK!r}" if index
                else f"a list of at least {minimum} strings")
    values = config_value(config, key, folder, lambda v: is_str_list(v) and len(v) >= minimum
                          and (not index or v[:2] == [PAD, UNK]), expected)
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise config_error(folder, key, f"lists {value!r} twice; every {what} must be distinct")
        seen.add(value)
    return values


def check_size(folder, options: dict, key: str, actual: int, what: str) -> None:
    """Refuse a network option (``model.<key>``) that disagrees with the task's saved lists."""
    if options[key] != actual:
        raise config_error(folder, f"model.{key}", f"is {options[key]}, but {what} has {actual}")


def load_task(folder: str | os.PathLike, task_class, device: str | torch.device = "cpu"):
    """(task, model in eval mode with the best weights, config) from a run folder of
    :func:`rnnlab.tasks.loop.fit` (its ``best/`` when there is one).

    Every value is checked before use (``task_class.from_config``: the task's lists and
    flags, the network's options; then the weights' names, shapes, dtypes and finite
    values against a ``meta`` network, so a hostile size allocates nothing): one
    :class:`CheckpointError` naming the file and the key."""
    load_config(folder, kind=task_class.kind)  # a clear error for a folder of another kind first
    if (Path(folder) / "best" / "config.json").is_file():
        folder = Path(folder) / "best"
    config = load_config(folder, kind=task_class.kind)
    task, options = task_class.from_config(folder, config)
    try:
        with torch.device("meta"):
            described = task.build_model(**options)
    except RnnlabError as exc:
        raise config_error(folder, "model", f"describes no valid {task_class.kind} ({exc})") from None
    weights = load_checked_weights(folder, config, described)
    model = task.build_model(**options)
    model.load_state_dict(weights)
    return task, model.to(device).eval(), config


__all__ = ["Index", "PAD", "UNK", "bucketed_batches", "pad", "save_task", "load_task", "distinct_strings", "check_size"]
