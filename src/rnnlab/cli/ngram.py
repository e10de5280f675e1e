"""``rnnlab ngram``: n-gram language models (see rnnlab.ngram)."""
from __future__ import annotations

from pathlib import Path

from rnnlab.checkpoint import prepare_output_folder
from rnnlab.cli.common import (add_corpus_options, add_overwrite_option, emit, finite, fmt, help_handler,
                               load_corpus_from_args, output_file)
from rnnlab.data.corpus import read_text_file
from rnnlab.data.dataset import DEFAULT_SPLIT, check_held_out_options, prepare_text
from rnnlab.errors import CheckpointError, DataError
from rnnlab.fileio import check_input_file
from rnnlab.scoring import text_chars


def _ngram_print_result(result: dict, label: str) -> None:
    print(f"{label:<15} perplexity {fmt(result['perplexity'], '.4f')}, {fmt(result['bits_per_token'], '.4f')} bits/token "
          f"({result['tokens']:,} tokens, {result['unknown_tokens']:,} unknown)")
    if result.get("bits_per_char") is not None:
        print(f"{'':<15} {fmt(result['bits_per_char'], '.4f')} bits/char, {fmt(result['nats_per_char'], '.4f')} "
              f"nats/char ({result['chars']:,} characters)")


def cmd_ngram_train(args) -> int:
    from rnnlab.ngram import api, store  # lazy: keeps rnnlab --help from loading rnnlab.ngram

    check_held_out_options(args.split, args.val_corpus, args.test_corpus)
    output_file(args.arpa, "--arpa", args.overwrite)
    prepare_output_folder(args.out, store.KIND, overwrite=args.overwrite)
    corpus = load_corpus_from_args(args)
    dataset = prepare_text(corpus, mode=args.mode, token=args.token,
                           split=args.split if args.split is not None else DEFAULT_SPLIT, vocab_size=args.vocab_size)
    source = {"corpus_arg": args.corpus, "data_dir": args.data_dir, "encoding_errors": args.encoding_errors,
              "sources": corpus.sources, "val_corpus": args.val_corpus, "test_corpus": args.test_corpus,
              "sha1": corpus.sha1, "location": corpus.location,
              **{f"{role}_{key}": getattr(getattr(corpus, role), key)
                 for role in ("val", "test") if getattr(corpus, role) is not None for key in ("sha1", "location")}}
    model = api.train(dataset, args.order, args.smoothing, args.k, source=source)
    val = api.evaluate_ids(model, dataset.val, chars=dataset.covered_chars("val")) if len(dataset.val) > 1 else None
    store.save(model, args.out)
    if args.arpa:
        from rnnlab.ngram.arpa import write_arpa  # lazy: keeps rnnlab --help from loading rnnlab.ngram
        write_arpa(model, args.arpa)
    info = model.info
    result = {"out": args.out, "corpus": corpus.name, "mode": args.mode, "token": args.token,
              "order": model.order, "smoothing": model.smoothing, "k": model.k if model.smoothing == "addk" else None,
              "vocab_size": len(dataset.vocab), "train_tokens": int(len(dataset.train)), "ngrams": info["ngrams"],
              "fit_seconds": info["fit_seconds"], "memory_bytes": info["memory_bytes"],
              "discounts": info.get("discounts"), "discount_fallback": info.get("discount_fallback"),
              "val": {k: (finite(v) if isinstance(v, float) else v) for k, v in val.items()} if val else None,
              "arpa": args.arpa}
    if not args.json:
        print(f"trained         {model.order}-gram {model.smoothing} on {corpus.name} ({args.token}, {args.mode}): "
              f"{result['train_tokens']:,} tokens, vocabulary {result['vocab_size']:,}")
        print(f"n-grams         {', '.join(f'{n:,}' for n in info['ngrams'])} (orders 1..{model.order}); "
              f"{info['memory_bytes'] / 2**20:.1f} MiB; fit {info['fit_seconds']:.3f} s")
        if info.get("discount_fallback") and any(info["discount_fallback"]):
            fell = [str(n + 1) for n, f in enumerate(info["discount_fallback"]) if f]
            print(f"discounts       fixed fallback (0.5, 1, 1.5) at order(s) {', '.join(fell)}: Chen-Goodman estimate undefined")
        if val:
            _ngram_print_result(val, "validation")
        print(f"saved           {args.out}" + (f" and {args.arpa}" if args.arpa else ""))
    emit(result, args.json)
    return 0


def _ngram_load(folder):
    from rnnlab.ngram import store  # lazy: keeps rnnlab --help from loading rnnlab.ngram

    if Path(folder).is_file() and str(folder).endswith(".arpa"):
        raise CheckpointError(f"{folder} is an ARPA file; import it first: rnnlab ngram import {folder} --out DIR")
    return store.load(folder)


def cmd_ngram_eval(args) -> int:
    from rnnlab.ngram import api  # lazy: keeps rnnlab --help from loading rnnlab.ngram

    model = _ngram_load(args.checkpoint)
    if args.text is not None:
        check_input_file(args.text, f"--text {args.text}")
        text = read_text_file(Path(args.text), args.encoding_errors or "strict")
        ids = api.encode_for(model, text)
        source = args.text
        pre = model.preprocessing
        chars = text_chars(text, model.vocab, pre["mode"], pre["token"]) if len(ids) > 1 else None
    else:
        dataset = api.source_dataset(model, data_dir=args.data_dir, encoding_errors=args.encoding_errors)
        ids = dataset.part(args.split)
        source = f"{dataset.corpus_name}:{args.split}"
        chars = dataset.covered_chars(args.split)
    if len(ids) < 2:
        raise DataError(f"{source} has fewer than 2 tokens: nothing to score; use --text FILE or another --split")
    result = {**api.evaluate_ids(model, ids, chars=chars), "source": source, "order": model.order, "smoothing": model.smoothing}
    if not args.json:
        print(f"source          {source}")
        _ngram_print_result(result, "scored")
        print(f"throughput      {result['tokens_per_second']:,.0f} tokens/s")
    emit({k: (finite(v) if isinstance(v, float) else v) for k, v in result.items()}, args.json)
    return 0


