"""Classification and tagging on the one training loop (:mod:`rnnlab.training.loop`).

``fit(task, model, train, val, options, out_dir)`` wraps a task definition
(:class:`rnnlab.tasks.classify.ClassificationTask`, :class:`rnnlab.tasks.tag.TaggingTask`:
``batches(examples, batch_size, generator)``, ``loss(model, batch)``,
``evaluate(model, examples, batch_size)``, ``metric``, ``state()``) in
:class:`ExampleTask`, the loop's view of a task over lists of examples, and runs the
loop's :class:`~rnnlab.training.loop.Trainer`: the optimizer, clipping, mixed
precision, time budget, early stopping on the task's metric, checkpoints and exact
resume are the language model's.

Per epoch: steps over length-bucketed batches of the training examples (order a
function of ``(seed, epoch)``), then one evaluation on the validation examples. The
weights with the best validation metric are kept (in memory and in ``out_dir/best``)
and loaded into the model at the end; the latest checkpoint (``out_dir``) resumes.
Without validation examples the metric is measured on the training examples and
the last weights are kept.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from rnnlab.checkpoint import config_value, is_int, load_config, prepare_output_folder
from rnnlab.data.labelled import FeatureSequence
from rnnlab.errors import CheckpointError, DataError, UsageError
from rnnlab.progress import logger
from rnnlab.training.config import TRAIN_LIMITS, LoopOptions, option
from rnnlab.training.loop import Trainer
from rnnlab.training.state import Progress, resumed_options


@dataclass
class FitOptions(LoopOptions):
    """The loop's options with the defaults of the task commands (constant learning rate,
    float32, a looser clip) plus the batch size."""

    lr: float = option(1e-3, "learning rate")
    clip: float | None = option(5.0, "gradient-norm clipping threshold")
    adam_beta2: float = option(0.999, "Adam's and AdamW's beta2 (decay of the squared-gradient average)")
    lr_schedule: str = option("constant", "constant, cosine (warm-up, then down to 5%% of --lr over the budget) or "
                              "plateau (multiply by --lr-decay on a validation plateau)",
                              choices=("constant", "cosine", "plateau"))
    precision: str = option("fp32", "fp32, bf16 (bfloat16 products, float32 weights and loss) or auto: bf16 "
                            "where the CPU or GPU supports it natively", choices=("fp32", "bf16", "auto"))
    batch_size: int = option(32, "sequences per step")

    def validate(self) -> "FitOptions":
        super().validate()
        if not 1 <= self.batch_size <= TRAIN_LIMITS["batch_size"]:
            raise UsageError(f"--batch-size must be an integer from 1 to {TRAIN_LIMITS['batch_size']:,}, "
                             f"got {self.batch_size}")
        return self


def examples_digest(examples: list | None) -> str | None:
    """SHA-1 of what ``examples`` hold (texts, tokens, tags, labels, feature values and ids,
    in order; not their line numbers): the same for the same data read the same way, so a
    resumed run can tell that its data changed (None: no examples)."""

    if not examples:
        return None
    digest = hashlib.sha1()
    for example in examples:
        if isinstance(example, FeatureSequence):
            digest.update(f"{example.id}\x00{example.label}\x00{example.features.shape}\x00".encode("utf-8", "surrogatepass"))
            digest.update(example.features.astype("<f4", copy=False).tobytes())
        else:  # LabelledText (text, label) or TaggedSentence (tokens, tags): the fields but the line
            fields = [value for name, value in vars(example).items() if name != "line"]
            digest.update(repr(fields).encode("utf-8", "surrogatepass"))
        digest.update(b"\x01")
    return digest.hexdigest()


class ExampleTask:
    """The loop's view (:class:`rnnlab.training.loop.Task`) of a classification or tagging
    task over lists of ``train`` and ``val`` examples."""

    unit = "sequences"
    min_improvement = 0.0  # any gain of the metric resets early stopping (accuracy moves in steps of 1/examples)

    def __init__(self, task, train: list, val: list | None, options: FitOptions) -> None:
        self.task, self.train, self.val, self.options = task, train, val or None, options
        self.kind, self.metric = task.kind, tuple(task.metric)
        self.selects_best = self.val is not None  # else every evaluation (on train) is the best so far
        self._epoch_batches: tuple[int, list] | None = None
        # recorded in every checkpoint: resuming on other examples is refused (check_checkpoint)
        self.data = {"train_sha1": examples_digest(train), "train_examples": len(train),
                     "val_sha1": examples_digest(self.val), "val_examples": len(self.val or ())}

    def _batches(self, epoch: int) -> list:
        if self._epoch_batches is None or self._epoch_batches[0] != epoch:
            generator = torch.Generator().manual_seed((self.options.seed * 1_000_003 + epoch + 1) % 2**63)
            self._epoch_batches = (epoch, list(self.task.batches(self.train, self.options.batch_size, generator)))
        return self._epoch_batches[1]

    def num_batches(self, epoch: int) -> int:
        return len(self._batches(epoch))

    def batches(self, epoch: int):
        return iter(self._batches(epoch))

    def loss(self, model, batch: dict, carry, step: int):
        return self.task.loss(model, batch), batch["size"], None

    def evaluate(self, model) -> dict:
        return self.task.evaluate(model, self.val or self.train, self.options.batch_size)

    def record(self, train_loss: float, scores: dict | None, model) -> dict:
        """``train_loss`` (the mean over the steps since the last record), the metric and the
        evaluated loss: ``val_*``, or ``train_*`` and ``train_eval_loss`` without validation
        examples (the training examples scored in eval mode, beside the running loss)."""
        split, metric = ("val" if self.val else "train"), self.metric[0]
        return {"train_loss": train_loss, f"{split}_{metric}": scores[metric],
                ("val_loss" if self.val else "train_eval_loss"): scores["loss"]}

    def log_line(self, record: dict) -> str:
        scored = f"{'val' if self.val else 'train'}_{self.metric[0]}"
        return (f"epoch {record['epoch']:.4g} step {record['step']}  train loss {record['train_loss']:.4f}  "
                f"{scored.replace('_', ' ', 1)} {record[scored]:.4f}  ({record['seconds']:.1f} s)")

    def checkpoint_sections(self) -> dict:
        return {"task": self.task.state(), "data": self.data}

    def check_checkpoint(self, folder) -> dict:
        config = load_config(folder, kind=self.kind)
        for key in ("task", "model", "train_config", "progress"):
            config_value(config, key, folder, lambda v: isinstance(v, dict), "a JSON object")
        type(self.task).from_config(folder, config)  # every value of the task and its network, as load_task checks
        self._check_same_data(folder, config)
        return config

    def _check_same_data(self, folder, config: dict) -> None:
        """Refuse to resume on examples other than the run's (the rule of ``rnnlab train --resume``)."""
        if "data" not in config:
            logger.warning("%s records no checksum of its examples: cannot check that the data is unchanged", folder)
            return
        for role, what in (("train", "training"), ("val", "validation")):
            old = config_value(config, f"data.{role}_sha1", folder, lambda v: v is None or isinstance(v, str),
                               "a string or null")
            count = config_value(config, f"data.{role}_examples", folder, is_int(0), "an integer >= 0")
            new = self.data[f"{role}_sha1"]
            if new != old:
                raise DataError(f"the {what} examples differ from the {count:,} the run in {folder} was trained on "
                                f"({self.data[f'{role}_examples']:,} now, SHA-1 {new} != {old}); resuming would not "
                                "use the same data: give the same --data, --val, --val-fraction and column options")

    def carry_template(self, model):
        return None

    def summary(self, trainer: Trainer) -> dict:
        p = trainer.progress
        # The scores of the weights the run ends with (the best ones), measured now: a resumed
        # run that had nothing left to train must not report numbers read back from a file.
        return {"validated_on": "val" if self.val else "train", "scores": self.evaluate(trainer.model),
                "history": p.history,
                "train_seconds": p.train_seconds,
                "train_examples_per_second": p.items / p.train_seconds if p.train_seconds else None}


