"""Command-line interface: parses arguments, calls the library, prints results.

Conventions for every command:
* ``--json``: one JSON object on the last line of stdout (human text goes before it
  or to stderr);
* errors: ``error: <one line>`` on stderr, exit 2 for usage mistakes, 1 for data
  and runtime problems (see :mod:`rnnlab.errors`).
"""
from __future__ import annotations

import argparse
import math
import sys

from rnnlab.errors import RnnlabError, UsageError

# ----------------------------------------------------------------------------------
# shared helpers


def emit(result: dict, as_json: bool) -> None:
    """Print ``result`` as the last stdout line when ``--json`` was given (standard JSON:
    NaN and infinities become null at any depth, see :mod:`rnnlab.jsonout`)."""
    if as_json:
        from rnnlab.jsonout import dumps
        print(dumps(result))


def add_overwrite_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} left by an earlier run (only rnnlab's own files are removed; "
                             "a folder holding other files is always refused)")


def output_file(path: str | None, option: str, overwrite: bool, figure: bool = False):
    """Check an output file before the work starts (see rnnlab.fileio.prepare_output_file)."""
    if path is None:
        return None
    from rnnlab.fileio import prepare_output_file
    checked = str(prepare_output_file(path, option, overwrite))
    if figure:
        from rnnlab.plots import check_figure_format
        check_figure_format(path, option)
    return checked


