"""``rnnlab corpus``: corpus statistics (see rnnlab.data.stats)."""
from __future__ import annotations

from rnnlab.cli.common import (_finite, add_corpus_options, add_overwrite_option, emit, help_handler,
                               load_corpus_from_args, output_file, shown)
from rnnlab.errors import UsageError


def cmd_corpus_stats(args) -> int:
    from rnnlab.data.dataset import prepare_text
    from rnnlab.data.stats import corpus_stats

    if args.top < 0:
        raise UsageError(f"--top must be >= 0, got {args.top}")
    output_file(args.plot, "--plot", args.overwrite, figure=True)
    corpus = load_corpus_from_args(args)
    # Both splits put the whole (training) text in data.train; a split folder needs "files".
    split = "files" if corpus.val is not None or corpus.test is not None else "d2l"
    data = prepare_text(corpus, mode=args.mode, token=args.token, split=split)
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


def add_parser(commands) -> None:
    """Register ``rnnlab corpus`` and its subcommands on the main parser's subparsers."""
    corpus_parser = commands.add_parser("corpus", help="corpus statistics")
    corpus_parser.set_defaults(handler=help_handler(corpus_parser))  # no subcommand
    corpus = corpus_parser.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND")
    stats = corpus.add_parser("stats", help="token counts, top n-grams and Zipf exponents")
    add_corpus_options(stats, mode_default="d2l")
    stats.add_argument("--top", type=int, default=10, help="how many top n-grams to list (default 10)")
    stats.add_argument("--plot", default=None, metavar="FILE.png", help="write the log-log frequency plot")
    add_overwrite_option(stats, "an existing --plot file")
    stats.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    stats.set_defaults(handler=cmd_corpus_stats)
