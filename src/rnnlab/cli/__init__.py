"""Command-line interface: parses arguments, calls the library, prints results.

One module per command family, each with ``add_parser(commands)`` (its parsers and
handlers) and its ``cmd_*`` functions: :mod:`~rnnlab.cli.corpus`, :mod:`~rnnlab.cli.lm`
(demo, train, eval, generate), :mod:`~rnnlab.cli.ngram`, :mod:`~rnnlab.cli.forecast`,
:mod:`~rnnlab.cli.reproduce`, :mod:`~rnnlab.cli.bench`, :mod:`~rnnlab.cli.classify` and
:mod:`~rnnlab.cli.tag`; shared helpers and option groups in :mod:`~rnnlab.cli.common` and
:mod:`~rnnlab.cli.tasks_common`. This module assembles the parser and maps errors to exit codes.

Conventions for every command:
* ``--json``: one JSON object on the last line of stdout (human text goes before it
  or to stderr);
* errors: ``error: <one line>`` on stderr, exit 2 for usage mistakes, 1 for data
  and runtime problems (see :mod:`rnnlab.errors`).

Under ``torchrun --nproc_per_node=N -m rnnlab train ...`` every process runs this
``main``; only rank 0 prints (its summary, log lines and ``error:`` line), the other
ranks exit with the same code in silence. ``train`` is the one command that runs
distributed (:mod:`rnnlab.training.distributed`).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
import time

import torch

from rnnlab.artifacts import forget_created_folders, remove_unused_folders
from rnnlab import checks
from rnnlab.checkpoint import load_config
from rnnlab.cli import bench, classify, corpus, export, forecast, lm, ngram, reproduce, tag
from rnnlab.cli import explore
from rnnlab.errors import RnnlabError, UsageError
from rnnlab.interrupts import stop_requested
from rnnlab.progress import configure_logging
from rnnlab.training import distributed
from rnnlab.training.distributed import from_environment, record_error

# Seconds a rank other than 0 of a torchrun launch waits before it exits on an error.
NON_MAIN_ERROR_GRACE = 1.0

# The command families in the order ``rnnlab --help`` lists them.
FAMILIES = (corpus, lm, export, ngram, forecast, reproduce, bench, classify, tag, explore)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description="Recurrent sequence models from d2l's RNN chapter.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__import__('rnnlab').__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or log lines on stderr")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for PyTorch (default: PyTorch's choice, one per core)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for family in FAMILIES:
        family.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        place = distributed.from_environment()
    except RnnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not place.is_main:  # one gate for the output of a distributed run: rank 0 speaks
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            return _main(argv, place)
    return _main(argv, place)


def _main(argv: list[str] | None, place) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    configure_logging(verbose=not args.quiet and place.is_main)
    forget_created_folders()
    previous = _handle_sigterm_as_interrupt()
    try:
        if place.enabled and args.command != "train":
            raise UsageError(f"rnnlab {args.command} runs in one process; of the commands only 'rnnlab train' runs "
                             f"under torchrun ({place.world_size} processes here)")
        if args.threads is not None:
            if not 1 <= args.threads <= 4096:
                raise UsageError(f"--threads must be an integer from 1 to 4096, got {args.threads}")
            torch.set_num_threads(args.threads)
        checks.seed_value(getattr(args, "seed", None), "--seed")  # NumPy and torch refuse bad seeds with a traceback
        return int(args.handler(args) or 0)
    except RnnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        remove_unused_folders()  # a refused command leaves no empty --out behind
        if place.enabled:
            record_error(exc)  # torchrun's report names it, whichever rank it came from
            if not place.is_main:
                # An error every rank meets (a bad option, the data) reaches rank 0 at about the
                # same moment: let it print before torchrun stops it because this rank ended.
                try:
                    time.sleep(NON_MAIN_ERROR_GRACE)
                except KeyboardInterrupt:  # torchrun's SIGTERM once rank 0 is done: exit as planned
                    pass
        return exc.exit_code
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"error: {'terminated (SIGTERM)' if terminated else 'interrupted'}{_resume_note(args)}", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that training saves its checkpoint before exiting."""


def _raise_terminated(signum, frame):
    stop_requested(Terminated)  # training defers it to the end of the step (rnnlab.interrupts)


def _handle_sigterm_as_interrupt():
    """Make SIGTERM (``kill``, a job scheduler's stop) behave like Ctrl-C; return the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers can only be set from the main thread
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _resume_note(args) -> str:
    """After an interrupted training run: where its checkpoint is and how to continue it."""
    folder = getattr(args, "interrupt_checkpoint", None)
    if not getattr(args, "saves_checkpoint", False):  # set by the parsers of train and demo
        return ""
    if folder is None:
        return " (no --out: nothing was saved)"
    try:
        step = load_config(folder).get("progress", {}).get("step")
    except RnnlabError:
        return f"; stopped before the first checkpoint, nothing to resume in {folder}"

    world = from_environment().world_size
    launcher = f"torchrun (the same {world} processes) -m " if world > 1 else ""
    return (f"; the run is saved in {folder} (step {step}): continue it with "
            f"{launcher}rnnlab train --resume {shlex.quote(str(folder))}")

