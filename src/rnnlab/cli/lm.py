"""``rnnlab demo``, ``train``, ``eval`` and ``generate``: neural language models
(see rnnlab.training, rnnlab.lm, rnnlab.generation)."""
from __future__ import annotations

import sys

from rnnlab.cli.common import _fmt, add_config_options, add_corpus_options, add_overwrite_option, emit, flag_of
from rnnlab.errors import UsageError


def cmd_demo(args) -> int:
    """Train a small character LSTM on the built-in corpus for ``--seconds`` and sample from it."""
    from rnnlab.lm import LanguageModel
    from rnnlab.training import run
    from rnnlab.training.config import make_config

    config = make_config(corpus=None, mode="raw", token="char", max_time=args.seconds,
                         eval_every_steps=args.eval_every_steps, eval_every=1000, seed=args.seed,
                         sample_length=0, precision=args.precision, model=args.model, size=args.size)
    args.interrupt_checkpoint = args.out
    _, summary = run.train(config, out_dir=args.out, overwrite=args.overwrite)
    lm = LanguageModel.load(args.out)
    sample = lm.generate("The ", 300, temperature=0.7, seed=args.seed)
    summary["sample"] = sample
    if not args.json:
        print(f"size: {summary['size_rule']}")
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




def cmd_train(args) -> int:
    from dataclasses import fields

    from rnnlab.training import run
    from rnnlab.training.config import TrainConfig, make_config

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if args.no_clip:
        if "clip" in given:
            raise UsageError(f"--no-clip and --clip {given['clip']} contradict each other; give one")
        given["clip"] = None
    if args.resume:
        from rnnlab.training.state import RESUMABLE  # besides --out and --corpus (a moved copy of the data)
        fixed = sorted(set(given) - set(RESUMABLE) - {"corpus"} | ({"preset"} if args.preset else set()))
        if fixed:
            raise UsageError("--resume continues the saved configuration; only --epochs, --max-time, --max-steps, --device, "
                             "--precision, --out and --corpus (a moved copy of the same data) may be given "
                             f"(got {', '.join(flag_of(TrainConfig, k) if k != 'preset' else '--preset' for k in fixed)})")
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
    if summary.get("rank"):  # another process of a distributed run (torchrun): rank 0 reports
        return 0
    if not args.json:
        processes = f"{summary['processes']} processes x " if summary.get("processes", 1) > 1 else ""
        if summary.get("size_rule"):
            print(f"size             {summary['size_rule']}")
        print(f"model            {summary['model']} ({summary['parameters']:,} parameters, {summary['device']}, "
              f"{processes}{summary['threads']} threads)")
        print(f"trained          {summary['epochs']:.4g} epochs, {summary['steps']:,} steps in {summary['wall_seconds']:.1f} s "
              f"({summary['seconds']:.1f} s of training steps at {_fmt(summary['tokens_per_second'], ',.0f')} tokens/s, "
              f"{summary['precision']}); stopped by {summary['stopped']}")
        print(f"train perplexity {_fmt(summary['train_perplexity'], '.3f')}")
        print(f"val perplexity   {_fmt(summary['val_perplexity'], '.3f')} ({_fmt(summary['val_bits_per_token'], '.3f')} "
              f"bits/token, {_fmt(summary['val_nats_per_char'], '.4f')} nats/char; best "
              f"{_fmt(summary['best_val_perplexity'], '.3f')})")
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


def cmd_eval(args) -> int:
    from rnnlab.training.run import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, split=args.split, text_path=args.text, data_dir=args.data_dir,
                                 encoding_errors=args.encoding_errors, corpus=args.corpus)
    if not args.json:
        print(f"source          {result['source']}")
        print(f"perplexity      {_fmt(result['perplexity'], '.4f')}")
        print(f"bits per token  {_fmt(result['bits_per_token'], '.4f')}")
        print(f"bits per char   {_fmt(result['bits_per_char'], '.4f')} ({_fmt(result['nats_per_char'], '.4f')} nats/char "
              f"over {result['chars']:,} characters)")
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


def add_parser(commands) -> None:
    """Register ``demo``, ``train``, ``eval`` and ``generate`` on the main parser's subparsers.

    Their parsers set ``saves_checkpoint``: an interrupted run of these commands tells where its
    checkpoint is and how to resume it (see rnnlab.cli._resume_note)."""
    demo = commands.add_parser("demo", help="the quick-start job: train a char LSTM on the built-in corpus (offline)")
    demo.add_argument("--seconds", type=float, default=100.0, help="training budget (default 100)")
    demo.add_argument("--eval-every-steps", type=int, default=200, help="validation every N steps (default 200)")
    demo.add_argument("--out", default="runs/demo", help="checkpoint folder (default runs/demo)")
    add_overwrite_option(demo, "the run in --out")
    demo.add_argument("--seed", type=int, default=0)
    from rnnlab.precision import PRECISIONS
    from rnnlab.training.budget import LADDERS, SIZES
    demo.add_argument("--precision", default=None, choices=PRECISIONS,
                      help="fp32, bf16 or auto (default auto: bf16 where the CPU supports it natively)")
    demo.add_argument("--model", default=None, choices=tuple(LADDERS), help="the model (default lstm)")
    demo.add_argument("--size", default=None, choices=("auto", *SIZES),
                      help="the model's size (default auto: the largest the budget pays for)")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=cmd_demo, saves_checkpoint=True)

    from rnnlab.training.config import PRESETS
    train = commands.add_parser("train", help="train a recurrent language model",
                                description="Train an RNN/GRU/LSTM (or the from-scratch RNN) language model. "
                                            "Defaults suit your own text: a 2-layer LSTM with Adam.")
    add_corpus_options(train, mode_default=None, token_default=None, held_out=True)
    train.add_argument("--preset", default=None, help=f"the book's experiments: {', '.join(PRESETS)}")
    from rnnlab.training.config import BatchOptions, DataOptions, LoopOptions, ModelOptions
    # Every other option comes from its TrainConfig section (name, type, help, default).
    add_config_options(train, DataOptions, defaults_given=False)
    add_config_options(train.add_argument_group("model"), ModelOptions, defaults_given=False)
    opt = train.add_argument_group("optimisation")
    add_config_options(opt, BatchOptions, defaults_given=False)
    add_config_options(opt, LoopOptions, defaults_given=False)
    opt.add_argument("--no-clip", action="store_true", help="no gradient clipping")
    train.add_argument("--out", default=None, metavar="DIR", help="checkpoint folder (weights, config, metrics, plot)")
    train.add_argument("--resume", default=None, metavar="DIR",
                       help="continue the run saved in DIR (with --corpus: a moved copy of its corpus, same SHA-1)")
    add_overwrite_option(train, "the run in --out")
    train.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    train.set_defaults(handler=cmd_train, saves_checkpoint=True)

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
