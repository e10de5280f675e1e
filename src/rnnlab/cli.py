"""Command-line interface: parses arguments, calls the library, prints results.

Conventions for every command:
* ``--json``: one JSON object on the last line of stdout (human text goes before it
  or to stderr);
* errors: ``error: <one line>`` on stderr, exit 2 for usage mistakes, 1 for data
  and runtime problems (see :mod:`rnnlab.errors`).
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from rnnlab.errors import RnnlabError

# ----------------------------------------------------------------------------------
# shared helpers


def emit(result: dict, as_json: bool) -> None:
    """Print ``result`` as the last stdout line when ``--json`` was given."""
    if as_json:
        print(json.dumps(result, ensure_ascii=False, default=_json_default))


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: float):
    """JSON has no NaN/inf: map them to null."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def add_corpus_options(parser: argparse.ArgumentParser, mode_default: str = "raw") -> None:
    from rnnlab.data.corpus import DEFAULT_CORPUS
    group = parser.add_argument_group("corpus")
    group.add_argument("--corpus", default=None, metavar="NAME_OR_PATH",
                       help=f"'pydoc' (built-in, default: {DEFAULT_CORPUS}), 'timemachine', a UTF-8 file, a folder or a glob")
    group.add_argument("--data-dir", default=None, help="folder holding downloaded corpora (default: $RNNLAB_DATA, then the user cache)")
    group.add_argument("--encoding-errors", default="strict", help="strict (default), replace or ignore undecodable bytes")
    group.add_argument("--mode", default=mode_default, help=f"preprocessing: d2l or raw (default {mode_default})")
    group.add_argument("--token", default="char", help="tokenizer: char, word or byte (default char)")


def load_corpus_from_args(args):
    from rnnlab.data.corpus import load_corpus
    return load_corpus(args.corpus, data_dir=args.data_dir, encoding_errors=args.encoding_errors)


# ----------------------------------------------------------------------------------
# rnnlab corpus stats


def cmd_corpus_stats(args) -> int:
    from rnnlab.data.dataset import prepare_text
    from rnnlab.data.stats import corpus_stats

    corpus = load_corpus_from_args(args)
    data = prepare_text(corpus, mode=args.mode, token=args.token, split="d2l")
    stats = corpus_stats(data.train, data.vocab, orders=(1, 2, 3), top_k=args.top)
    if args.plot:
        from rnnlab.plots import zipf_plot
        zipf_plot({n: s.counts for n, s in stats.items()}, args.plot,
                  title=f"{corpus.name}: {args.token} n-grams ({args.mode})")
    result = {
        "corpus": corpus.name, "mode": args.mode, "token": args.token,
        "characters": len(corpus.text), "num_tokens": int(len(data.train)), "vocab_size": len(data.vocab),
        "top_unigrams": stats[1].top, "top_bigrams": stats[2].top, "top_trigrams": stats[3].top,
        "distinct_ngrams": {str(n): s.distinct for n, s in stats.items()},
        "zipf_alpha": {str(n): _finite(round(s.zipf_alpha, 4)) for n, s in stats.items()},
        "plot": args.plot,
    }
    if not args.json:
        print(f"corpus      {corpus.name} ({len(corpus.text):,} characters; {', '.join(corpus.sources)})")
        print(f"tokens      {result['num_tokens']:,} {args.token} tokens after {args.mode} preprocessing")
        print(f"vocabulary  {result['vocab_size']:,} entries including <unk>")
        for n, name in ((1, "unigrams"), (2, "bigrams"), (3, "trigrams")):
            s = stats[n]
            top = ", ".join(f"{shown(tok)} {k}" for tok, k in s.top)
            print(f"{name:<9}   {s.distinct:,} distinct, zipf alpha {s.zipf_alpha:.3f}; top: {top}")
        if args.plot:
            print(f"plot        {args.plot}")
    emit(result, args.json)
    return 0


def shown(token: str) -> str:
    """A token as a reader can see it (spaces and newlines made visible)."""
    return token.replace(" ", "␣").replace("\n", "⏎")


# ----------------------------------------------------------------------------------
# rnnlab demo


def cmd_demo(args) -> int:
    args.corpus, args.data_dir, args.encoding_errors = None, None, "strict"
    args.mode, args.token, args.top, args.plot = "raw", "char", 10, None
    return cmd_corpus_stats(args)


# ----------------------------------------------------------------------------------
# rnnlab train / eval / generate  (language models; see rnnlab.training, rnnlab.generation)
# [lm-commands]

# ----------------------------------------------------------------------------------
# rnnlab ngram train / eval / generate  (see rnnlab.ngram)
# [ngram-commands]

# ----------------------------------------------------------------------------------
# rnnlab forecast  (see rnnlab.forecasting)
# [forecast-commands]

# ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description="Recurrent sequence models from d2l's RNN chapter.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__import__('rnnlab').__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or log lines on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    corpus = commands.add_parser("corpus", help="corpus statistics").add_subparsers(dest="corpus_command", metavar="SUBCOMMAND")
    stats = corpus.add_parser("stats", help="token counts, top n-grams and Zipf exponents")
    add_corpus_options(stats, mode_default="d2l")
    stats.add_argument("--top", type=int, default=10, help="how many top n-grams to list (default 10)")
    stats.add_argument("--plot", default=None, metavar="FILE.png", help="write the log-log frequency plot")
    stats.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    stats.set_defaults(handler=cmd_corpus_stats)

    demo = commands.add_parser("demo", help="the quick-start job on the built-in corpus (offline)")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=cmd_demo)

    # [lm-parsers]
    # [ngram-parsers]
    # [forecast-parsers]
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    from rnnlab.progress import configure_logging
    configure_logging(verbose=not args.quiet)
    try:
        return int(args.handler(args) or 0)
    except RnnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
