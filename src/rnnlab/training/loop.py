"""The training loop for every recurrent language model.

``Trainer(config, dataset).fit()`` trains, evaluates on the validation split,
logs, checkpoints and returns a summary dict. It knows the models only through
the interface of :mod:`rnnlab.models.base` and the data only through
:class:`rnnlab.data.batches.BatchIterator`, so models, BPTT strategies and data
sources vary independently.

Exact resume: the data order of an epoch is a function of ``(seed, epoch)``,
the randomized-BPTT scales a function of ``(seed, step)``; the checkpoint keeps
weights, optimizer tensors, torch's RNG state, the counters, and mid-epoch the
hidden state carried between batches. Resuming replays the epoch's order and
skips the batches already done, so ``k`` steps + resume + ``N - k`` steps gives
the same parameters as ``N`` steps in one go.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from rnnlab.data.batches import BatchIterator
from rnnlab.data.dataset import TextDataset
from rnnlab.errors import TrainingError, UsageError
from rnnlab.evaluation import evaluate, unigram_result
from rnnlab.jsonout import dumps
from rnnlab.lm import LanguageModel, resolve_device
from rnnlab.metrics import perplexity
from rnnlab.models import RecurrentLM, build_model, detach_state, map_state
from rnnlab.precision import autocast, resolve_precision
from rnnlab.progress import logger, progress
from rnnlab.training.bptt import full_bptt_megabytes, randomized_scales
from rnnlab.training.config import UNLIMITED_EPOCHS, TrainConfig

Callback = Callable[[dict], object]
# A validation perplexity counts as an improvement (for lr decay and early stopping)
# only when it beats the best by this fraction; tiny gains should not keep a
# plateaued run going with an ever smaller learning rate.
MIN_IMPROVEMENT = 1e-3
# On a GPU reading the loss back is a sync; check for NaN/inf only this often there.
CHECK_EVERY_ACCELERATED = 50
# The cosine schedule: linear warm-up over this fraction of the budget, then down to
# this fraction of the base learning rate at the end of the budget.
WARMUP_FRACTION = 0.02
FINAL_LR_RATIO = 0.05


def cosine_lr_factor(fraction: float) -> float:
    """Multiplier of the base learning rate when ``fraction`` (0..1) of the budget is spent."""
    fraction = min(max(fraction, 0.0), 1.0)
    warmup = min(1.0, (fraction + 1e-12) / WARMUP_FRACTION)
    return warmup * (FINAL_LR_RATIO + (1 - FINAL_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * fraction)))


class StopTraining(Exception):
    """Raise from a callback to end training after the current evaluation."""


class _RunningTotals:
    """Sums of the loss (nats x tokens) and gradient norms, kept on the training device."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        zero = torch.zeros((), dtype=torch.float64, device=self.device)
        self.nll, self.grad_sum, self.grad_max = zero, zero.clone(), zero.clone()
        self.tokens = self.count = 0

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor, tokens: int) -> None:
        self.nll = self.nll + loss.double() * tokens
        self.grad_sum = self.grad_sum + grad_norm.double()
        self.grad_max = torch.maximum(self.grad_max, grad_norm.double())
        self.tokens += tokens
        self.count += 1

    def drain(self) -> tuple[float, float, float, int, int]:
        """(nll, grad_sum, grad_max, tokens, steps) since the last drain, as Python numbers."""
        values = torch.stack([self.nll, self.grad_sum, self.grad_max]).tolist()  # one sync
        out = (*values, self.tokens, self.count)
        self._reset()
        return out


def make_optimizer(model: RecurrentLM, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # Not given (None): AdamW's customary 0.01, 0 for the others; an explicit 0 is 0 for all.
    decay = config.weight_decay if config.weight_decay is not None else (0.01 if config.optimizer == "adamw" else 0.0)
    if not (isinstance(decay, (int, float)) and math.isfinite(decay) and decay >= 0):
        raise UsageError(f"weight-decay must be a finite number >= 0, got {decay}")
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=decay)
    raise UsageError(f"unknown optimizer '{config.optimizer}'")


def fresh_progress() -> dict:
    """Counters saved in checkpoints (all JSON)."""
    return {"epoch": 0, "step": 0, "batch_in_epoch": 0, "epoch_nll": 0.0, "epoch_tokens": 0,
            "best_val_perplexity": None, "plateau_best": None, "evals_without_improvement": 0, "lr": None,
            "train_seconds": 0.0, "wall_seconds": 0.0, "train_tokens": 0, "history": [], "stopped": None}