def cmd_ngram_generate(args) -> int:
    from rnnlab.ngram import api  # lazy: keeps rnnlab --help from loading rnnlab.ngram

    model = _ngram_load(args.checkpoint)
    text = api.generate_text(model, args.prefix, args.length, temperature=args.temperature, greedy=args.greedy,
                             seed=args.seed)
    if not args.json:
        print(text)
    emit({"sample": text, "prefix": args.prefix, "length": args.length, "temperature": args.temperature,
          "greedy": args.greedy, "seed": args.seed}, args.json)
    return 0


def cmd_ngram_arpa(args) -> int:
    from rnnlab.ngram import store  # lazy: keeps rnnlab --help from loading rnnlab.ngram
    from rnnlab.ngram.arpa import read_arpa, write_arpa  # lazy: keeps rnnlab --help from loading rnnlab.ngram

    if args.arpa_command == "export":
        model = _ngram_load(args.checkpoint)
        output_file(args.file, "export file", args.overwrite)
        write_arpa(model, args.file)
        result = {"arpa": args.file, "checkpoint": args.checkpoint}
    else:
        prepare_output_folder(args.out, store.KIND, overwrite=args.overwrite)
        model = read_arpa(args.file, mode=args.mode, token=args.token)
        store.save(model, args.out)
        result = {"arpa": args.file, "checkpoint": args.out, "order": model.order, "ngrams": model.info["ngrams"]}
    if not args.json:
        print(f"wrote {args.file if args.arpa_command == 'export' else args.out}")
    emit(result, args.json)
    return 0


def add_parser(commands) -> None:
    """Register ``rnnlab ngram`` and its subcommands on the main parser's subparsers."""
    ngram = commands.add_parser("ngram", help="n-gram language models (MLE, add-k, Kneser-Ney)")
    ngram_cmds = ngram.add_subparsers(dest="ngram_command", metavar="SUBCOMMAND")
    ngram.set_defaults(handler=help_handler(ngram))  # no subcommand given
    ng_train = ngram_cmds.add_parser("train", help="count n-grams of a corpus's training split and save the model")
    add_corpus_options(ng_train, mode_default="d2l", token_default="word", held_out=True, vocab_size=True)
    ng_train.add_argument("--split", default=None, help="train,val,test fractions or 'd2l' (default 0.9,0.05,0.05)")
    ng_train.add_argument("--order", type=int, default=3, help="n (default 3)")
    ng_train.add_argument("--smoothing", default="kn", help="kn (modified Kneser-Ney, default), addk or mle")
    ng_train.add_argument("--k", type=float, default=1.0, help="k of add-k smoothing (default 1: Laplace)")
    ng_train.add_argument("--out", required=True, metavar="DIR")
    ng_train.add_argument("--arpa", default=None, metavar="FILE", help="also write the model as an ARPA file")
    add_overwrite_option(ng_train, "the model in --out and an existing --arpa file")
    ng_train.add_argument("--json", action="store_true")
    ng_train.set_defaults(handler=cmd_ngram_train)
    ng_eval = ngram_cmds.add_parser("eval", help="perplexity of an n-gram model")
    ng_eval.add_argument("checkpoint", metavar="DIR")
    ng_eval.add_argument("--split", default="val", help="val or test of the training corpus (default val)")
    ng_eval.add_argument("--text", default=None, metavar="FILE", help="score this UTF-8 file instead")
    ng_eval.add_argument("--data-dir", default=None)
    ng_eval.add_argument("--encoding-errors", default=None)
    ng_eval.add_argument("--json", action="store_true")
    ng_eval.set_defaults(handler=cmd_ngram_eval)
    ng_gen = ngram_cmds.add_parser("generate", help="sample text from an n-gram model")
    ng_gen.add_argument("checkpoint", metavar="DIR")
    ng_gen.add_argument("--prefix", default="the")
    ng_gen.add_argument("--length", type=int, default=50, help="tokens to generate (default 50)")
    ng_gen.add_argument("--temperature", type=float, default=1.0)
    ng_gen.add_argument("--greedy", action="store_true")
    ng_gen.add_argument("--seed", type=int, default=None)
    ng_gen.add_argument("--json", action="store_true")
    ng_gen.set_defaults(handler=cmd_ngram_generate)
    ng_export = ngram_cmds.add_parser("export", help="write a kn/mle model as an ARPA file")
    ng_export.add_argument("checkpoint", metavar="DIR")
    ng_export.add_argument("file", metavar="FILE.arpa")
    add_overwrite_option(ng_export, "an existing FILE")
    ng_export.add_argument("--json", action="store_true")
    ng_export.set_defaults(handler=cmd_ngram_arpa, arpa_command="export")
    ng_import = ngram_cmds.add_parser("import", help="read an ARPA file into a model folder")
    ng_import.add_argument("file", metavar="FILE.arpa")
    ng_import.add_argument("--out", required=True, metavar="DIR")
    add_overwrite_option(ng_import, "the model in --out")
    ng_import.add_argument("--mode", default=None, help="preprocessing of text to score with it (d2l or raw)")
    ng_import.add_argument("--token", default=None, help="tokenizer of text to score with it (char, word, byte; bpe/unigram need their tokenizer: train with rnnlab ngram train)")
    ng_import.add_argument("--json", action="store_true")
    ng_import.set_defaults(handler=cmd_ngram_arpa, arpa_command="import")
