"""``rnnlab corpus prepare``: stream a corpus into memory-mapped token shards (see rnnlab.data.prepare).

Registered on ``rnnlab corpus`` by :func:`add_prepare_command`, called from
:func:`rnnlab.cli.corpus.add_parser`.
"""
from __future__ import annotations

from rnnlab.cli.common import add_overwrite_option, emit


def cmd_corpus_prepare(args) -> int:
    from rnnlab.data.prepare import prepare_corpus

    result = prepare_corpus(args.corpus, args.out, mode=args.mode, token=args.token, vocab_from=args.vocab,
                            split=args.split, min_freq=args.min_freq, encoding_errors=args.encoding_errors,
                            overwrite=args.overwrite, data_dir=args.data_dir)
    if not args.json:
        splits = ", ".join(f"{s} {result[f'{s}_tokens']:,}" for s in ("train", "val", "test"))
        if result["reused"]:
            print(f"up to date  {result['out']} (the input and options are unchanged; nothing rewritten)")
        else:
            print(f"prepared    {result['out']} from {args.corpus}"
                  + (f" (rebuilt: {result['rebuilt']})" if result["rebuilt"] else ""))
        print(f"tokens      {result['num_tokens']:,} {result['token']} tokens ({result['mode']}): {splits}")
        print(f"vocabulary  {result['vocab_size']:,} entries, stored as {result['dtype']}")
        if not result["reused"]:
            print(f"read        {result['input_bytes'] / 1e6:,.1f} MB in {result['seconds']:.1f} s "
                  f"({result['mb_per_s']} MB/s)")
        print(f"use it      --corpus {result['out']}")
    emit(result, args.json)
    return 0


def add_prepare_command(corpus_subparsers) -> None:
    """Add ``prepare`` to the subparsers of ``rnnlab corpus``."""
    prepare = corpus_subparsers.add_parser(
        "prepare", help="stream a corpus of any size into memory-mapped token shards for --corpus DIR")
    prepare.add_argument("--corpus", required=True, metavar="PATH",
                         help="a UTF-8 file, a folder (a folder with train/valid/test files keeps those splits), "
                              "a glob, or timemachine")
    prepare.add_argument("--out", required=True, metavar="DIR", help="the prepared folder to write (or reuse)")
    prepare.add_argument("--mode", default="raw", help="preprocessing: raw (default) or d2l")
    prepare.add_argument("--token", default="char", help="tokenizer: char (default), word or byte")
    prepare.add_argument("--vocab", default=None, metavar="FROM_DIR",
                         help="encode with the vocabulary of an earlier prepared folder (same --mode/--token)")
    prepare.add_argument("--split", default="0.9,0.05,0.05",
                         help="train,val,test fractions (default 0.9,0.05,0.05) or d2l (all trains)")
    prepare.add_argument("--min-freq", type=int, default=0, help="drop tokens rarer than this from the vocabulary")
    prepare.add_argument("--encoding-errors", default="strict", help="strict (default), replace or ignore")
    prepare.add_argument("--data-dir", default=None, help="folder holding downloaded corpora (for timemachine)")
    add_overwrite_option(prepare, "a prepared folder made with other options")
    prepare.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    prepare.set_defaults(handler=cmd_corpus_prepare)