def _finite(value: float):
    """JSON has no NaN/inf: map them to null."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def add_corpus_options(parser: argparse.ArgumentParser, mode_default: str | None = "raw",
                       token_default: str | None = "char", held_out: bool = False) -> None:
    from rnnlab.data.corpus import DEFAULT_CORPUS
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
    group.add_argument("--token", default=token_default, help="tokenizer: char, word or byte (default char)")


def load_corpus_from_args(args):
    from rnnlab.data.corpus import load_corpus
    return load_corpus(args.corpus, data_dir=args.data_dir, encoding_errors=args.encoding_errors,
                       val=getattr(args, "val_corpus", None), test=getattr(args, "test_corpus", None))


# ----------------------------------------------------------------------------------
# rnnlab corpus stats


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


def shown(token: str) -> str:
    """A token as a reader can see it (spaces and newlines made visible)."""
    return token.replace(" ", "␣").replace("\n", "⏎")


# ----------------------------------------------------------------------------------
# rnnlab demo


def cmd_demo(args) -> int:
    """Train a small character LSTM on the built-in corpus for ``--seconds`` and sample from it."""
    from rnnlab.lm import LanguageModel
    from rnnlab.training import run
    from rnnlab.training.config import make_config

    config = make_config(corpus=None, mode="raw", token="char", max_time=args.seconds, epochs=1000,
                         eval_every_steps=args.eval_every_steps, eval_every=1000, seed=args.seed,
                         sample_length=0)
    args.interrupt_checkpoint = args.out
    _, summary = run.train(config, out_dir=args.out, overwrite=args.overwrite)
    lm = LanguageModel.load(args.out)
    sample = lm.generate("The ", 300, temperature=0.7, seed=args.seed)
    summary["sample"] = sample
    if not args.json:
        print(f"trained {summary['model']} ({summary['parameters']:,} parameters, {summary['precision']}) for "
              f"{summary['wall_seconds']:.0f} s on the built-in corpus: {summary['steps']:,} steps, "
              f"{_fmt(summary['tokens_per_second'], ',.0f')} tokens/s over {summary['seconds']:.0f} s of training steps")
        print(f"validation perplexity {_fmt(summary['val_perplexity'], '.3f')} "
              f"({_fmt(summary['val_bits_per_token'], '.3f')} bits/char); baselines on the same text: "
              f"{summary['ngram_order']}-gram Kneser-Ney {_fmt(summary['ngram_val_perplexity'], '.3f')}, "
              f"add-one unigram {_fmt(summary['unigram_val_perplexity'], '.3f')}")
        print(f"checkpoint {args.out}  (try: rnnlab generate {args.out} --prefix 'The ')")
        print("sample (temperature 0.7):")
        print(sample)
    emit(summary, args.json)
    return 0


# ----------------------------------------------------------------------------------
# rnnlab train / eval / generate  (language models; see rnnlab.training, rnnlab.generation)
# [lm-commands]

TRAIN_OPTIONS = ("corpus", "val_corpus", "test_corpus", "mode", "token", "split", "max_tokens", "min_freq", "encoding_errors", "model",
                 "hidden_size", "num_layers", "dropout", "embed_size", "tie_weights", "nonlinearity",
                 "batch_size", "num_steps", "epochs", "max_time", "max_steps", "lr", "optimizer", "weight_decay", "clip",
                 "sampling", "bptt", "bptt_keep_prob", "full_bptt_max_mb", "lr_schedule", "lr_decay", "lr_patience",
                 "early_stop", "eval_every", "eval_every_steps", "sample_prefix", "sample_length", "seed", "device",
                 "precision")
RESUMABLE = {"epochs", "max_time", "max_steps", "device", "precision"}
FLAGS = {"hidden_size": "hidden", "num_layers": "layers", "embed_size": "embed", "val_corpus": "val",
         "test_corpus": "test"}


def cmd_train(args) -> int:
    from rnnlab.errors import UsageError
    from rnnlab.training import run
    from rnnlab.training.config import make_config

    given = {key: getattr(args, key) for key in TRAIN_OPTIONS if getattr(args, key) is not None}
    if args.no_clip:
        given["clip"] = None
    if args.resume:
        fixed = sorted(set(given) - RESUMABLE - {"corpus"} | ({"preset"} if args.preset else set()))
        if fixed:
            raise UsageError("--resume continues the saved configuration; only --epochs, --max-time, --max-steps, --device, "
                             "--precision, --out and --corpus (a moved copy of the same data) may be given "
                             f"(got --{', --'.join(FLAGS.get(k, k).replace('_', '-') for k in fixed)})")
        args.interrupt_checkpoint = args.out if args.out is not None else args.resume
        _, summary = run.resume(args.resume, epochs=given.get("epochs"), max_time=given.get("max_time"),
                                max_steps=given.get("max_steps"),
                                out_dir=args.out, device=given.get("device"), precision=given.get("precision"),
                                data_dir=args.data_dir, corpus=given.get("corpus"), overwrite=args.overwrite)
    else:
        config = make_config(args.preset, **given)
        if args.no_clip:
            config.clip = None
        args.interrupt_checkpoint = args.out
        _, summary = run.train(config, out_dir=args.out, data_dir=args.data_dir, overwrite=args.overwrite)
    if not args.json:
        print(f"model            {summary['model']} ({summary['parameters']:,} parameters, {summary['device']}, "
              f"{summary['threads']} threads)")
        print(f"trained          {summary['epochs']:.4g} epochs, {summary['steps']:,} steps in {summary['wall_seconds']:.1f} s "
              f"({summary['seconds']:.1f} s of training steps at {_fmt(summary['tokens_per_second'], ',.0f')} tokens/s, "
              f"{summary['precision']}); stopped by {summary['stopped']}")
        print(f"train perplexity {_fmt(summary['train_perplexity'], '.3f')}")
        print(f"val perplexity   {_fmt(summary['val_perplexity'], '.3f')} ({_fmt(summary['val_bits_per_token'], '.3f')} "
              f"bits/token; best {_fmt(summary['best_val_perplexity'], '.3f')})")
        if summary["ngram_val_perplexity"] is not None:
            print(f"baselines        val perplexity {_fmt(summary['ngram_val_perplexity'], '.3f')} for a "
                  f"{summary['ngram_order']}-gram Kneser-Ney model, {_fmt(summary['unigram_val_perplexity'], '.3f')} "
                  "for add-one unigrams")
        if summary.get("sample") is not None:
            print(f"sample           {summary['sample']!r}")
        if summary["out"]:
            print(f"checkpoint       {summary['out']}")
    emit(summary, args.json)
    return 0


def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def cmd_eval(args) -> int:
    from rnnlab.training.run import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, split=args.split, text_path=args.text, data_dir=args.data_dir,
                                 encoding_errors=args.encoding_errors, corpus=args.corpus)
    if not args.json:
        print(f"source          {result['source']}")
        print(f"perplexity      {_fmt(result['perplexity'], '.4f')}")
        print(f"bits per token  {_fmt(result['bits_per_token'], '.4f')}")
        print(f"tokens          {result['tokens']:,} scored, {result['unknown_tokens']:,} unknown (<unk>)")
    emit(result, args.json)
    return 0


def cmd_generate(args) -> int:
    from rnnlab.lm import LanguageModel

    if args.num_samples < 1:
        raise UsageError(f"--num-samples must be >= 1, got {args.num_samples}")
    lm = LanguageModel.load(args.checkpoint, device=args.device)
    options = dict(greedy=args.greedy, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    if args.num_samples > 1:
        # Side by side in one batch; with --seed, sample i is still the text of --seed SEED+i.
        samples = lm.generate_batch(args.prefix, args.length, args.num_samples, seed=args.seed, **options)
        if not args.json:
            for sample in samples:
                print(sample)
    else:  # one sample (or none): stream it as it is generated
        samples = []
        shown = lm.prefix_text(args.prefix)
        for _ in range(args.num_samples):
            pieces = []
            if not args.json:
                sys.stdout.write(shown)
                sys.stdout.flush()
            for piece in lm.stream(args.prefix, args.length, seed=args.seed, **options):
                pieces.append(piece)
                if not args.json:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
            if not args.json:
                sys.stdout.write("\n")
            samples.append(shown + "".join(pieces))
    emit({"samples": samples, "prefix": args.prefix, "length": args.length, **options}, args.json)
    return 0


# ----------------------------------------------------------------------------------
# rnnlab ngram train / eval / generate  (see rnnlab.ngram)
# [ngram-commands]


def _ngram_print_result(result: dict, label: str) -> None:
    print(f"{label:<15} perplexity {_fmt(result['perplexity'], '.4f')}, {_fmt(result['bits_per_token'], '.4f')} bits/token "
          f"({result['tokens']:,} tokens, {result['unknown_tokens']:,} unknown)")


def cmd_ngram_train(args) -> int:
    from rnnlab.data.dataset import DEFAULT_SPLIT, check_held_out_options, prepare_text
    from rnnlab.ngram import api, store

    from rnnlab.checkpoint import prepare_output_folder

    check_held_out_options(args.split, args.val_corpus, args.test_corpus)
    output_file(args.arpa, "--arpa", args.overwrite)
    prepare_output_folder(args.out, store.KIND, overwrite=args.overwrite)
    corpus = load_corpus_from_args(args)
    dataset = prepare_text(corpus, mode=args.mode, token=args.token,
                           split=args.split if args.split is not None else DEFAULT_SPLIT)
    source = {"corpus_arg": args.corpus, "data_dir": args.data_dir, "encoding_errors": args.encoding_errors,
              "sources": corpus.sources, "val_corpus": args.val_corpus, "test_corpus": args.test_corpus,
              "sha1": corpus.sha1, "location": corpus.location,
              **{f"{role}_{key}": getattr(getattr(corpus, role), key)
                 for role in ("val", "test") if getattr(corpus, role) is not None for key in ("sha1", "location")}}
    model = api.train(dataset, args.order, args.smoothing, args.k, source=source)
    val = api.evaluate_ids(model, dataset.val) if len(dataset.val) > 1 else None
    store.save(model, args.out)
    if args.arpa:
        from rnnlab.ngram.arpa import write_arpa
        write_arpa(model, args.arpa)
    info = model.info
    result = {"out": args.out, "corpus": corpus.name, "mode": args.mode, "token": args.token,
              "order": model.order, "smoothing": model.smoothing, "k": model.k if model.smoothing == "addk" else None,
              "vocab_size": len(dataset.vocab), "train_tokens": int(len(dataset.train)), "ngrams": info["ngrams"],
              "fit_seconds": info["fit_seconds"], "memory_bytes": info["memory_bytes"],
              "discounts": info.get("discounts"), "discount_fallback": info.get("discount_fallback"),
              "val": {k: (_finite(v) if isinstance(v, float) else v) for k, v in val.items()} if val else None,
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
    from pathlib import Path
    from rnnlab.errors import CheckpointError
    from rnnlab.ngram import store

    if Path(folder).is_file() and str(folder).endswith(".arpa"):
        raise CheckpointError(f"{folder} is an ARPA file; import it first: rnnlab ngram import {folder} --out DIR")
    return store.load(folder)


def cmd_ngram_eval(args) -> int:
    from pathlib import Path
    from rnnlab.data.corpus import read_text_file
    from rnnlab.errors import DataError
    from rnnlab.ngram import api

    model = _ngram_load(args.checkpoint)
    if args.text is not None:
        if not Path(args.text).is_file():
            raise DataError(f"--text {args.text}: no such file")
        ids = api.encode_for(model, read_text_file(Path(args.text), args.encoding_errors or "strict"))
        source = args.text
    else:
        dataset = api.source_dataset(model, data_dir=args.data_dir, encoding_errors=args.encoding_errors)
        ids = dataset.part(args.split)
        source = f"{dataset.corpus_name}:{args.split}"
    if len(ids) < 2:
        raise DataError(f"{source} has fewer than 2 tokens: nothing to score; use --text FILE or another --split")
    result = {**api.evaluate_ids(model, ids), "source": source, "order": model.order, "smoothing": model.smoothing}
    if not args.json:
        print(f"source          {source}")
        _ngram_print_result(result, "scored")
        print(f"throughput      {result['tokens_per_second']:,.0f} tokens/s")
    emit({k: (_finite(v) if isinstance(v, float) else v) for k, v in result.items()}, args.json)
    return 0


def cmd_ngram_generate(args) -> int:
    from rnnlab.ngram import api

    model = _ngram_load(args.checkpoint)
    text = api.generate_text(model, args.prefix, args.length, temperature=args.temperature, greedy=args.greedy,
                             seed=args.seed)
    if not args.json:
        print(text)
    emit({"sample": text, "prefix": args.prefix, "length": args.length, "temperature": args.temperature,
          "greedy": args.greedy, "seed": args.seed}, args.json)
    return 0


def cmd_ngram_arpa(args) -> int:
    from rnnlab.ngram import store
    from rnnlab.ngram.arpa import read_arpa, write_arpa

    if args.arpa_command == "export":
        model = _ngram_load(args.checkpoint)
        output_file(args.file, "export file", args.overwrite)
        write_arpa(model, args.file)
        result = {"arpa": args.file, "checkpoint": args.checkpoint}
    else:
        from rnnlab.checkpoint import prepare_output_folder
        prepare_output_folder(args.out, store.KIND, overwrite=args.overwrite)
        model = read_arpa(args.file, mode=args.mode, token=args.token)
        store.save(model, args.out)
        result = {"arpa": args.file, "checkpoint": args.out, "order": model.order, "ngrams": model.info["ngrams"]}
    if not args.json:
        print(f"wrote {args.file if args.arpa_command == 'export' else args.out}")
    emit(result, args.json)
    return 0

# ----------------------------------------------------------------------------------
# rnnlab forecast  (see rnnlab.forecasting)
# [forecast-commands]

SHOWN_HORIZONS = (1, 4, 16, 64)


def cmd_forecast(args) -> int:
    from rnnlab.forecasting.models import ForecastConfig
    from rnnlab.forecasting.report import run_forecast
    from rnnlab.forecasting.series import load_series

    if args.plot is not None:
        output_file(args.plot, "--plot", args.overwrite, figure=True)
    if args.out is not None:
        from rnnlab.checkpoint import prepare_output_folder
        prepare_output_folder(args.out, "forecaster", overwrite=args.overwrite)
    series = load_series(args.series, fill=args.fill, seed=args.seed)
    hidden = args.hidden if args.hidden is not None else (10 if args.model in ("linear", "mlp") else 32)
    config = ForecastConfig(model=args.model, tau=args.tau, hidden=hidden, context=args.context, epochs=args.epochs,
                            lr=args.lr, batch_size=args.batch_size, train_horizon=args.train_horizon, seed=args.seed)
    result = run_forecast(series, config, horizon=args.horizon, n_train=args.n_train, stride=args.stride,
                          season=args.season, plot=args.plot, out=args.out)
    if not args.json:
        losses = ", ".join(f"{v:.4f}" for v in result["train_loss"])
        print(f"series {result['series']} ({result['length']} values); {result['model']} with tau={result['tau']}, "
              f"trained on t <= {result['train_end']} ({result['n_train']} AR windows), train horizon "
              f"{result['train_horizon']}")
        print(f"training loss (MSE) by epoch: {losses}")
        print(f"backtest: {result['origins']} origins after t = {result['train_end']}, h = 1..{result['horizon']}; "
              "MAE by horizon (* = beats naive)")
        methods = {result["model"]: result["mae_by_horizon"],
                   **{b: v["mae_by_horizon"] for b, v in result["baselines"].items()}}
        mase = {result["model"]: result["mase"], **{b: v["mase"] for b, v in result["baselines"].items()}}
        naive = methods["naive"]
        shown = sorted({h for h in SHOWN_HORIZONS if h <= result["horizon"]} | {result["horizon"]})
        print(f"{'h':>5} " + " ".join(f"{m:>10}" for m in methods))
        for h in shown:
            cells = []
            for name, mae in methods.items():
                mark = "*" if name != "naive" and mae[h - 1] < naive[h - 1] else " "
                cells.append(f"{mae[h - 1]:>9.4f}{mark}")
            print(f"{h:>5} " + " ".join(cells))
        print(f"{'MASE':>5} " + " ".join(f"{mase[m]:>10.4f}" for m in methods))
        for note in result["notes"].values():
            print(f"note: {note}")
        if result.get("plot"):
            print(f"figure: {result['plot']}")
    emit(result, args.json)
    return 0


# ----------------------------------------------------------------------------------
# rnnlab reproduce  (see rnnlab.reproduce)


def cmd_reproduce(args) -> int:
    from rnnlab.reproduce import reproduce

    results = reproduce(args.out, quick=args.quick, only=args.only, overwrite=args.overwrite,
                        data_dir=args.data_dir)
    if not args.json:
        for section in results["sections"]:
            compared = [row for row in section["rows"] if row["match"] in ("yes", "no")]
            matched = sum(row["match"] == "yes" for row in compared)
            verdict = (f"{matched} of {len(compared)} rows match the book" if compared
                       else "the book prints no numbers to compare")
            print(f"{section['key']:<8} {section['title']}: {verdict} ({section['seconds']:.1f} s)")
        print(f"report   {results['out']}/report.md (wall time {results['wall_seconds']:.1f} s"
              f"{', --quick: fewer epochs' if results['quick'] else ''})")
    emit(results, args.json)
    return 0


# ----------------------------------------------------------------------------------
# rnnlab bench  (see rnnlab.bench.suite)
# [bench-commands]


def cmd_bench(args) -> int:
    from rnnlab.bench.suite import run_bench

    result = run_bench(quick=args.quick, repeats=args.repeats, only=args.only)
    if not args.json:
        for line in _bench_report(result):
            print(line)
    emit(result, args.json)
    return 0


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table (pasteable into the README)."""
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(row) + " |" for row in rows)]


