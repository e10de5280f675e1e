"""The one training loop, for every task (language model, classifier, tagger).

``Trainer(task, model, options).fit()`` trains, evaluates, logs, checkpoints and returns
a summary dict. It knows a task only through this interface (:class:`Task`)::

    task.kind                     checkpoint kind ("language-model", "classifier", "tagger")
    task.metric                   (name of a score in evaluate()'s result, "min" | "max")
    task.unit                     what one training item is ("tokens", "sequences")
    task.selects_best             False: no held-out data, every evaluation is the best so far
    task.min_improvement          optional: the relative gain that resets early stopping (default 1e-3)
    task.num_batches(epoch)       batches in that epoch
    task.batches(epoch)           the epoch's batches, in an order that is a function of (seed, epoch)
    task.loss(model, batch, carry, step) -> (mean loss, items, carry)
                                  ``carry``: what one batch hands to the next (a language
                                  model's hidden state under sequential partitioning, tensors
                                  with the batch in dim 1), or None. ``model`` is the network
                                  to run forward: under DDP a thin wrapper whose call goes
                                  through DistributedDataParallel and whose every attribute
                                  (``begin_state``, ``device``, ``config()``) is the model's
    task.evaluate(model)          held-out scores (the metric, "loss", ...) or None
    task.record(train_loss, scores, model)  the task's fields of an evaluation's log record
    task.log_line(record)         that record for a human
    task.checkpoint_sections()    what config.json must say about the data and the task
    task.check_checkpoint(folder) the config of a checkpoint of this task, checked (resume)
    task.carry_template(model)    the carried state's tensors on the meta device, or None
    task.summary(trainer)         the task's fields of the summary

and a model only through ``nn.Module`` plus ``config()``, so the loop, the optimizer, the
learning-rate schedule, clipping, mixed precision, time/step/epoch budgets, early
stopping on the task's metric, checkpoints (the latest in ``out_dir`` to resume, the best
in ``out_dir/best`` to use), ``metrics.jsonl``, progress and callbacks are written once.

Exact resume: the data order of an epoch is a function of ``(seed, epoch)``; the
checkpoint keeps weights, optimizer tensors, torch's RNG state, the counters
(:class:`~rnnlab.training.state.Progress`) and, mid-epoch, the carried state. Resuming
replays the epoch's order and skips the batches already done, so ``k`` steps + resume +
``N - k`` steps gives the same parameters as ``N`` steps in one go.

Several processes (``dist``, a :class:`~rnnlab.training.distributed.Distributed` record
with ``world_size > 1``; see :mod:`rnnlab.training.distributed`): the model is wrapped in
DistributedDataParallel for the forward and backward, so every rank applies the same
update with the gradient averaged over the global batch (the iterator gives every rank
equally many rows, so the mean of the ranks' means is the global mean). Everything
else sees the unwrapped model: evaluation, ``config()``, the checkpoint's weights (no
``module.`` prefix). Every decision that ends or shapes the run is taken alike on every
rank: the NaN/inf check reduces the loss over the ranks, the clock of the time budget
and of the cosine schedule is rank 0's (broadcast every step), early stopping follows
the reduced validation scores and rank 0's callbacks (broadcast). Side effects have one
gate, ``dist.is_main``: checkpoints, ``metrics.jsonl``, figures, log lines, the progress
bar and the callbacks happen on rank 0. A checkpoint holds the global batch's carried
state (gathered from the ranks) and the number of processes; it resumes only with the
same number. Dropout noise is drawn from a generator reseeded every step from
``(seed, rank, step)``, so ranks draw different masks and a resume needs no per-rank
random state.
"""
from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from rnnlab.checkpoint import config_value, is_int
from rnnlab.errors import TrainingError, UsageError
from rnnlab.fileio import atomic_write
from rnnlab.interrupts import deferred, raise_if_requested
from rnnlab.jsonout import dumps
from rnnlab.model_checkpoint import load_checked_weights
from rnnlab.precision import autocast, resolve_device, resolve_precision
from rnnlab.progress import logger, progress
from rnnlab.training.checkpoint import load_resume_state, save_training
from rnnlab.training.config import UNLIMITED_EPOCHS, LoopOptions
from rnnlab.training.distributed import SINGLE, Distributed, DistributedModel
from rnnlab.training.state import Progress

