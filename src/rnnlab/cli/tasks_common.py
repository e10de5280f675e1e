"""What the task command families (``classify``, ``tag``) share: the data/run-folder options,
the training option group, starting or resuming a run, the held-out split and the summary
lines (the work is done by :mod:`rnnlab.tasks` and :mod:`rnnlab.data.labelled`)."""
from __future__ import annotations

import argparse
import random
from dataclasses import fields, replace

from rnnlab.checkpoint import prepare_output_folder
from rnnlab.cli.common import NoteGiven, add_config_options, emit
from rnnlab.errors import UsageError
from rnnlab.tasks.base import load_task
from rnnlab.tasks.loop import FitOptions, resume_options
from rnnlab.training.config import UNLIMITED_EPOCHS
from rnnlab.training.state import RESUMABLE

VAL_FRACTION = 0.1  # held out of --data for early stopping when no --val file is given


def add_fit_options(parser: argparse.ArgumentParser, batch_size: int, lr: float, dropout: float,
                    max_len: int) -> None:
    """The training option group shared by the task families (classify train, tag train): the
    loop's options come from :class:`rnnlab.tasks.loop.FitOptions` (as ``rnnlab train``'s from
    its config); the defaults that differ between tasks are arguments."""
    group = parser.add_argument_group("training")
    add_config_options(group, FitOptions, skip=("eval_every", "eval_every_steps"),
                       aliases={"early_stop": ("--patience",)}, defaults={"batch_size": batch_size, "lr": lr},
                       unset=("device", "precision", "epochs"),  # a resumed run keeps its own unless they are given
                       note_given=True)
    group.add_argument("--dropout", type=float, default=dropout, action=NoteGiven, help=f"dropout (default {dropout})")
    group.add_argument("--hidden-size", type=int, default=128, action=NoteGiven,
                       help="recurrent units per direction (default 128)")
    group.add_argument("--embed-size", type=int, default=100, action=NoteGiven, help="word embedding size (default 100)")
    group.add_argument("--layers", type=int, default=1, action=NoteGiven, help="stacked recurrent layers (default 1)")
    group.add_argument("--max-len", type=int, default=max_len,
                       help=f"refuse a sequence of more tokens than this (default {max_len})")
    group.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                       help=f"without --val, hold out this fraction of --data for early stopping (default "
                            f"{VAL_FRACTION}; 0: none, the best epoch is then the last)")


def add_run_options(parser: argparse.ArgumentParser, data_help: str) -> None:
    """``--data``, ``--val``, ``--out`` and ``--resume`` of a task's ``train`` subcommand."""
    parser.add_argument("--data", required=True, help=data_help)
    parser.add_argument("--val", default=None, help="validation file (early stopping, best checkpoint)")
    parser.add_argument("--out", default=None, help="output folder (the checkpoint, metrics.jsonl)")
    parser.add_argument("--resume", default=None, metavar="DIR",
                        help="continue the run in DIR exactly where it stopped (give the same --data/--val; "
                             "--epochs and --max-time may change, the other options are the saved run's)")


def _fit_options(args):
    given = {f.name: getattr(args, f.name, None) for f in fields(FitOptions)}
    if given.get("max_time") is not None and given.get("epochs") is None:
        given["epochs"] = UNLIMITED_EPOCHS  # a time budget alone is spent, as rnnlab train spends it
    return FitOptions(**{name: value for name, value in given.items() if value is not None})


def check_network_flags(args, task_class) -> None:
    """Each network option given on the command line within its range (the network's
    registry, ``task_class.network_options``), the error naming the flag as typed."""
    specs = {spec.name: spec for spec in task_class.network_options}
    for dest, flag in sorted(getattr(args, "given", {}).items()):
        spec = specs.get(_NETWORK.get(dest))
        if spec is not None and not spec.accepts(getattr(args, dest)):
            raise UsageError(f"{flag} must be {spec.expected()}, got {getattr(args, dest)!r:.60}")


