"""One small training loop for every sequence task (classification, tagging).

``fit(task, model, train, val, options, out_dir)`` knows a task only through
``task.batches`` / ``task.loss`` / ``task.evaluate`` / ``task.metric`` (a metric name
in ``evaluate``'s result and whether it is maximised or minimised), so the loop,
clipping, time budget, early stopping, logging and checkpointing are written once.

Per epoch: Adam steps over length-bucketed batches of the training examples (order a
function of ``(seed, epoch)``), gradient norms clipped to ``clip``; then one evaluation
on the validation examples. The weights with the best validation metric are kept (in
memory and, with ``out_dir``, as the checkpoint there) and restored at the end;
training stops after ``epochs``, after ``patience`` evaluations without improvement,
or when ``max_time`` seconds of training are spent (the epoch in progress is cut
short and evaluated). Without validation examples the last weights are kept and the
metric is measured on the training examples.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rnnlab.checkpoint import prepare_output_folder
from rnnlab.errors import TrainingError, UsageError
from rnnlab.jsonout import dumps
from rnnlab.precision import autocast, resolve_precision
from rnnlab.progress import logger, progress
from rnnlab.tasks.base import save_task


@dataclass
class FitOptions:
    """Optimisation options shared by every task (the CLI's defaults)."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    clip: float | None = 5.0
    max_time: float | None = None  # seconds of training; None: no limit
    patience: int = 4  # evaluations without improvement before stopping; 0: never stop early
    seed: int = 0
    precision: str = "fp32"
    weight_decay: float = 0.0

    def validate(self) -> "FitOptions":
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError(f"epochs and batch size must be positive, got {self.epochs} and {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"--lr must be a positive number, got {self.lr}")
        if self.clip is not None and not self.clip > 0:
            raise UsageError(f"--clip must be positive, got {self.clip}")
        if self.max_time is not None and not self.max_time > 0:
            raise UsageError(f"--max-time must be positive, got {self.max_time}")
        if self.patience < 0:
            raise UsageError(f"--patience must be >= 0, got {self.patience}")
        return self


# On a tie of the metric, the validation loss must fall by this much (nats) or by 1%,
# whichever is more, to count: a saturated task should stop early, not polish 1e-5 nats.
MIN_LOSS_GAIN = 1e-3


def _better(value: float, loss: float, best: tuple | None, mode: str) -> bool:
    """Is (metric ``value``, validation ``loss``) better than ``best``? A tie on the metric
    (common once a small validation set is all right) goes to the lower loss, so
    training does not stop at the first epoch that reaches the ceiling."""
    if best is None:
        return True
    best_value, best_loss = best
    if value != best_value:
        return value > best_value if mode == "max" else value < best_value
    return loss < best_loss - max(MIN_LOSS_GAIN, 0.01 * best_loss)


def fit(task, model: torch.nn.Module, train: list, val: list | None, options: FitOptions,
        out_dir: str | os.PathLike | None = None, overwrite: bool = False) -> dict:
    """Train ``model`` for ``task`` (see the module docstring); return a summary dict (JSON).

    ``out_dir`` goes through the output-folder check of every command
    (:func:`rnnlab.checkpoint.prepare_output_folder`; ``overwrite`` replaces an earlier run).
    """
    options.validate()
    if out_dir is not None:
        out_dir = prepare_output_folder(out_dir, task.kind, overwrite=overwrite)
    metric, mode = task.metric
    device = next(model.parameters()).device
    precision = resolve_precision(options.precision, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    out = Path(out_dir) if out_dir is not None else None
    history: list[dict] = []
    best_key, best_value, best_record, best_weights = None, None, None, None
    evaluations_without_improvement = 0
    stopped = "epochs"
    train_seconds = 0.0
    examples_seen = steps = 0
    started = time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        generator = torch.Generator().manual_seed(options.seed * 1_000_003 + epoch)
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64)
        epoch_examples = 0
        epoch_start = time.perf_counter()
        batches = list(task.batches(train, options.batch_size, generator))
        for batch in progress(batches, total=len(batches), desc=f"epoch {epoch}"):
            with autocast(device, precision):
                loss = task.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if options.clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.clip)
            optimizer.step()
            loss_sum += loss.detach().double() * batch["size"]
            epoch_examples += batch["size"]
            steps += 1
            if options.max_time is not None and train_seconds + time.perf_counter() - epoch_start >= options.max_time:
                stopped = "max-time"
                break
        train_seconds += time.perf_counter() - epoch_start
        examples_seen += epoch_examples
        train_loss = loss_sum.item() / max(epoch_examples, 1)
        if not math.isfinite(train_loss):
            raise TrainingError(f"the training loss became {train_loss} in epoch {epoch}; try a lower --lr")
        scores = task.evaluate(model, val if val else train, options.batch_size)
        value = scores[metric]
        split = "val" if val else "train"
        record = {"epoch": epoch, "steps": steps, "train_loss": train_loss, f"{split}_{metric}": value,
                  f"{split}_loss": scores["loss"],
                  "seconds": round(train_seconds, 3), "scores": scores}
        history.append({k: v for k, v in record.items() if k != "scores"})
        improved = _better(value, scores["loss"], best_key, mode) or not val
        if improved:
            best_key, best_value, best_record = (value, scores["loss"]), value, record
            best_weights = copy.deepcopy(model.state_dict())
            evaluations_without_improvement = 0
        else:
            evaluations_without_improvement += 1
        logger.info("epoch %d  train loss %.4f  %s %s %.4f%s  (%.1f s)", epoch, train_loss,
                    "val" if val else "train", metric, value, "  *" if improved and val else "", train_seconds)
        if out is not None:
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as log:
                log.write(dumps({k: v for k, v in record.items() if k != "scores"}) + "\n")
            if improved:
                save_task(out, task, model, _training_record(options, history, best_record, metric, mode))
        if stopped == "max-time":
            break
        if val and options.patience and evaluations_without_improvement >= options.patience:
            stopped = "early-stopping"
            break
    if out is not None:  # the history of the last epochs belongs in the checkpoint too
        model_weights = model.state_dict()
        model.load_state_dict(best_weights)
        save_task(out, task, model, _training_record(options, history, best_record, metric, mode))
        model.load_state_dict(model_weights)
    model.load_state_dict(best_weights)
    model.eval()
    return {"metric": metric, "mode": mode, "best": best_value, "best_epoch": best_record["epoch"],
            "epochs": len(history), "steps": steps, "stopped": stopped, "train_seconds": train_seconds,
            "wall_seconds": time.perf_counter() - started,
            "train_examples_per_second": examples_seen / train_seconds if train_seconds else None,
            "parameters": sum(p.numel() for p in model.parameters()),
            "validated_on": "val" if val else "train", "scores": best_record["scores"],
            "history": history, "out": str(out) if out is not None else None,
            "threads": torch.get_num_threads(), "precision": precision}


def _training_record(options: FitOptions, history: list, best_record: dict, metric: str, mode: str) -> dict:
    return {"options": asdict(options), "history": history, "metric": [metric, mode],
            "best_epoch": best_record["epoch"], "best_scores": best_record["scores"]}


__all__ = ["FitOptions", "fit"]