Callback = Callable[[dict], object]
# An evaluation counts as an improvement for early stopping and the lr plateau only when it
# beats the reference by this fraction; tiny gains should not keep a plateaued run going.
MIN_IMPROVEMENT = 1e-3
# On a tie of the metric (common once a small validation set is all right), the held-out
# loss must fall by this much (nats) or by 1%, whichever is more, to count as better.
MIN_LOSS_GAIN = 1e-3
# On a GPU reading the loss back is a sync; check for NaN/inf only this often there.
CHECK_EVERY_ACCELERATED = 50
# The cosine schedule: linear warm-up over this fraction of the budget, then down to
# this fraction of the base learning rate at the end of the budget.
WARMUP_FRACTION = 0.02
FINAL_LR_RATIO = 0.05
# With a time budget, early stopping counts only evaluations whose metric is this much
# (relative) worse than the best: a plateau does not end the run while the rest of the
# budget, with the learning rate going down, can still buy quality.
CLEARLY_WORSE = 0.02


class Task(Protocol):
    """What the loop needs from a task (see the module docstring)."""

    kind: str
    metric: tuple[str, str]
    unit: str
    selects_best: bool

    def num_batches(self, epoch: int) -> int: ...
    def batches(self, epoch: int): ...
    def loss(self, model, batch, carry, step: int): ...
    def evaluate(self, model) -> dict | None: ...
    def record(self, train_loss: float, scores: dict | None, model) -> dict: ...
    def log_line(self, record: dict) -> str: ...
    def checkpoint_sections(self) -> dict: ...
    def check_checkpoint(self, folder) -> dict: ...
    def carry_template(self, model): ...
    def summary(self, trainer: "Trainer") -> dict: ...


def cosine_lr_factor(fraction: float) -> float:
    """Multiplier of the base learning rate when ``fraction`` (0..1) of the budget is spent."""
    fraction = min(max(fraction, 0.0), 1.0)
    warmup = min(1.0, (fraction + 1e-12) / WARMUP_FRACTION)
    return warmup * (FINAL_LR_RATIO + (1 - FINAL_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * fraction)))


def better(value: float, loss: float | None, reference: tuple | None, mode: str, margin: float = 0.0) -> bool:
    """Is (metric ``value``, held-out ``loss``) better than ``reference`` = (value, loss)?

    Better by more than ``margin`` (relative) in the task's direction; an equal metric is
    better only when the loss fell clearly (``MIN_LOSS_GAIN`` or 1%), so a task whose
    validation set is all right keeps improving its confidence, and stops when it does not.
    """
    if reference is None or reference[0] is None:
        return True
    best_value, best_loss = reference
    if value != best_value:
        if mode == "min":
            return value < best_value * (1 - margin)
        return value > best_value + margin * abs(best_value)
    return loss is not None and best_loss is not None and loss < best_loss - max(MIN_LOSS_GAIN, 0.01 * best_loss)


class StopTraining(Exception):
    """Raise from a callback to end training after the current evaluation."""