def start_or_resume(args, task_class):
    """(output folder, task and model if resuming else None, FitOptions) before any data is read."""
    check_network_flags(args, task_class)
    if args.resume is None:
        if args.out is None:
            raise UsageError("give --out DIR (a new run) or --resume DIR (continue one)")
        return prepare_output_folder(args.out, task_class.kind, overwrite=args.overwrite), None, \
            _fit_options(args).validate()
    if args.out is not None and args.out != args.resume:
        raise UsageError("--resume continues the run in its own folder; leave out --out")
    options = resume_options(args.resume, task_class.kind, epochs=args.epochs, max_time=args.max_time,
                             max_steps=args.max_steps, device=args.device, precision=args.precision)
    task, model, _ = load_task(args.resume, task_class)
    _refuse_changed_options(args, options, task, model.config())
    args.seed = options.seed  # the held-out split of --data must be the one of the first run
    return args.resume, (task, model), options


# The network option each model flag of `classify train` / `tag train` sets (by dest).
_NETWORK = {"hidden_size": "hidden_size", "embed_size": "embed_size", "layers": "num_layers", "dropout": "dropout",
            "cell": "cell", "pooling": "pooling", "char_size": "char_embed_size", "crf": "crf"}
# What a saved run says about each model or task option (by dest), from its task and its
# network's config; the loop's options come from FitOptions.
_SAVED = {**{dest: (lambda task, net, key=key: net[key]) for dest, key in _NETWORK.items()},
          "unidirectional": lambda task, net: not net["bidirectional"], "tokens": lambda task, net: task.tokens,
          "keep_case": lambda task, net: not task.lowercase, "metric": lambda task, net: task.metric[0],
          "frames": lambda task, net: net["input_size"] > 0}


def _refuse_changed_options(args, options, task, network: dict) -> None:
    """Refuse a model or training option given with ``--resume`` that differs from the saved
    run's (the rule of ``rnnlab train --resume``; the same value may be repeated). The data
    is compared by the loop (the examples' checksums in the checkpoint)."""

    for dest, flag in sorted(getattr(args, "given", {}).items()):
        if dest in RESUMABLE:
            continue
        value = typed_value = getattr(args, dest)
        if dest in _SAVED:
            saved = _SAVED[dest](task, network)
        else:  # a loop option, compared as the options hold it (--patience 0 is early_stop None)
            value, saved = getattr(replace(options, **{dest: value}).validate(), dest), getattr(options, dest)
        if value != saved:
            typed = flag if isinstance(typed_value, bool) else f"{flag} {typed_value}"
            shown = ("it was given" if saved else "it was not given") if isinstance(saved, bool) else repr(saved)
            raise UsageError(f"--resume continues the saved run: {typed} differs from it ({shown} there); only "
                             "--epochs, --max-time, --max-steps, --device and --precision may change")


def hold_out(examples: list, fraction: float, seed: int) -> tuple[list, list | None]:
    if not 0 <= fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {fraction}")
    count = int(len(examples) * fraction)
    if count == 0:
        return examples, None
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def report_training(summary: dict, what: str, scores_line: str, out, as_json: bool) -> None:
    """Print what a task's ``train`` did (:func:`train_lines`, then ``scores_line`` and the
    checkpoint folder), or with ``as_json`` the summary as JSON."""
    if not as_json:
        for line in train_lines(summary, what) + [f"scores     {scores_line}", f"checkpoint {out}"]:
            print(line)
    emit(summary, as_json)


def train_lines(summary: dict, what: str) -> list[str]:
    rate = summary["train_examples_per_second"]
    return [f"model      {what} ({summary['parameters']:,} parameters, {summary['threads']} threads)",
            f"trained    {summary['epochs']:.4g} epochs, {summary['steps']:,} steps in {summary['train_seconds']:.1f} s "
            f"({rate:,.0f} sequences/s); stopped by {summary['stopped']}; best epoch {summary['best_epoch']:.4g}",
            f"best       {summary['validated_on']} {summary['metric']} {summary['best']:.4f}"]