class Trainer:
    """Train ``model`` (built from ``config`` when not given) on ``dataset``.

    ``callbacks`` are called after every evaluation with the logged record (a dict);
    raising :class:`StopTraining` ends training. ``out_dir`` receives the latest
    checkpoint (to resume), ``out_dir/best`` a checkpoint of the weights with the
    best validation perplexity so far (to use), ``metrics.jsonl`` and ``perplexity.png``.
    """

    def __init__(self, config: TrainConfig, dataset: TextDataset, model: RecurrentLM | None = None,
                 out_dir: str | os.PathLike | None = None, callbacks: list[Callback] | tuple = (),
                 data_info: dict | None = None) -> None:
        self.config = config.validate()
        self.dataset = dataset
        self.device = resolve_device(config.device)
        if model is None:
            model = build_model(config.model, len(dataset.vocab), seed=config.seed, **config.model_options())
        self.model = model.to(self.device)
        self.precision = resolve_precision(config.precision, self.device)  # fp32 | bf16, decided once
        self.totals = _RunningTotals(self.device)
        self.optimizer = make_optimizer(self.model, config)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        self.data_info = data_info or {"corpus": dataset.corpus_name}
        self.progress = fresh_progress()
        self.progress["lr"] = config.lr
        self.carried = None  # hidden state carried between sequential batches (resume mid-epoch)
        self.loader = BatchIterator(dataset.train, config.batch_size, config.num_steps,
                                    sampling=config.sampling, seed=config.seed)
        self._rng_seeded = False
        if config.bptt == "full":
            megabytes = full_bptt_megabytes(len(dataset.train), self.model.config())
            if megabytes > config.full_bptt_max_mb:
                raise TrainingError(
                    f"full BPTT over {len(dataset.train):,} training tokens needs about {megabytes:,.4g} MB of "
                    f"activations, above the limit of {config.full_bptt_max_mb:,.4g} MB (--full-bptt-max-mb); "
                    "use --bptt truncated, or fewer training tokens (--max-tokens)")

    # ------------------------------------------------------------------------------
    @property
    def language_model(self) -> LanguageModel:
        return LanguageModel(self.model, self.dataset.vocab, self.dataset.mode, self.dataset.token)

    def restore(self, folder) -> None:
        """Load weights, optimizer, RNG and counters from a checkpoint written by this class."""
        from rnnlab.training.checkpoint import load_model, load_resume_state, load_training_config
        config = load_training_config(folder)
        self.model.load_state_dict(load_model(folder, config, self.device).state_dict())
        self.carried = load_resume_state(folder, config, self.optimizer, self.device)
        self.progress = {**fresh_progress(), **config["progress"]}
        self._set_lr(self.progress["lr"] or self.config.lr)
        self._rng_seeded = True  # the checkpoint's RNG state was restored
        if self.out_dir is not None:
            # The checkpoint's history is the record of what was trained; the log is rebuilt
            # from it, so a run killed between a checkpoint and its log line (or in the middle
            # of the line) goes on with metrics.jsonl and config.json agreeing.
            from rnnlab.fileio import atomic_write
            from rnnlab.jsonout import dumps
            self.out_dir.mkdir(parents=True, exist_ok=True)
            lines = "".join(dumps(record) + "\n" for record in self.progress["history"])
            atomic_write(self.out_dir / "metrics.jsonl", lines.encode("utf-8"))

    def save(self, best: bool = False) -> None:
        """Checkpoint into ``out_dir`` (``out_dir/best`` for the best validation perplexity so far)."""
        if self.out_dir is None:
            return
        from rnnlab.training.checkpoint import save_training
        save_training(self.out_dir / "best" if best else self.out_dir, self.model, self.dataset.vocab, self.dataset.preprocessing(),
                      self.data_info, self.config.to_dict(), self.progress, self.optimizer,
                      carried_state=self.carried if self.progress["batch_in_epoch"] else None)

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.progress["lr"] = lr

    # ------------------------------------------------------------------------------
    def fit(self, epochs: int | None = None, max_time: float | None = None) -> dict:
        """Train until ``epochs`` (total, counting resumed ones), the time budget or early stopping."""
        config = self.config
        total_epochs = epochs if epochs is not None else config.epochs
        budget = max_time if max_time is not None else config.max_time
        fit_started = time.perf_counter()
        deadline = fit_started + budget if budget else None
        self._budget = (total_epochs, budget, fit_started)
        if not self._rng_seeded:
            torch.manual_seed(config.seed)  # dropout noise; its state is checkpointed from here on
            self._rng_seeded = True
        p = self.progress
        reason = "epochs"
        try:
            while p["epoch"] < total_epochs:
                outcome = self._run_epoch(deadline)
                if outcome in ("early_stop", "max_steps", "max_time"):
                    reason = outcome
                    break
                if outcome == "done":
                    p["epoch"] += 1
                    p["batch_in_epoch"] = 0
                    if p["epoch"] % config.eval_every == 0 or p["epoch"] == total_epochs:
                        if self._evaluate_and_log():
                            reason = "early_stop"
                            break
                if p["epoch"] < total_epochs:
                    if config.max_steps is not None and p["step"] >= config.max_steps:
                        reason = "max_steps"
                        break
                    if deadline is not None and time.perf_counter() > deadline:
                        reason = "max_time"
                        break
        except KeyboardInterrupt:
            p["stopped"] = "interrupted"
            self.totals.drain()  # a step cut short leaves nothing worth counting
            self.save()
            raise
        p["stopped"] = reason
        p["wall_seconds"] = p.get("wall_seconds", 0.0) + time.perf_counter() - fit_started
        if not p["history"] or p["history"][-1]["step"] != p["step"]:
            self._evaluate_and_log(check_plateau=False)
        else:
            self.save()
        return self.summary()

    def _run_epoch(self, deadline: float | None) -> str:
        """One epoch (or its remainder after a resume): "done", or why it stopped early."""
        if self.config.bptt == "full":
            return self._run_full_epoch(deadline)
        config, p = self.config, self.progress
        self.model.train()
        self.loader.epoch = p["epoch"]
        skip = p["batch_in_epoch"]
        state = self.carried if skip else None
        total = len(self.loader)
        started = time.perf_counter()
        for index, (X, Y) in enumerate(progress(self.loader, total=total, desc=f"epoch {p['epoch'] + 1}")):
            if index < skip:
                continue  # already trained on before the checkpoint
            if state is None or config.sampling == "random":
                state = self.model.begin_state(X.shape[0], self.device)
            else:
                state = detach_state(state)
            X, Y = X.to(self.device), Y.to(self.device)
            scales = None
            if config.bptt == "randomized":
                scales = randomized_scales(X.shape[1], config.bptt_keep_prob, config.seed, p["step"]).to(self.device)
            with autocast(self.device, self.precision):
                logits, state = self.model(X, state, scales) if scales is not None else self.model(X, state)
            state = map_state(lambda s: s.float(), state)  # carried and checkpointed in float32
            # The softmax and the loss stay in float32 whatever the precision of the products.
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), Y.reshape(-1))
            self._update(loss, Y.numel())
            p["batch_in_epoch"] = index + 1
            self.carried = detach_state(state) if config.sampling == "sequential" else None
            p["train_seconds"] += time.perf_counter() - started
            if config.eval_every_steps and p["step"] % config.eval_every_steps == 0:
                if self._evaluate_and_log():
                    return "early_stop"
            started = time.perf_counter()  # evaluation, checkpoints and figures are not training time
            last = index + 1 >= total
            if config.max_steps is not None and p["step"] >= config.max_steps and not last:
                return "max_steps"
            if deadline is not None and time.perf_counter() > deadline and not last:
                return "max_time"
        self.carried = None
        return "done"

    def _run_full_epoch(self, deadline: float | None) -> str:
        """Full BPTT: the whole epoch is one graph, one backward pass, one update."""
        p = self.progress
        self.model.train()
        self.loader.epoch = p["epoch"]
        started = time.perf_counter()
        state = None
        total_nll, tokens = 0.0, 0
        for X, Y in progress(self.loader, total=len(self.loader), desc=f"epoch {p['epoch'] + 1}"):
            X, Y = X.to(self.device), Y.to(self.device)
            state = self.model.begin_state(X.shape[0], self.device) if state is None else state
            with autocast(self.device, self.precision):
                logits, state = self.model(X, state)  # no detach: gradients reach the first batch
            state = map_state(lambda s: s.float(), state)
            nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), Y.reshape(-1), reduction="sum")
            total_nll = total_nll + nll
            tokens += Y.numel()
        self._update(total_nll / tokens, tokens)
        p["train_seconds"] += time.perf_counter() - started
        return "done"

    def _update(self, loss: torch.Tensor, tokens: int) -> None:
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
        max_norm = self.config.clip if self.config.clip is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.totals.add(loss.detach(), grad_norm.detach(), tokens)
        p["step"] += 1
        p["train_tokens"] += tokens
        if self.device.type == "cpu" or p["step"] % CHECK_EVERY_ACCELERATED == 0:
            self._check_totals()
        if self.config.lr_schedule == "cosine":
            self._set_lr(self.config.lr * cosine_lr_factor(self._budget_fraction()))
        self.optimizer.step()

    def _budget_fraction(self) -> float:
        """How much of the run's budget is spent (0..1): the tightest of epochs, steps and time.

        Epochs and steps count from the start of the run (so a resumed run continues the
        same schedule exactly); a time budget is per invocation, as ``--max-time`` is.
        """
        p, config = self.progress, self.config
        total_epochs, budget, fit_started = self._budget  # set by fit(), the only caller of _update
        fractions = [0.0]
        if total_epochs < UNLIMITED_EPOCHS:
            fractions.append((p["epoch"] + p["batch_in_epoch"] / max(len(self.loader), 1)) / total_epochs)
        if config.max_steps:
            fractions.append(p["step"] / config.max_steps)
        if budget:
            fractions.append((time.perf_counter() - fit_started) / budget)
        return min(1.0, max(fractions))

    def _check_totals(self) -> None:
        """Move the device totals into the (JSON) progress counters; stop on NaN/inf."""
        p = self.progress
        nll, grad_sum, grad_max, tokens, count = self.totals.drain()
        if not (math.isfinite(nll) and math.isfinite(grad_sum)):
            what = "loss" if not math.isfinite(nll) else "gradient norm"
            p["step"] -= 1  # the update was not (CPU) or should not have been applied
            raise TrainingError(self._diverged(what, nll if what == "loss" else grad_sum, count))
        p["epoch_nll"] += nll
        p["epoch_tokens"] += tokens
        p["grad_norm_sum"] = p.get("grad_norm_sum", 0.0) + grad_sum
        p["grad_norm_max"] = max(p.get("grad_norm_max", 0.0), grad_max)
        p["grad_norm_count"] = p.get("grad_norm_count", 0) + count

    def _diverged(self, what: str, value: float, steps: int = 1) -> str:
        p = self.progress
        kept = f"; the last good checkpoint in {self.out_dir} is kept" if self.out_dir else ""
        when = f"at step {p['step'] + 1}" if steps <= 1 else f"within steps {p['step'] + 2 - steps}-{p['step'] + 1}"
        return f"{what} became {value} {when} (epoch {p['epoch'] + 1}){kept}; lower --lr or set --clip"

    # ------------------------------------------------------------------------------
    def _evaluate_and_log(self, check_plateau: bool = True) -> bool:
        """Evaluate, log a record, checkpoint, adjust lr; True when early stopping triggers."""
        config, p = self.config, self.progress
        self._check_totals()
        val = evaluate(self.model, self.dataset.val) if len(self.dataset.val) > 1 else None
        train_ppl = perplexity(p["epoch_nll"], p["epoch_tokens"])  # inf, not an OverflowError, for a huge loss
        grad_count = p.get("grad_norm_count", 0)
        record = {
            "epoch": p["epoch"] + (p["batch_in_epoch"] / max(len(self.loader), 1) if p["batch_in_epoch"] else 0),
            "step": p["step"], "train_perplexity": train_ppl,
            "val_perplexity": val["perplexity"] if val else None,
            "val_bits_per_token": val["bits_per_token"] if val else None,
            "tokens_per_second": p["train_tokens"] / p["train_seconds"] if p["train_seconds"] else None,
            "grad_norm_mean": p.get("grad_norm_sum", 0.0) / grad_count if grad_count else None,
            "grad_norm_max": p.get("grad_norm_max") if grad_count else None,
            "lr": p["lr"], "seconds": round(p["train_seconds"], 3),
        }
        if config.sample_length:
            prefix = config.sample_prefix or self._default_prefix()
            record["sample"] = self.language_model.generate(prefix, config.sample_length, greedy=True)
            self.model.train()
        p["history"].append(record)
        p["epoch_nll"], p["epoch_tokens"] = 0.0, 0
        p["grad_norm_sum"], p["grad_norm_max"], p["grad_norm_count"] = 0.0, 0.0, 0
        stop = improved = False
        if val is not None:
            best = p["best_val_perplexity"]
            improved = best is None or val["perplexity"] < best
            if improved:
                p["best_val_perplexity"] = val["perplexity"]
            if check_plateau:
                # Scheduled evaluations only: the extra one when a run stops early (max_time,
                # max_steps) must not shift the schedule of a resumed run.
                reference = p.get("plateau_best")
                if reference is None or val["perplexity"] < reference * (1 - MIN_IMPROVEMENT):
                    p["plateau_best"] = val["perplexity"]
                    p["evals_without_improvement"] = 0
                else:
                    p["evals_without_improvement"] += 1
                    if config.lr_schedule == "plateau" and config.lr_decay \
                            and p["evals_without_improvement"] % config.lr_patience == 0:
                        self._set_lr(p["lr"] * config.lr_decay)
                    if config.early_stop and p["evals_without_improvement"] >= config.early_stop:
                        stop = True
        logger.info(_format_record(record))
        self.save()
        if improved:
            self.save(best=True)
        self._write_logs(record)
        for callback in self.callbacks:
            try:
                callback(record)
            except StopTraining:
                stop = True
        if stop:
            p["stopped"] = "early_stop"
        return stop

    def _default_prefix(self) -> str:
        from rnnlab.data.text import detokenize
        tokens = self.dataset.vocab.to_tokens(self.dataset.train[:8].tolist())
        return detokenize(tokens, self.dataset.token)

    def _write_logs(self, record: dict) -> None:
        if self.out_dir is None:
            return
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(dumps(record) + "\n")  # NaN/inf as null: every line is standard JSON
        history = self.progress["history"]
        if len(history) >= 2:
            from rnnlab.plots import curves_plot
            series = {"train": [h["train_perplexity"] for h in history]}
            if history[-1]["val_perplexity"] is not None:
                series["validation"] = [h["val_perplexity"] for h in history]
            curves_plot([h["epoch"] for h in history], series, self.out_dir / "perplexity.png",
                        xlabel="epoch", ylabel="perplexity", title=f"{self.config.model} on {self.data_info.get('corpus')}")

    # ------------------------------------------------------------------------------
    def summary(self) -> dict:
        p = self.progress
        last = p["history"][-1] if p["history"] else {}
        baseline = unigram_result(self.dataset.train, self.dataset.val, len(self.dataset.vocab)) \
            if len(self.dataset.val) > 1 else None
        ngram = self._ngram_baseline() if baseline else None
        return {
            "model": self.config.model, "parameters": self.model.num_parameters(),
            "train_perplexity": last.get("train_perplexity"), "val_perplexity": last.get("val_perplexity"),
            "val_bits_per_token": last.get("val_bits_per_token"),
            "best_val_perplexity": p["best_val_perplexity"],
            "unigram_val_perplexity": baseline["perplexity"] if baseline else None,
            "ngram_val_perplexity": ngram["perplexity"] if ngram else None,
            "ngram_order": ngram["order"] if ngram else None,
            "tokens_per_second": last.get("tokens_per_second"),
            "epochs": p["epoch"] + (p["batch_in_epoch"] / max(len(self.loader), 1)),
            "steps": p["step"], "seconds": round(p["train_seconds"], 3),
            "wall_seconds": round(p.get("wall_seconds", 0.0), 3), "precision": self.precision, "stopped": p["stopped"],
            "sample": last.get("sample"), "device": str(self.device), "threads": torch.get_num_threads(),
            "train_tokens": len(self.dataset.train), "val_tokens": len(self.dataset.val),
            "vocab_size": len(self.dataset.vocab), "out": str(self.out_dir) if self.out_dir else None,
        }


    def _ngram_baseline(self) -> dict:
        """Interpolated Kneser-Ney on the same split: the reference the RNN should beat
        (order 5 for characters and bytes, 3 for words)."""
        if getattr(self, "_ngram", None) is None:
            from rnnlab.ngram import baseline
            order = 3 if self.dataset.token == "word" else 5
            self._ngram = baseline(self.dataset, order=order, smoothing="kn")
        return self._ngram


def _format_record(record: dict) -> str:
    def num(value, fmt):
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)
    line = (f"epoch {num(record['epoch'], '.4g')} step {record['step']}: train ppl {num(record['train_perplexity'], '.3f')}"
            f" | val ppl {num(record['val_perplexity'], '.3f')} ({num(record['val_bits_per_token'], '.3f')} bits/token)"
            f" | {num(record['tokens_per_second'], ',.0f')} tok/s | grad norm {num(record['grad_norm_mean'], '.3g')}"
            f" (max {num(record['grad_norm_max'], '.3g')}) | lr {num(record['lr'], '.3g')}")
    if record.get("sample") is not None:
        line += f"\n  sample: {record['sample']!r}"
    return line