class _RunningTotals:
    """Sums of the loss (x items) and gradient norms, kept on the training device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        self.loss, self.grad_sum, self.grad_max = zero, zero.clone(), zero.clone()
        self.items = self.count = 0

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor, items: int) -> None:
        self.loss = self.loss + loss.double() * items
        self.grad_sum = self.grad_sum + grad_norm.double()
        self.grad_max = torch.maximum(self.grad_max, grad_norm.double())
        self.items += items
        self.count += 1

    def drain(self) -> tuple[float, float, float, int, int]:
        """(loss sum, grad_sum, grad_max, items, steps) since the last drain, as Python numbers."""
        values = torch.stack([self.loss, self.grad_sum, self.grad_max]).tolist()  # one sync
        out = (*values, self.items, self.count)
        self._reset()
        return out


def make_optimizer(model: torch.nn.Module, options: LoopOptions) -> torch.optim.Optimizer:
    """The optimizer ``options`` name (validated options: :meth:`LoopOptions.validate` checks
    every value once)."""
    params = [p for p in model.parameters() if p.requires_grad]
    # Not given (None): AdamW's customary 0.01, 0 for the others; an explicit 0 is 0 for all.
    decay = options.weight_decay if options.weight_decay is not None else (0.01 if options.optimizer == "adamw" else 0.0)
    if options.optimizer == "sgd":
        return torch.optim.SGD(params, lr=options.lr, weight_decay=decay)
    if options.optimizer == "adam":
        return torch.optim.Adam(params, lr=options.lr, betas=(0.9, options.adam_beta2), weight_decay=decay)
    if options.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=options.lr, betas=(0.9, options.adam_beta2), weight_decay=decay)
    raise UsageError(f"unknown optimizer '{options.optimizer}'")


class Trainer:
    """Train ``model`` on ``task`` with the loop ``options`` (see the module docstring).

    ``callbacks`` are called after every evaluation with the logged record (a dict);
    raising :class:`StopTraining` ends training. ``out_dir`` receives the latest
    checkpoint (to resume), ``out_dir/best`` a checkpoint of the weights with the best
    validation score so far (to use), and ``metrics.jsonl``. With ``keep_best`` the
    best weights are also kept in memory and loaded into the model when ``fit`` ends.

    ``dist``: this process's place in a distributed run (default: a single process);
    ``model`` stays the unwrapped network, ``forward_model`` is what the task's loss runs.
    """

    def __init__(self, task: Task, model: torch.nn.Module, options: LoopOptions,
                 out_dir: str | os.PathLike | None = None, callbacks: list[Callback] | tuple = (),
                 keep_best: bool = False, dist: Distributed = SINGLE) -> None:
        self.options = options.validate()
        self.task = task
        self.dist = dist
        self.device = dist.device if dist.device is not None else resolve_device(options.device)
        self.model = model.to(self.device)
        self.precision = resolve_precision(options.precision, self.device, warn=dist.is_main)  # fp32 | bf16, decided once
        self.totals = _RunningTotals(self.device)
        self.optimizer = make_optimizer(self.model, options)
        # Under DDP the forward (and so the gradient all-reduce) goes through the wrapper;
        # the optimizer, evaluation and checkpoints use the model's own parameters.
        self.forward_model = DistributedModel(self.model, dist) if dist.enabled else self.model
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        self.keep_best = keep_best
        self.best_weights: dict | None = None
        self.progress = Progress(lr=options.lr)
        self.carried = None  # what the last batch handed on (resume mid-epoch)
        self._rng_seeded = False

    # ------------------------------------------------------------------------------
    def restore(self, folder) -> None:
        """Load weights, optimizer, RNG, counters and the carried state from a checkpoint of this task."""
        config = self.task.check_checkpoint(folder)
        check_world_size(folder, config, self.dist.world_size)
        self.model.load_state_dict(load_checked_weights(folder, config, self.model))
        carried = load_resume_state(folder, config, self.optimizer, self.device,
                                    self.task.carry_template(self.model))
        self.carried = self._my_rows(carried)
        self.progress = Progress.from_dict(config["progress"], f"{Path(folder) / 'config.json'}")
        self._set_lr(self.progress.lr or self.options.lr)
        self._rng_seeded = True  # the checkpoint's RNG state was restored
        if self.keep_best and (Path(folder) / "best" / "config.json").exists():
            best = Path(folder) / "best"
            self.best_weights = load_checked_weights(best, self.task.check_checkpoint(best), self.model)
        if self.out_dir is not None and self.dist.is_main:
            # The checkpoint's history is the record of what was trained; the log is rebuilt
            # from it, so a run killed between a checkpoint and its log line (or in the middle
            # of the line) goes on with metrics.jsonl and config.json agreeing.
            self.out_dir.mkdir(parents=True, exist_ok=True)
            lines = "".join(dumps(record) + "\n" for record in self.progress.history)
            atomic_write(self.out_dir / "metrics.jsonl", lines.encode("utf-8"))

    def save(self, best: bool = False) -> None:
        """Checkpoint into ``out_dir`` (``out_dir/best`` for the best validation score so far).

        Under DDP every rank calls it (the carried state of the global batch is gathered
        from the ranks) and rank 0 writes.
        """
        if self.out_dir is None:
            return
        carried = self._all_rows(self.carried) if self.progress.batch_in_epoch else None
        if not self.dist.is_main:
            return
        save_training(self.out_dir / "best" if best else self.out_dir, self.model, self.task.checkpoint_sections(),
                      self.options.to_dict(), self.progress.to_dict(), self.optimizer,
                      carried_state=carried, kind=self.task.kind, world_size=self.dist.world_size,
                      documents=getattr(self.task, "checkpoint_documents", dict)())

    def _all_rows(self, carried):
        """The carried state of the global batch: the ranks' rows (dim 1) side by side."""
        if carried is None or not self.dist.enabled:
            return carried
        parts = carried if isinstance(carried, tuple) else (carried,)
        gathered = tuple(self.dist.gather_rows(part, dim=1) for part in parts)
        return gathered if isinstance(carried, tuple) else gathered[0]

    def _my_rows(self, carried):
        """This rank's rows of a checkpoint's global carried state (inverse of :meth:`_all_rows`)."""
        if carried is None or not self.dist.enabled:
            return carried
        parts = carried if isinstance(carried, tuple) else (carried,)
        rows = parts[0].shape[1] // self.dist.world_size
        mine = tuple(part[:, self.dist.rank * rows:(self.dist.rank + 1) * rows].contiguous() for part in parts)
        return mine if isinstance(carried, tuple) else mine[0]

    def _elapsed(self, since: float) -> float:
        """Seconds since ``since`` by rank 0's clock, so every rank takes the same time decisions."""
        return self.dist.broadcast(time.perf_counter() - since)

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.progress.lr = lr

    # ------------------------------------------------------------------------------
    def fit(self, epochs: int | None = None, max_time: float | None = None) -> dict:
        """Train until ``epochs`` (total, counting resumed ones), the time budget or early stopping."""
        options = self.options
        total_epochs = epochs if epochs is not None else options.epochs
        budget = max_time if max_time is not None else options.max_time
        fit_started = time.perf_counter()
        self._budget = (total_epochs, budget, fit_started)
        if not self._rng_seeded:
            torch.manual_seed(options.seed)  # dropout noise; its state is checkpointed from here on
            self._rng_seeded = True
        with deferred():  # a SIGTERM stops the run at the end of a step, not inside one
            return self._fit(total_epochs, budget, fit_started)

    def _fit(self, total_epochs: int, budget: float | None, fit_started: float) -> dict:
        options, p = self.options, self.progress
        reason = "epochs"
        try:
            while p.epoch < total_epochs:
                outcome = self._run_epoch(budget, fit_started)
                if outcome in ("early_stop", "max_steps", "max_time"):
                    reason = outcome
                    break
                p.epoch += 1
                p.batch_in_epoch = 0
                if p.epoch % options.eval_every == 0 or p.epoch == total_epochs:
                    if self._evaluate_and_log():
                        reason = "early_stop"
                        break
                if p.epoch < total_epochs:
                    if options.max_steps is not None and p.step >= options.max_steps:
                        reason = "max_steps"
                        break
                    if budget and self._elapsed(fit_started) > budget:
                        reason = "max_time"
                        break
        except KeyboardInterrupt:
            p.stopped = "interrupted"
            *_, items, _ = self.totals.drain()  # a step cut short leaves no loss worth counting
            p.items += items * self.dist.world_size
            if not self.dist.enabled:
                # Under DDP the ranks are interrupted at different points and cannot agree on
                # a checkpoint: the one of the last evaluation stays.
                self.save()
            raise
        p.stopped = reason
        p.wall_seconds += time.perf_counter() - fit_started
        if not p.history or p.history[-1]["step"] != p.step:
            self._evaluate_and_log(check_plateau=False)
        else:
            self.save()
        if self.keep_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        self.model.eval()
        return self.summary()

    def _run_epoch(self, budget: float | None, fit_started: float) -> str:
        """One epoch (or its remainder after a resume): "done", or why it stopped early."""
        options, p, task = self.options, self.progress, self.task
        self.model.train()
        show = self.dist.is_main
        skip = p.batch_in_epoch
        carry = self.carried if skip else None
        total = task.num_batches(p.epoch)
        started = time.perf_counter()
        for index, batch in enumerate(progress(task.batches(p.epoch), total=total, desc=f"epoch {p.epoch + 1}",
                                               enabled=show)):
            if index < skip:
                continue  # already trained on before the checkpoint
            if self.dist.enabled:
                torch.manual_seed(_step_seed(options.seed, self.dist.rank, p.step))  # dropout: f(seed, rank, step)
            with autocast(self.device, self.precision):
                loss, items, carry = task.loss(self.forward_model, batch, carry, p.step)
            self._update(loss, items)
            p.batch_in_epoch = index + 1
            self.carried = carry
            p.train_seconds += time.perf_counter() - started
            raise_if_requested()  # a safe point: the step is complete and counted
            if options.eval_every_steps and p.step % options.eval_every_steps == 0:
                if self._evaluate_and_log():
                    return "early_stop"
            started = time.perf_counter()  # evaluation, checkpoints and figures are not training time
            last = index + 1 >= total
            if options.max_steps is not None and p.step >= options.max_steps and not last:
                return "max_steps"
            if budget and not last and self._elapsed(fit_started) > budget:
                return "max_time"
        self.carried = None
        return "done"

    def _update(self, loss: torch.Tensor, items: int) -> None:
        """Backward, clip, step; record the loss and the gradient norm before clipping.

        The loss and norm stay on the device (a Python float per step would be a device
        sync per step on a GPU); :meth:`_check_totals` reads them back and stops on
        NaN/inf every step on the CPU, where reading costs nothing, and every
        ``CHECK_EVERY_ACCELERATED`` steps elsewhere. A non-finite loss or norm is caught
        before the update it would poison only where it is checked every step.
        """
        p = self.progress
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [q for q in self.model.parameters() if q.grad is not None]
        max_norm = self.options.clip if self.options.clip is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.totals.add(loss.detach(), grad_norm.detach(), items)
        p.step += 1
        if self.device.type == "cpu" or p.step % CHECK_EVERY_ACCELERATED == 0:
            self._check_totals()
        if self.options.lr_schedule == "cosine":
            self._set_lr(self.options.lr * cosine_lr_factor(self._budget_fraction()))
        self.optimizer.step()

    def _budget_fraction(self) -> float:
        """How much of the run's budget is spent (0..1): the tightest of epochs, steps and time.

        Epochs and steps count from the start of the run (so a resumed run continues the
        same schedule exactly); a time budget is per invocation, as ``--max-time`` is.
        """
        p, options = self.progress, self.options
        total_epochs, budget, fit_started = self._budget  # set by fit(), the only caller of _update
        fractions = [0.0]
        if total_epochs < UNLIMITED_EPOCHS:
            fractions.append((p.epoch + p.batch_in_epoch / max(self.task.num_batches(p.epoch), 1)) / total_epochs)
        if options.max_steps:
            fractions.append(p.step / options.max_steps)
        if budget:
            fractions.append(self._elapsed(fit_started) / budget)
        return min(1.0, max(fractions))

    def _check_totals(self) -> None:
        """Move the device totals into the (JSON) progress counters; stop on NaN/inf.

        Under DDP the loss and item totals are summed over the ranks first (one small
        all-reduce), so a NaN on any rank stops every rank at the same step; the gradient
        norms are the same on every rank (DDP averaged the gradients before they were taken).
        """
        p = self.progress
        loss_sum, grad_sum, grad_max, items, count = self.totals.drain()
        if self.dist.enabled:
            loss_sum, items = self.dist.sum([loss_sum, items])
            items = int(items)
        p.items += items
        if not (math.isfinite(loss_sum) and math.isfinite(grad_sum)):
            what = "loss" if not math.isfinite(loss_sum) else "gradient norm"
            p.step -= 1  # the update was not (CPU) or should not have been applied
            raise TrainingError(self._diverged(what, loss_sum if what == "loss" else grad_sum, count))
        p.loss_sum += loss_sum
        p.loss_weight += items
        p.grad_norm_sum += grad_sum
        p.grad_norm_max = max(p.grad_norm_max, grad_max)
        p.grad_norm_count += count

    def _diverged(self, what: str, value: float, steps: int = 1) -> str:
        p = self.progress
        kept = f"; the last good checkpoint in {self.out_dir} is kept" if self.out_dir else ""
        when = f"at step {p.step + 1}" if steps <= 1 else f"within steps {p.step + 2 - steps}-{p.step + 1}"
        return f"{what} became {value} {when} (epoch {p.epoch + 1}){kept}; lower --lr or set --clip"

    # ------------------------------------------------------------------------------
    def _evaluate_and_log(self, check_plateau: bool = True) -> bool:
        """Evaluate, log a record, checkpoint, adjust lr; True when early stopping triggers."""
        options, p, task = self.options, self.progress, self.task
        self._check_totals()
        scores = task.evaluate(self.model)
        train_loss = p.loss_sum / p.loss_weight if p.loss_weight else float("nan")
        rate = p.items / p.train_seconds if p.train_seconds else None
        record = {"epoch": p.epoch + (p.batch_in_epoch / max(task.num_batches(p.epoch), 1) if p.batch_in_epoch else 0),
                  "step": p.step, **task.record(train_loss, scores, self.model),
                  f"{task.unit}_per_second": rate,
                  "grad_norm_mean": p.grad_norm_sum / p.grad_norm_count if p.grad_norm_count else None,
                  "grad_norm_max": p.grad_norm_max if p.grad_norm_count else None,
                  "lr": p.lr, "seconds": round(p.train_seconds, 3)}
        self.model.train()
        p.history.append(record)
        p.loss_sum, p.loss_weight = 0.0, 0
        p.grad_norm_sum, p.grad_norm_max, p.grad_norm_count = 0.0, 0.0, 0
        stop = improved = False
        if scores is not None:
            metric, mode = task.metric
            value, loss = scores[metric], scores.get("loss")
            improved = not task.selects_best or better(value, loss, (p.best_value, p.best_loss), mode)
            significant = better(value, loss, (p.plateau_best, p.best_loss), mode,
                                 margin=getattr(task, "min_improvement", MIN_IMPROVEMENT))
            if improved:
                p.best_value, p.best_loss, p.best_epoch, p.best_scores = value, loss, record["epoch"], scores
                if self.keep_best:
                    self.best_weights = copy.deepcopy(self.model.state_dict())
            if check_plateau and task.selects_best:
                # Scheduled evaluations only: the extra one when a run stops early (max_time,
                # max_steps) must not shift the schedule of a resumed run.
                if significant:
                    p.plateau_best = value
                    p.evals_without_improvement = 0
                elif self._budget[1] and options.lr_schedule != "plateau":
                    # A time budget: count only consecutive evaluations clearly worse than the best.
                    worse = not better(value, None, (p.best_value * (1 + CLEARLY_WORSE if mode == "min" else
                                                                     1 - CLEARLY_WORSE), None), mode)
                    p.evals_without_improvement = p.evals_without_improvement + 1 if worse else 0
                    if options.early_stop and p.evals_without_improvement >= options.early_stop:
                        stop = True
                        if self.dist.is_main:
                            logger.info("stopping early: validation %s has been more than %g%% worse than its best "
                                        "(%.4g at epoch %.4g) for %d evaluations", metric, 100 * CLEARLY_WORSE,
                                        p.best_value, p.best_epoch, p.evals_without_improvement)
                else:
                    p.evals_without_improvement += 1
                    if options.lr_schedule == "plateau" and options.lr_decay \
                            and p.evals_without_improvement % options.lr_patience == 0:
                        self._set_lr(p.lr * options.lr_decay)
                    if options.early_stop and p.evals_without_improvement >= options.early_stop:
                        stop = True
        if self.dist.is_main:
            logger.info(task.log_line(record))
        self.save()
        if improved:
            self.save(best=True)
        if self.dist.is_main:
            self._write_logs(record)
            for callback in self.callbacks:  # on rank 0; its decision to stop is every rank's
                try:
                    callback(record)
                except StopTraining:
                    stop = True
        if self.dist.enabled:
            stop = bool(self.dist.broadcast(float(stop)))
        if stop:
            p.stopped = "early_stop"
        return stop

    def _write_logs(self, record: dict) -> None:
        if self.out_dir is None:
            return
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(dumps(record) + "\n")  # NaN/inf as null: every line is standard JSON
        figure = getattr(self.task, "figure", None)
        if figure is not None:
            figure(self.progress.history, self.out_dir)

    # ------------------------------------------------------------------------------
    def summary(self) -> dict:
        """What the run did (JSON): the loop's counters, then the task's own fields."""
        p = self.progress
        last = p.history[-1] if p.history else {}
        metric, mode = self.task.metric
        return {
            "metric": metric, "mode": mode, "best": p.best_value, "best_epoch": p.best_epoch,
            "parameters": sum(q.numel() for q in self.model.parameters()),
            f"{self.task.unit}_per_second": last.get(f"{self.task.unit}_per_second"),
            "epochs": p.epoch + (p.batch_in_epoch / max(self.task.num_batches(p.epoch), 1)),
            "steps": p.step, "seconds": round(p.train_seconds, 3),
            "wall_seconds": round(p.wall_seconds, 3), "precision": self.precision, "stopped": p.stopped,
            "device": str(self.device), "threads": torch.get_num_threads(),
            "processes": self.dist.world_size, "rank": self.dist.rank,
            "out": str(self.out_dir) if self.out_dir else None,
            **self.task.summary(self),
        }


def _step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of a rank's random draws (dropout) at a step of a distributed run."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def check_world_size(folder, config: dict, world_size: int) -> None:
    """Refuse to resume a checkpoint written by another number of processes (UsageError)."""
    saved = config_value(config, "distributed.world_size", folder, is_int(1), "an integer >= 1", default=1)
    if saved != world_size:
        how = "without torchrun (or --nproc_per_node=1)" if saved == 1 else \
            f"with {saved} processes (torchrun --nproc_per_node={saved} on one node)"
        raise UsageError(f"{folder} was trained by {saved} process{'es' if saved > 1 else ''} and this run has "
                         f"{world_size}; resume it {how}: each process's rows of the batch and its carried state "
                         "depend on the number")


__all__ = ["Task", "Trainer", "StopTraining", "Callback", "better", "check_world_size", "cosine_lr_factor",
           "make_optimizer"]
