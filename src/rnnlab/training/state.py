"""The counters of a training run: a typed record saved in every checkpoint (``progress``).

:class:`Progress` is what the loop (:mod:`rnnlab.training.loop`) counts for any task;
``config.json`` keeps it as a JSON object, read back by :meth:`Progress.from_dict`,
which checks every value (a hand-edited or hostile file gives one CheckpointError
naming the key, never a TypeError later).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from rnnlab.errors import CheckpointError, UsageError

# Other names a checkpoint's progress record may give the counters (read as the names on the right).
COUNTER_ALIASES = {"epoch_nll": "loss_sum", "epoch_tokens": "loss_weight", "train_tokens": "items",
                   "best_val_perplexity": "best_value"}


@dataclass
class Progress:
    epoch: int = 0                  # epochs completed
    step: int = 0                   # optimizer steps taken (all epochs)
    batch_in_epoch: int = 0         # batches of epoch ``epoch + 1`` already done (a run cut mid-epoch)
    loss_sum: float = 0.0           # training loss x items since the last evaluation (nats for an LM)
    loss_weight: int = 0            # items (tokens, sequences) in that sum
    items: int = 0                  # items trained on, all epochs (the rate's numerator)
    best_value: float | None = None  # the task's metric at its best evaluation so far
    best_loss: float | None = None   # the held-out loss there (breaks ties of the metric)
    best_epoch: float | None = None
    best_scores: dict | None = None  # everything the task measured at that evaluation
    plateau_best: float | None = None  # the reference of the early-stopping / lr-plateau counter
    evals_without_improvement: int = 0
    lr: float | None = None
    train_seconds: float = 0.0      # seconds of training steps (evaluation and checkpoints excluded)
    wall_seconds: float = 0.0
    grad_norm_sum: float = 0.0      # gradient norms (before clipping) since the last evaluation
    grad_norm_max: float = 0.0
    grad_norm_count: int = 0
    stopped: str | None = None
    history: list = field(default_factory=list)  # one record per evaluation

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data, where: str = "config.json") -> "Progress":
        """The record ``data`` describes; every value checked (CheckpointError naming ``where`` and the key)."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: key 'progress' must be a JSON object")
        data = {COUNTER_ALIASES.get(key, key): value for key, value in data.items()}
        values = {}
        for spec in fields(cls):
            if spec.name not in data or data[spec.name] is None and spec.default is None:
                continue
            value = data[spec.name]
            if not _accepts(spec.type, value):
                raise CheckpointError(f"{where}: key 'progress.{spec.name}' must be {_describe(spec.type)}, "
                                      f"got {value!r:.60}")
            values[spec.name] = value
        lr = values.get("lr")
        if lr is not None and not 0 < lr <= 3.4e38:  # the float32 range the optimizer works in
            raise CheckpointError(f"{where}: key 'progress.lr' must be a number from 1e-45 to 3.4e38, got {lr!r:.60}")
        for index, record in enumerate(values.get("history", [])):
            if not (isinstance(record, dict) and _accepts("int", record.get("step"))
                    and _accepts("float", record.get("epoch"))):
                raise CheckpointError(f"{where}: key 'progress.history[{index}]' must be an evaluation record "
                                      f"with a numeric 'epoch' and 'step', got {record!r:.60}")
        return cls(**values)


def _accepts(kind: str, value) -> bool:
    optional = "None" in kind
    if value is None:
        return optional
    if isinstance(value, bool):
        return False
    if kind.startswith("int"):
        return isinstance(value, int) and value >= 0
    if kind.startswith("float"):
        return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    if kind.startswith("str"):
        return isinstance(value, str)
    if kind.startswith("dict"):
        return isinstance(value, dict)
    if kind.startswith("list"):
        return isinstance(value, list)
    return False


def _describe(kind: str) -> str:
    base = {"int": "an integer >= 0", "float": "a finite number >= 0", "str": "a string", "dict": "a JSON object",
            "list": "a list"}[kind.split(" ")[0]]
    return base + (" or null" if "None" in kind else "")


# What a resumed run may change; every other option is the saved run's.
RESUMABLE = ("epochs", "max_time", "max_steps", "device", "precision")


def resumed_options(options, progress: Progress, folder, **changes):
    """The saved run's ``options`` (a checked :class:`rnnlab.training.config.LoopOptions`)
    with ``changes`` to :data:`RESUMABLE` keys: None keeps the saved value, except
    ``max_steps``, a cap on this invocation that is never inherited. Refused when the run
    has nothing left to do (the same rule for every task)."""
    unknown = sorted(set(changes) - set(RESUMABLE))
    if unknown:
        raise UsageError(f"a resumed run keeps its options; {', '.join(unknown)} cannot change")
    given = {key: value for key, value in changes.items() if value is not None}
    options = replace(options, **{**given, "max_steps": changes.get("max_steps")}).validate()
    if options.max_steps is not None and options.max_steps <= progress.step:
        raise UsageError(f"--max-steps {options.max_steps} is not above the {progress.step} steps {folder} already "
                         "trained; it counts all steps of the run")
    if progress.epoch >= options.epochs and not progress.batch_in_epoch:
        raise UsageError(f"{folder} already finished {progress.epoch} epochs; pass a larger --epochs to train further")
    return options


__all__ = ["Progress", "COUNTER_ALIASES", "RESUMABLE", "resumed_options"]