def _rate(entry: dict, key: str = "tokens_per_second") -> str:
    return _fmt(entry.get(key), ",.0f") if key in entry else entry.get("skipped", "-")


def _times(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _spread(entry: dict) -> str:
    return f"{100 * entry['spread']:.0f}%" if "spread" in entry else "-"


def _mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:,.1f}"


def _bench_report(result: dict) -> list[str]:
    """The human form of ``rnnlab bench``: a header, then one Markdown table per section."""
    h = result["header"]
    plan = h["plan"]
    kind = (f"QUICK RUN (smoke test: {plan['repeats']} repetitions, at most {plan['max_steps']} time steps; "
            "not numbers to quote)" if h["quick"] else f"full run, {plan['repeats']} repetitions")
    load = h["load_average"] and f"load {h['load_average'][0]} -> {h['load_average_after'][0]}"
    lines = [f"rnnlab bench: {kind}",
             f"torch {h['torch']}, threads {h['threads']} (interop {h['interop_threads']}, OMP_NUM_THREADS "
             f"{h['omp_num_threads'] or 'unset'}, {h['cpus']} cpus), CPU capability {h['cpu_capability']}, "
             f"bf16 supported: {'yes' if h['bf16_supported'] else 'no'}, default precision {h['default_precision']}; "
             f"{load or 'load unknown'}; {h['seconds']:.0f} s",
             "medians of interleaved repetitions; spread = (slowest - fastest) / median"]
    lines += [f"warning: {w}" for w in h["warnings"]]
    sections = result["sections"]
    if "rnn" in sections:
        rows = [[e["group"], e["candidate"], e["precision"], _rate(e), _times(e["vs_book"]),
                 _times(e["vs_torch_rnn"]), _spread(e)] for e in sections["rnn"]["rows"]]
        lines += ["", "rnn: one training step, tokens/s",
                  *_table(["shape", "candidate", "precision", "tokens/s", "vs (a)", "vs (b)", "spread"], rows)]
        lines += [f"note: {n}" for n in sections["rnn"]["notes"]]
    if "gru-lstm" in sections:
        rows = [[e["group"], e["candidate"], e["precision"], _rate(e), _times(e["vs_torch"]), _spread(e)]
                for e in sections["gru-lstm"]["rows"]]
        lines += ["", "gru-lstm: one training step, tokens/s",
                  *_table(["shape", "candidate", "precision", "tokens/s", "vs torch.nn", "spread"], rows)]
        lines += [f"note: {n}" for n in sections["gru-lstm"]["notes"]]
    if "roofline" in sections:
        section = sections["roofline"]
        rows = [[e["group"], e["candidate"], e["precision"], f"{e['flops_per_step'] / 1e9:.3f}",
                 _fmt(e.get("achieved_flops_per_second") and e["achieved_flops_per_second"] / 1e9, ".1f"),
                 f"{e['roofline_flops_per_second'] / 1e9:.1f}", _fmt(e.get("percent_of_roofline"), ".0f")]
                for e in section["rows"]]
        lines += ["", "roofline: training-step FLOPs against torch.mm at the same shapes",
                  *_table(["shape", "candidate", "precision", "GFLOP/step", "achieved GFLOP/s",
                           "roofline GFLOP/s", "% of roofline"], rows)]
        by_shape: dict[tuple, dict] = {}
        for m in section["matmul"]:
            by_shape.setdefault((m["rows"], m["inner"], m["cols"]), {})[m["precision"]] = m["flops_per_second"]
        rows = [[f"({r}, {k}) x ({k}, {n})", _fmt(rates.get("fp32") and rates["fp32"] / 1e9, ".1f"),
                 _fmt(rates.get("bf16") and rates["bf16"] / 1e9, ".1f")]
                for (r, k, n), rates in sorted(by_shape.items())]
        lines += ["", *_table(["torch.mm", "fp32 GFLOP/s", "bf16 GFLOP/s"], rows)]
        lines += [f"note: {n}" for n in section["notes"]]
    if "generate" in sections:
        rows = [[e["model"], str(e["streams"]), _rate(e), _spread(e), e["method"]]
                for e in sections["generate"]["rows"]]
        lines += ["", f"generate: tokens/s ({sections['generate']['rows'][0]['length']} tokens per stream)",
                  *_table(["model", "streams", "tokens/s", "spread", "timed by"], rows)]
        lines += [f"note: {n}" for n in sections["generate"]["notes"]]
    if "memory" in sections:
        rows = [[e["label"], e["implementation"], e["precision"], _mib(e["peak_bytes"]), _mib(e["saved_bytes"]),
                 _mib(e["formula_bytes"]), f"{e['formula_floats_per_token']:,}"] for e in sections["memory"]["rows"]]
        lines += ["", "memory: one training step, MiB",
                  *_table(["shape", "implementation", "precision", "measured peak", "saved for backward",
                           "formula (kept)", "formula floats/token"], rows)]
        lines += [f"note: {n}" for n in sections["memory"]["notes"]]
    if "data" in sections:
        rows = []
        for e in sections["data"]["rows"]:
            if "megabytes_per_second" in e:
                rows.append([e["measure"], f"{e['megabytes']:.1f} MB", f"{e['megabytes_per_second']:,.1f} MB/s",
                             _spread(e)])
            else:
                rows.append([e["measure"], f"{e['tokens']:,} tokens", f"{e['tokens_per_second']:,.0f} tokens/s",
                             _spread(e)])
        lines += ["", "data: encoding and n-grams", *_table(["measure", "size", "rate", "spread"], rows)]
        lines += [f"note: {n}" for n in sections["data"]["notes"]]
    return lines


# ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description="Recurrent sequence models from d2l's RNN chapter.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__import__('rnnlab').__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or log lines on stderr")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for PyTorch (default: PyTorch's choice, one per core)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    corpus_parser = commands.add_parser("corpus", help="corpus statistics")
    corpus_parser.set_defaults(handler=lambda args: (corpus_parser.print_help(sys.stderr), 2)[1])  # no subcommand
    corpus = corpus_parser.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND")
    stats = corpus.add_parser("stats", help="token counts, top n-grams and Zipf exponents")
    add_corpus_options(stats, mode_default="d2l")
    stats.add_argument("--top", type=int, default=10, help="how many top n-grams to list (default 10)")
    stats.add_argument("--plot", default=None, metavar="FILE.png", help="write the log-log frequency plot")
    add_overwrite_option(stats, "an existing --plot file")
    stats.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    stats.set_defaults(handler=cmd_corpus_stats)

    demo = commands.add_parser("demo", help="the quick-start job: train a char LSTM on the built-in corpus (offline)")
    demo.add_argument("--seconds", type=float, default=100.0, help="training budget (default 100)")
    demo.add_argument("--eval-every-steps", type=int, default=200, help="validation every N steps (default 200)")
    demo.add_argument("--out", default="runs/demo", help="checkpoint folder (default runs/demo)")
    add_overwrite_option(demo, "the run in --out")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=cmd_demo)

    # [lm-parsers]
    from rnnlab.training.config import PRESETS
    from rnnlab.models import MODEL_NAMES
    train = commands.add_parser("train", help="train a recurrent language model",
                                description="Train an RNN/GRU/LSTM (or the from-scratch RNN) language model. "
                                            "Defaults suit your own text: a 2-layer LSTM with Adam.")
    add_corpus_options(train, mode_default=None, token_default=None, held_out=True)
    train.add_argument("--preset", default=None, help=f"the book's experiments: {', '.join(PRESETS)}")
    train.add_argument("--split", default=None, help="train,val,test fractions (default 0.9,0.05,0.05) or 'd2l'")
    train.add_argument("--max-tokens", type=int, default=None, help="use at most this many training tokens")
    train.add_argument("--min-freq", type=int, default=None, help="drop tokens rarer than this from the vocabulary")
    model = train.add_argument_group("model")
    model.add_argument("--model", default=None, help=f"{', '.join(MODEL_NAMES)} (default lstm)")
    model.add_argument("--hidden", dest="hidden_size", type=int, default=None, help="hidden units (default 256)")
    model.add_argument("--layers", dest="num_layers", type=int, default=None, help="recurrent layers (default 2)")
    model.add_argument("--dropout", type=float, default=None, help="dropout between layers (default 0.2)")
    model.add_argument("--embed", dest="embed_size", type=int, default=None, help="embedding size; 0 = one-hot (default 64)")
    model.add_argument("--tie-weights", action="store_true", default=None, help="share embedding and output weights")
    model.add_argument("--nonlinearity", default=None, help="tanh or relu (--model rnn)")
    opt = train.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=None, help="sequences per batch (default 32)")
    opt.add_argument("--num-steps", type=int, default=None, help="time steps per sequence (default 64)")
    opt.add_argument("--epochs", type=int, default=None, help="passes over the training split (default 20; unlimited with --max-time)")
    opt.add_argument("--max-time", type=float, default=None, help="wall-clock budget in seconds")
    opt.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    opt.add_argument("--lr", type=float, default=None, help="learning rate (default 0.002)")
    opt.add_argument("--optimizer", default=None, help="sgd, adam or adamw (default adam)")
    opt.add_argument("--weight-decay", type=float, default=None)
    opt.add_argument("--clip", type=float, default=None, help="global gradient-norm threshold theta (default 1)")
    opt.add_argument("--no-clip", action="store_true", help="no gradient clipping")
    opt.add_argument("--sampling", default=None, help="random or sequential (default sequential)")
    opt.add_argument("--bptt", default=None, help="truncated, full or randomized (default truncated)")
    opt.add_argument("--bptt-keep-prob", type=float, default=None, help="randomized BPTT: P(gradient crosses a step) (0.9)")
    opt.add_argument("--full-bptt-max-mb", type=float, default=None, help="full BPTT memory bound (2048 MB)")
    opt.add_argument("--lr-schedule", default=None,
                     help="cosine (warm-up, then down to 5%% of --lr over the epochs, --max-steps or --max-time "
                          "budget; default), plateau (multiply by --lr-decay on a validation plateau) or constant")
    opt.add_argument("--lr-decay", type=float, default=None, help="plateau schedule: multiply lr by this on a validation plateau (default 0.5; 0 = off)")
    opt.add_argument("--lr-patience", type=int, default=None, help="evaluations without improvement before decay (default 2)")
    opt.add_argument("--early-stop", type=int, default=None, help="stop after this many evaluations without improvement (default 4; 0 = off)")
    opt.add_argument("--eval-every", type=int, default=None, help="evaluate every N epochs (default 1)")
    opt.add_argument("--eval-every-steps", type=int, default=None, help="also evaluate every N steps")
    opt.add_argument("--sample-prefix", default=None, help="prefix of the greedy sample shown at each evaluation")
    opt.add_argument("--sample-length", type=int, default=None, help="tokens in that sample (default 50)")
    opt.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    opt.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default auto)")
    opt.add_argument("--precision", default=None,
                     help="fp32, bf16 (bfloat16 products, float32 weights and loss) or auto: bf16 where the "
                          "CPU or GPU supports it natively (default auto)")
    train.add_argument("--out", default=None, metavar="DIR", help="checkpoint folder (weights, config, metrics, plot)")
    train.add_argument("--resume", default=None, metavar="DIR",
                       help="continue the run saved in DIR (with --corpus: a moved copy of its corpus, same SHA-1)")
    add_overwrite_option(train, "the run in --out")
    train.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    train.set_defaults(handler=cmd_train)

    ev = commands.add_parser("eval", help="perplexity of a trained model")
    ev.add_argument("checkpoint", metavar="DIR")
    ev.add_argument("--split", default="val", help="val or test of the training corpus (default val)")
    ev.add_argument("--text", default=None, metavar="FILE", help="score this UTF-8 file instead")
    ev.add_argument("--corpus", default=None, metavar="PATH",
                    help="where the training corpus is now (a moved copy; it must have the recorded SHA-1)")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--encoding-errors", default="strict")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(handler=cmd_eval)

    gen = commands.add_parser("generate", help="generate text from a trained model")
    gen.add_argument("checkpoint", metavar="DIR")
    gen.add_argument("--prefix", default="the", help="warm-up text (default 'the')")
    gen.add_argument("--length", type=int, default=200, help="tokens to generate (default 200)")
    gen.add_argument("--greedy", action="store_true", help="always take the most likely token")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (0 = all)")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    gen.add_argument("--num-samples", type=int, default=1,
                     help="samples to generate (default 1); several are generated side by side in one batch")
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--json", action="store_true")
    gen.set_defaults(handler=cmd_generate)
    # [ngram-parsers]
    ngram = commands.add_parser("ngram", help="n-gram language models (MLE, add-k, Kneser-Ney)")
    ngram_cmds = ngram.add_subparsers(dest="ngram_command", metavar="SUBCOMMAND")
    ngram.set_defaults(handler=lambda args: (ngram.print_help(sys.stderr), 2)[1])  # no subcommand given
    ng_train = ngram_cmds.add_parser("train", help="count n-grams of a corpus's training split and save the model")
    add_corpus_options(ng_train, mode_default="d2l", token_default="word", held_out=True)
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
    ng_import.add_argument("--token", default=None, help="tokenizer of text to score with it (char, word, byte)")
    ng_import.add_argument("--json", action="store_true")
    ng_import.set_defaults(handler=cmd_ngram_arpa, arpa_command="import")
    # [forecast-parsers]
    fc = commands.add_parser("forecast", help="train a forecaster and backtest it against baselines by horizon")
    fc.add_argument("--series", default="sine", help="sine, sunspots, nile, co2, FILE.csv:COLUMN or a one-column file")
    fc.add_argument("--model", default="mlp", help="linear, mlp, rnn, gru, lstm (default mlp)")
    fc.add_argument("--tau", type=int, default=4, help="values an AR model reads (default 4)")
    fc.add_argument("--horizon", type=int, default=64, help="forecast steps H to evaluate (default 64)")
    fc.add_argument("--train-horizon", type=int, default=1, help="unroll training for this many steps (default 1)")
    fc.add_argument("--n-train", type=int, default=None, help="training AR windows: the first n-train + tau values train (default 600 for sine, else 75%% of the series)")
    fc.add_argument("--hidden", type=int, default=None, help="hidden units (default 10 for mlp, 32 for RNNs)")
    fc.add_argument("--context", type=int, default=None, help="RNN warm-up values (default max(16, 4 tau))")
    fc.add_argument("--epochs", type=int, default=5)
    fc.add_argument("--lr", type=float, default=0.01)
    fc.add_argument("--batch-size", type=int, default=16)
    fc.add_argument("--season", type=int, default=None, help="season length m for the seasonal-naive baseline")
    fc.add_argument("--stride", type=int, default=1, help="distance between backtest origins (default 1)")
    fc.add_argument("--fill", default=None, help="missing values: interpolate or drop (default: error)")
    fc.add_argument("--seed", type=int, default=0)
    fc.add_argument("--plot", default=None, metavar="FILE.png", help="write the figures")
    fc.add_argument("--out", default=None, metavar="DIR", help="save the forecaster (safetensors + JSON)")
    add_overwrite_option(fc, "an existing --plot file and the forecaster in --out")
    fc.add_argument("--json", action="store_true")
    fc.set_defaults(handler=cmd_forecast)
    rep = commands.add_parser("reproduce", help="run the chapter's experiments; the book's numbers beside ours",
                              description="Run the experiments of d2l chapter 8 (sections 8.1-8.7) and write "
                                          "DIR/report.md, DIR/results.json and the figures.")
    rep.add_argument("--out", default="runs/reproduce", metavar="DIR", help="output folder (default runs/reproduce)")
    rep.add_argument("--quick", action="store_true", help="fewer epochs (stated in the report): about 2-3 minutes")
    rep.add_argument("--only", default=None, metavar="SECTION,...",
                     help="run only these sections: 8.1, 8.2, 8.3, 8.4-8.6 (or 8.4, 8.5, 8.6), 8.7")
    rep.add_argument("--data-dir", default=None, help="folder holding timemachine.txt (default: $RNNLAB_DATA, then the user cache)")
    add_overwrite_option(rep, "an earlier reproduction in --out")
    rep.add_argument("--json", action="store_true", help="print results.json's object on the last line")
    rep.set_defaults(handler=cmd_reproduce)
    # [bench-parsers]
    from rnnlab.bench import SECTIONS
    bench = commands.add_parser("bench", help="performance: training steps, roofline, generation, memory, data",
                                description="Every performance measurement side by side in one process: medians "
                                            "of interleaved repetitions (see rnnlab.bench.suite).")
    bench.add_argument("--quick", action="store_true", help="few repetitions, small sizes: a smoke test (~40 s)")
    bench.add_argument("--repeats", type=int, default=None, help="repetitions per candidate (default 7, quick 3)")
    bench.add_argument("--only", default=None, metavar="SECTION,...", help=f"run only these: {', '.join(SECTIONS)}")
    # SUPPRESS: the global --threads handles it; this one only overrides it when given here
    bench.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                       help="CPU threads for PyTorch (same as rnnlab --threads N bench)")
    bench.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    bench.set_defaults(handler=cmd_bench)

    # classify (many-to-one) and tag (many-to-many): parsers and handlers in rnnlab.cli_tasks
    from rnnlab.cli_tasks import add_task_commands
    add_task_commands(commands, add_overwrite_option)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    from rnnlab.progress import configure_logging
    configure_logging(verbose=not args.quiet)
    previous = _handle_sigterm_as_interrupt()
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise UsageError(f"--threads must be a positive integer, got {args.threads}")
            import torch
            torch.set_num_threads(args.threads)
        seed = getattr(args, "seed", None)  # NumPy and torch refuse negative seeds with a traceback
        if seed is not None and not 0 <= seed < 2**63:
            raise UsageError(f"--seed must be an integer from 0 to 2**63 - 1, got {seed}")
        return int(args.handler(args) or 0)
    except RnnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"error: {'terminated (SIGTERM)' if terminated else 'interrupted'}{_resume_note(args)}", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:
        return 1
    finally:
        if previous is not None:
            import signal
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that training saves its checkpoint before exiting."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _handle_sigterm_as_interrupt():
    """Make SIGTERM (``kill``, a job scheduler's stop) behave like Ctrl-C; return the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers can only be set from the main thread
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _resume_note(args) -> str:
    """After an interrupted training run: where its checkpoint is and how to continue it."""
    folder = getattr(args, "interrupt_checkpoint", None)
    if getattr(args, "handler", None) not in (cmd_train, cmd_demo):
        return ""
    if folder is None:
        return " (no --out: nothing was saved)"
    from rnnlab.checkpoint import load_config
    try:
        step = load_config(folder).get("progress", {}).get("step")
    except RnnlabError:
        return f"; stopped before the first checkpoint, nothing to resume in {folder}"
    import shlex
    return (f"; the run is saved in {folder} (step {step}): continue it with "
            f"rnnlab train --resume {shlex.quote(str(folder))}")


if __name__ == "__main__":
    raise SystemExit(main())