def resume_options(folder, kind: str, **changes) -> FitOptions:
    """The options of the task run saved in ``folder`` with ``changes`` (see
    :func:`rnnlab.training.state.resumed_options`, the rule of every resumed run)."""
    config = load_config(folder, kind=kind)
    where = str(Path(folder) / "config.json")
    saved = config.get("train_config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{where} has no training options ('train_config'): a run "
                              "written by an older rnnlab cannot be resumed; train it again")
    progress = Progress.from_dict(config.get("progress"), where)
    try:
        options = FitOptions.from_dict({**saved, "max_steps": None}).validate()
    except UsageError as exc:
        raise CheckpointError(f"{where}: key 'train_config' is not valid ({exc})") from None
    return resumed_options(options, progress, folder, **changes)


def fit(task, model: torch.nn.Module, train: list, val: list | None, options: FitOptions,
        out_dir: str | os.PathLike | None = None, overwrite: bool = False, resume: bool = False) -> dict:
    """Train ``model`` for ``task`` (see the module docstring); return the summary dict (JSON).

    ``out_dir`` goes through the output-folder check of every command
    (:func:`rnnlab.checkpoint.prepare_output_folder`; ``overwrite`` replaces an earlier run).
    ``resume=True`` continues the run saved in ``out_dir`` exactly where it stopped (the
    task and model come from :func:`rnnlab.tasks.base.load_task`; ``options`` may raise
    ``epochs`` and give a new ``max_time``, see :func:`resume_options`). Torch's CPU random
    state is seeded from ``options.seed`` (dropout) and restored for the caller afterwards.
    """
    options.validate()
    if resume and out_dir is None:
        raise UsageError("resuming needs the run's folder (out_dir)")
    if out_dir is not None:
        out_dir = prepare_output_folder(out_dir, task.kind, overwrite=overwrite, resume=resume)
    with torch.random.fork_rng(devices=[]):
        trainer = Trainer(ExampleTask(task, train, val, options), model, options,
                          out_dir=Path(out_dir) if out_dir is not None else None, keep_best=True)
        if resume:
            trainer.restore(out_dir)
        return trainer.fit()


__all__ = ["ExampleTask", "FitOptions", "fit", "examples_digest"]
