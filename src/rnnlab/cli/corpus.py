"""``rnnlab corpus``: corpus statistics (see rnnlab.data.stats) and preparation of large corpora
(see rnnlab.data.prepare)."""
from __future__ import annotations

from rnnlab.cli.common import (add_corpus_options, add_overwrite_option, emit, finite, help_handler,
                               load_corpus_from_args, output_file, shown)
from rnnlab.data.corpus import PreparedCorpus
from rnnlab.data.dataset import DEFAULT_SPLIT, prepare_text, verify_prepared
from rnnlab.data.stats import corpus_stats
from rnnlab.errors import UsageError
from rnnlab.plots import zipf_plot


def cmd_corpus_stats(args) -> int:
    if args.top < 0:
        raise UsageError(f"--top must be >= 0, got {args.top}")
    output_file(args.plot, "--plot", args.overwrite, figure=True)
    corpus = load_corpus_from_args(args)
    # Both splits put the whole (training) text in data.train; a split folder needs "files"; a
    # prepared folder keeps its own split (the default means "not given"): its training split.
    split = ("files" if corpus.val is not None or corpus.test is not None else
             DEFAULT_SPLIT if isinstance(corpus, PreparedCorpus) else "d2l")
    data = prepare_text(corpus, mode=args.mode, token=args.token, split=split, vocab_size=args.vocab_size)
    stats = corpus_stats(data.train, data.vocab, orders=(1, 2, 3), top_k=args.top)
    if args.plot:
        zipf_plot({n: s.counts for n, s in stats.items()}, args.plot,
                  title=f"{corpus.name}: {args.token} n-grams ({args.mode})")
    result = {
        "corpus": corpus.name, "mode": args.mode, "token": args.token,
        # a prepared folder holds ids, not its text: its characters are not known here
        "characters": None if isinstance(corpus, PreparedCorpus) else len(corpus.text),
        "num_tokens": int(len(data.train)), "vocab_size": len(data.vocab),
        "top_unigrams": stats[1].top, "top_bigrams": stats[2].top, "top_trigrams": stats[3].top,
        "distinct_ngrams": {str(n): s.distinct for n, s in stats.items()},
        "zipf_alpha": {str(n): finite(round(s.zipf_alpha, 4)) for n, s in stats.items()},
        "plot": args.plot,
    }
    if not args.json:
        size = "a prepared folder" if result["characters"] is None else f"{result['characters']:,} characters"
        print(f"corpus      {corpus.name} ({size}; {', '.join(corpus.sources)})")
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


def cmd_corpus_prepare(args) -> int:
    from rnnlab.data.prepare import prepare_corpus  # lazy: keeps rnnlab --help from loading rnnlab.data.prepare

    result = prepare_corpus(args.corpus, args.out, mode=args.mode, token=args.token, vocab_from=args.vocab,
                            split=args.split, min_freq=args.min_freq, encoding_errors=args.encoding_errors,
                            overwrite=args.overwrite, data_dir=args.data_dir, vocab_size=args.vocab_size)
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


def cmd_corpus_verify(args) -> int:
    result = verify_prepared(args.folder)
    if not args.json:
        print(f"verified    {result['folder']}: {result['shards']} shard(s), {result['num_tokens']:,} tokens, "
              f"{result['bytes'] / 1e6:,.1f} MB (sizes and SHA-256 match manifest.json) in {result['seconds']:.1f} s")
    emit(result, args.json)
    return 0


def add_parser(commands) -> None:
    """Register ``rnnlab corpus`` and its subcommands on the main parser's subparsers."""
    corpus_parser = commands.add_parser("corpus", help="corpus statistics and preparation")
    corpus_parser.set_defaults(handler=help_handler(corpus_parser))  # no subcommand
    corpus = corpus_parser.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND")
    stats = corpus.add_parser("stats", help="token counts, top n-grams and Zipf exponents")
    add_corpus_options(stats, mode_default="d2l", vocab_size=True)
    stats.add_argument("--top", type=int, default=10, help="how many top n-grams to list (default 10)")
    stats.add_argument("--plot", default=None, metavar="FILE.png", help="write the log-log frequency plot")
    add_overwrite_option(stats, "an existing --plot file")
    stats.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    stats.set_defaults(handler=cmd_corpus_stats)
    prepare = corpus.add_parser(
        "prepare", help="stream a corpus of any size into memory-mapped token shards for --corpus DIR")
    prepare.add_argument("--corpus", required=True, metavar="PATH",
                         help="a UTF-8 file, a folder (a folder with train/valid/test files keeps those splits), "
                              "a glob, or timemachine")
    prepare.add_argument("--out", required=True, metavar="DIR", help="the prepared folder to write (or reuse)")
    prepare.add_argument("--mode", default="raw", help="preprocessing: raw (default) or d2l")
    prepare.add_argument("--token", default="char", help="tokenizer: char (default), word, byte, bpe or unigram "
                         "(subwords learnt from the training split)")
    prepare.add_argument("--vocab-size", type=int, default=None, metavar="N",
                         help="bpe/unigram tokens: subword vocabulary size, the 256 byte symbols included "
                              "(default 1000)")
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
    verify = corpus.add_parser(
        "verify", help="check every shard of a prepared folder against its manifest (sizes and SHA-256)")
    verify.add_argument("folder", metavar="DIR", help="the prepared corpus folder")
    verify.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    verify.set_defaults(handler=cmd_corpus_verify)
