"""Helpers shared by the command families: ``--json`` output, output-file checks, number
formatting, the corpus option group and plain-text tables."""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import MISSING, fields

from rnnlab.data.corpus import DEFAULT_CORPUS, load_corpus
from rnnlab.fileio import prepare_output_file
from rnnlab.jsonout import dumps
from rnnlab.plots import check_figure_format


def emit(result: dict, as_json: bool) -> None:
    """Print ``result`` as the last stdout line when ``--json`` was given (standard JSON:
    NaN and infinities become null at any depth, see :mod:`rnnlab.jsonout`)."""
    if as_json:
        print(dumps(result))


def help_handler(parser: argparse.ArgumentParser):
    """The handler of a command family run without a subcommand: its help on stderr, exit 2."""
    return lambda args: (parser.print_help(sys.stderr), 2)[1]


def add_overwrite_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} left by an earlier run (only rnnlab's own files are removed; "
                             "a folder holding other files is always refused)")


def output_file(path: str | None, option: str, overwrite: bool, figure: bool = False):
    """Check an output file before the work starts (see rnnlab.fileio.prepare_output_file)."""
    if path is None:
        return None
    checked = str(prepare_output_file(path, option, overwrite))
    if figure:
        check_figure_format(path, option)
    return checked


def finite(value: float):
    """JSON has no NaN/inf: map them to null."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def fmt(value, spec: str) -> str:
    """``value`` formatted with ``spec``; ``-`` for None, NaN and infinities."""
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def shown(token: str) -> str:
    """A token as a reader can see it (spaces and newlines made visible)."""
    return token.replace(" ", "␣").replace("\n", "⏎")


def aligned_table(rows: list[list[str]]) -> list[str]:
    """Rows as aligned text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths)))
            for row in rows]


def add_corpus_options(parser: argparse.ArgumentParser, mode_default: str | None = "raw",
                       token_default: str | None = "char", held_out: bool = False, vocab_size: bool = False) -> None:
    group = parser.add_argument_group("corpus")
    group.add_argument("--corpus", default=None, metavar="NAME_OR_PATH",
                       help=f"'pydoc' (built-in, default: {DEFAULT_CORPUS}), 'timemachine', a UTF-8 file, a folder or a glob; "
                            "a folder with train/valid/test files gives those three splits")
    if held_out:
        group.add_argument("--val", dest="val_corpus", default=None, metavar="FILE",
                           help="validation text file; the whole --corpus then trains (no --split)")
        group.add_argument("--test", dest="test_corpus", default=None, metavar="FILE",
                           help="test text file (default with --val: no test split)")
    group.add_argument("--data-dir", default=None, help="folder holding downloaded corpora (default: $RNNLAB_DATA, then the user cache)")
    group.add_argument("--encoding-errors", default="strict" if mode_default else None,
                       help="strict (default), replace or ignore undecodable bytes")
    group.add_argument("--mode", default=mode_default, help=f"preprocessing: d2l or raw (default {mode_default or 'raw'})")
    group.add_argument("--token", default=token_default,
                       help=f"tokenizer: char, word, byte, bpe or unigram (byte-level subwords learnt from the training "
                            f"split) (default {token_default or 'char'})")
    if vocab_size:  # rnnlab train has it from its DataOptions
        group.add_argument("--vocab-size", type=int, default=None, metavar="N",
                           help="bpe/unigram tokens: subword vocabulary size, the 256 byte symbols included (default 1000)")


def load_corpus_from_args(args):
    return load_corpus(args.corpus, data_dir=args.data_dir, encoding_errors=args.encoding_errors,
                       val=getattr(args, "val_corpus", None), test=getattr(args, "test_corpus", None))


_TYPES = {"int": int, "float": float, "str": str}


class NoteGiven(argparse.Action):
    """argparse's ``store`` (with ``nargs=0``: ``store_true``) that also notes the option in
    ``namespace.given`` (dest -> the flag as typed): what the user gave, as opposed to a
    default, which a resumed run compares with the saved run's values."""

    def __init__(self, option_strings, dest, nargs=None, const=None, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=nargs, const=True if nargs == 0 else const, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = {**getattr(namespace, "given", {}), self.dest: option_string}


def add_config_options(group, section, defaults_given: bool = True, skip: tuple = (), aliases: dict | None = None,
                       defaults: dict | None = None, unset: tuple = (), note_given: bool = False) -> list[str]:
    """One ``--option`` per documented field of the options dataclass ``section`` (see
    :func:`rnnlab.training.config.option`): flag, type, help and default come from the
    field, so an option is written once, in the config. Returns the dests added.

    ``defaults_given=False`` gives every option the default None (the command then knows
    what the user gave, as ``rnnlab train`` must for presets and ``--resume``); the help
    still names the field's default; ``unset`` does the same for some options only.
    ``aliases`` maps a dest to extra flags, ``defaults`` a dest to the command's own default;
    ``note_given``: the options the user gives are noted in ``args.given`` (:class:`NoteGiven`).
    """
    dests = []
    for spec in fields(section):
        meta = spec.metadata
        if not meta.get("help") or spec.name in skip:
            continue
        flags = [meta.get("flag") or "--" + spec.name.replace("_", "-"), *(aliases or {}).get(spec.name, ())]
        default = (defaults or {}).get(spec.name, spec.default if spec.default is not MISSING else None)
        kind = str(spec.type).split(" ")[0]
        shown = "" if default is None or kind == "bool" else f" (default {default})"
        choices = f"; one of {', '.join(meta['choices'])}" if meta.get("choices") else ""
        help_text = f"{meta['help']}{choices}{shown}"
        value = default if defaults_given and spec.name not in unset else None
        if kind == "bool":
            group.add_argument(*flags, dest=spec.name, default=value, help=help_text,
                               **({"action": NoteGiven, "nargs": 0} if note_given else {"action": "store_true"}))
        else:
            group.add_argument(*flags, dest=spec.name, type=_TYPES[kind], default=value, metavar=meta.get("metavar"),
                               help=help_text, **({"action": NoteGiven} if note_given else {}))
        dests.append(spec.name)
    return dests


def flag_of(section, dest: str) -> str:
    """The command-line flag of a config field (for messages naming it)."""
    for spec in fields(section):
        if spec.name == dest:
            return spec.metadata.get("flag") or "--" + dest.replace("_", "-")
    return "--" + dest.replace("_", "-")
