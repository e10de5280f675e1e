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

Checkpoint (with ``out_dir``, after every evaluation, replaced as a whole): the best
weights in ``model.safetensors``; the last weights, Adam's state and torch's RNG state
in ``last``/``optimizer``/``state.safetensors``; the counters (:class:`FitProgress`) in
``config.json``. ``fit(..., resume=True)`` continues from there exactly: the epoch's
batch order is a function of ``(seed, epoch)``, so a run cut mid-epoch (``max_time``,
Ctrl-C) replays its epoch's order and skips the batches already done; ``N`` epochs in
one go and ``k`` + resume + ``N - k`` give the same weights.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from rnnlab.checkpoint import load_config, load_tensors, prepare_output_folder, save_checkpoint
from rnnlab.errors import CheckpointError, TrainingError, UsageError
from rnnlab.jsonout import dumps
from rnnlab.precision import autocast, resolve_precision
from rnnlab.progress import logger, progress
from rnnlab.training.checkpoint import optimizer_from_tensors, optimizer_to_tensors


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
        if self.epochs < 1:
            raise UsageError(f"--epochs must be a positive integer, got {self.epochs}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be a positive integer, got {self.batch_size}")
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


@dataclass
class FitProgress:
    """The counters of a run, saved in its checkpoint (``config.json``, ``training.progress``)."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of epoch ``epoch + 1`` already done (a run cut mid-epoch)
    epoch_loss_sum: float = 0.0  # the cut epoch's summed loss (x examples) and examples so far
    epoch_examples: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    examples_seen: int = 0
    best_value: float | None = None
    best_loss: float | None = None
    best_epoch: int | None = None
    best_scores: dict | None = None
    evaluations_without_improvement: int = 0
    stopped: str | None = None
    history: list = field(default_factory=list)


def _save(out: Path, task, model, best_weights: dict, optimizer, options: FitOptions, progress: FitProgress) -> None:
    """One checkpoint, replaced as a whole: the best weights (to use) and everything to resume."""
    optimizer_tensors, optimizer_meta = optimizer_to_tensors(optimizer)
    training = {"options": asdict(options), "metric": list(task.metric), "progress": asdict(progress),
                "optimizer": optimizer_meta, "best_epoch": progress.best_epoch, "best_scores": progress.best_scores}
    config = {"task": task.state(), "model": model.config(), "training": training}
    save_checkpoint(out, config, best_weights, kind=task.kind,
                    extra={"last": model.state_dict(), "optimizer": optimizer_tensors,
                           "state": {"torch_rng": torch.get_rng_state()}})


def fit(task, model: torch.nn.Module, train: list, val: list | None, options: FitOptions,
        out_dir: str | os.PathLike | None = None, overwrite: bool = False, resume: bool = False) -> dict:
    """Train ``model`` for ``task`` (see the module docstring); return a summary dict (JSON).

    ``out_dir`` goes through the output-folder check of every command
    (:func:`rnnlab.checkpoint.prepare_output_folder`; ``overwrite`` replaces an earlier run).
    ``resume=True`` continues the run saved in ``out_dir`` exactly where it stopped (the
    task and model come from :func:`rnnlab.tasks.base.load_task`; ``options`` may raise
    ``epochs`` and give a new ``max_time``, which counts the seconds of this call).
    Torch's global random state is seeded from ``options.seed`` inside the run (dropout)
    and restored for the caller afterwards.
    """
    options.validate()
    if resume and out_dir is None:
        raise UsageError("resuming needs the run's folder (out_dir)")
    if out_dir is not None:
        out_dir = prepare_output_folder(out_dir, task.kind, overwrite=overwrite, resume=resume)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        return _fit(task, model, train, val, options, Path(out_dir) if out_dir is not None else None, resume)


def _fit(task, model, train, val, options: FitOptions, out: Path | None, resume: bool) -> dict:
    metric, mode = task.metric
    device = next(model.parameters()).device
    precision = resolve_precision(options.precision, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    run = FitProgress()
    best_weights = None
    if resume:
        config = load_config(out, kind=task.kind)
        try:
            run = FitProgress(**config["training"]["progress"])
            best_weights = load_tensors(out, "model", config)
            model.load_state_dict(load_tensors(out, "last", config))
            optimizer.load_state_dict(optimizer_from_tensors(load_tensors(out, "optimizer", config),
                                                       config["training"]["optimizer"]))
            torch.set_rng_state(load_tensors(out, "state", config)["torch_rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{out}: cannot resume from this checkpoint ({type(exc).__name__}: {exc})") from None
        for group in optimizer.param_groups:
            group["lr"] = options.lr
    started = time.perf_counter()
    call_seconds = 0.0  # --max-time counts the training seconds of this call
    epoch_start = None  # while an epoch's steps run: when they started
    try:
        while run.epoch < options.epochs:
            epoch = run.epoch + 1
            generator = torch.Generator().manual_seed(options.seed * 1_000_003 + epoch)
            batches = list(task.batches(train, options.batch_size, generator))  # the epoch's order, replayable
            model.train()
            epoch_start = time.perf_counter()
            cut = False
            for batch in progress(batches[run.batch_in_epoch:], total=len(batches) - run.batch_in_epoch,
                                  desc=f"epoch {epoch}"):
                with autocast(device, precision):
                    loss = task.loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if options.clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), options.clip)
                optimizer.step()
                run.epoch_loss_sum += loss.item() * batch["size"]
                run.epoch_examples += batch["size"]
                run.examples_seen += batch["size"]
                run.batch_in_epoch += 1
                run.steps += 1
                if not math.isfinite(run.epoch_loss_sum):
                    raise TrainingError(f"the training loss became {loss.item()} in epoch {epoch}; try a lower --lr")
                if options.max_time is not None and \
                        call_seconds + time.perf_counter() - epoch_start >= options.max_time:
                    cut = run.batch_in_epoch < len(batches)
                    break
            seconds = time.perf_counter() - epoch_start
            epoch_start = None
            call_seconds += seconds
            run.train_seconds += seconds
            train_loss = run.epoch_loss_sum / max(run.epoch_examples, 1)
            if not cut:
                run.epoch, run.batch_in_epoch, run.epoch_loss_sum, run.epoch_examples = epoch, 0, 0.0, 0
            scores = task.evaluate(model, val if val else train, options.batch_size)
            value = scores[metric]
            split = "val" if val else "train"
            record = {"epoch": epoch if not cut else epoch - 1 + run.batch_in_epoch / len(batches),
                      "steps": run.steps, "train_loss": train_loss, f"{split}_{metric}": value,
                      f"{split}_loss": scores["loss"], "seconds": round(run.train_seconds, 3)}
            run.history.append(record)
            best = None if run.best_value is None else (run.best_value, run.best_loss)
            improved = _better(value, scores["loss"], best, mode) or not val
            if improved:
                run.best_value, run.best_loss, run.best_epoch = value, scores["loss"], record["epoch"]
                run.best_scores = scores
                best_weights = copy.deepcopy(model.state_dict())
                run.evaluations_without_improvement = 0
            else:
                run.evaluations_without_improvement += 1
            logger.info("epoch %.4g  train loss %.4f  %s %s %.4f%s  (%.1f s)", record["epoch"], train_loss, split,
                        metric, value, "  *" if improved and val else "", run.train_seconds)
            if val and options.patience and run.evaluations_without_improvement >= options.patience:
                run.stopped = "early-stopping"
            elif cut or (options.max_time is not None and call_seconds >= options.max_time):
                run.stopped = "max-time"
            else:
                run.stopped = "epochs"
            if out is not None:
                with open(out / "metrics.jsonl", "a", encoding="utf-8") as log:
                    log.write(dumps(record) + "\n")
                _save(out, task, model, best_weights, optimizer, options, run)
            if run.stopped != "epochs":
                break
    except KeyboardInterrupt:
        if epoch_start is not None:  # cut inside the epoch's steps: count their time
            run.train_seconds += time.perf_counter() - epoch_start
        if out is not None and best_weights is not None:  # keep what was done; --resume goes on from here
            run.stopped = "interrupted"
            _save(out, task, model, best_weights, optimizer, options, run)
        raise
    if best_weights is not None:
        model.load_state_dict(best_weights)
    model.eval()
    rate = run.examples_seen / run.train_seconds if run.train_seconds else None
    return {"metric": metric, "mode": mode, "best": run.best_value, "best_epoch": run.best_epoch,
            "epochs": run.epoch + (run.batch_in_epoch > 0), "steps": run.steps, "stopped": run.stopped,
            "train_seconds": run.train_seconds, "wall_seconds": time.perf_counter() - started,
            "train_examples_per_second": rate, "parameters": sum(p.numel() for p in model.parameters()),
            "validated_on": "val" if val else "train", "scores": run.best_scores,
            "history": run.history, "out": str(out) if out is not None else None,
            "threads": torch.get_num_threads(), "precision": precision}


__all__ = ["FitOptions", "FitProgress", "fit"]
