"""``rnnlab demo``, ``train``, ``eval`` and ``generate``: neural language models
(see rnnlab.training, rnnlab.lm, rnnlab.generation)."""
from __future__ import annotations

import sys
from dataclasses import fields

from rnnlab.cli.common import add_config_options, add_corpus_options, add_overwrite_option, emit, flag_of, fmt
from rnnlab.errors import DataError, UsageError
from rnnlab.lm import LanguageModel
from rnnlab.precision import PRECISIONS
from rnnlab.tasks import lm_run as run
from rnnlab.tasks.lm_run import evaluate_checkpoint
from rnnlab.training.budget import LADDERS, SIZES
from rnnlab.training.config import (PRESETS, BatchOptions, DataOptions, LoopOptions, ModelOptions, TrainConfig,
                                    make_config)
from rnnlab.training.state import RESUMABLE
from rnnlab.fileio import check_input_file, read_regular_file
from rnnlab.generation import MAX_BEAM, write_stream


def cmd_demo(args) -> int:
    """Train a small character LSTM on the built-in corpus for ``--seconds`` and sample from it."""
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
              f"{fmt(summary['tokens_per_second'], ',.0f')} tokens/s over {summary['seconds']:.0f} s of training steps")
        print(f"validation perplexity {fmt(summary['val_perplexity'], '.3f')} "
              f"({fmt(summary['val_bits_per_token'], '.3f')} bits/char); baselines on the same text: "
              f"{summary['ngram_order']}-gram Kneser-Ney {fmt(summary['ngram_val_perplexity'], '.3f')}, "
              f"add-one unigram {fmt(summary['unigram_val_perplexity'], '.3f')}")
        print(f"checkpoint {args.out}  (try: rnnlab generate {args.out} --prefix 'The ')")
        print("sample (temperature 0.7):")
        print(sample)
    emit(summary, args.json)
    return 0




def cmd_train(args) -> int:
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if args.no_clip:
        if "clip" in given:
            raise UsageError(f"--no-clip and --clip {given['clip']} contradict each other; give one")
        given["clip"] = None
    if args.resume:  # RESUMABLE: what a resume may change, besides --out and --corpus (a moved copy of the data)
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
              f"({summary['seconds']:.1f} s of training steps at {fmt(summary['tokens_per_second'], ',.0f')} tokens/s, "
              f"{summary['precision']}); stopped by {summary['stopped']}")
        print(f"train perplexity {fmt(summary['train_perplexity'], '.3f')}")
        print(f"val perplexity   {fmt(summary['val_perplexity'], '.3f')} ({fmt(summary['val_bits_per_token'], '.3f')} "
              f"bits/token, {fmt(summary['val_nats_per_char'], '.4f')} nats/char; best "
              f"{fmt(summary['best_val_perplexity'], '.3f')})")
        if summary["ngram_val_perplexity"] is not None:
            print(f"baselines        val perplexity {fmt(summary['ngram_val_perplexity'], '.3f')} for a "
                  f"{summary['ngram_order']}-gram Kneser-Ney model, {fmt(summary['unigram_val_perplexity'], '.3f')} "
                  "for add-one unigrams")
        if summary.get("sample") is not None:
            print(f"sample           {summary['sample']!r}")
        if summary["out"]:
            print(f"checkpoint       {summary['out']}")
    emit(summary, args.json)
    return 0


def cmd_eval(args) -> int:
    result = evaluate_checkpoint(args.checkpoint, split=args.split, text_path=args.text, data_dir=args.data_dir,
                                 encoding_errors=args.encoding_errors, corpus=args.corpus)
    if not args.json:
        print(f"source          {result['source']}")
        print(f"perplexity      {fmt(result['perplexity'], '.4f')}")
        print(f"bits per token  {fmt(result['bits_per_token'], '.4f')}")
        print(f"bits per char   {fmt(result['bits_per_char'], '.4f')} ({fmt(result['nats_per_char'], '.4f')} nats/char "
              f"over {result['chars']:,} characters)")
        print(f"tokens          {result['tokens']:,} scored, {result['unknown_tokens']:,} unknown (<unk>)")
    emit(result, args.json)
    return 0


def _prompts(args) -> list[str]:
    """The prompts of ``generate``: ``--prefix`` (repeatable, default 'the') or ``--prefix-file``."""
    if args.prompts_per_line and args.prefix_file is None:
        raise UsageError("--prompts-per-line reads --prefix-file FILE; give the file")
    if args.prefix_file is None:
        return args.prefix or ["the"]
    if args.prefix:
        raise UsageError("give --prefix or --prefix-file, not both")
    if not args.prefix_file:
        raise UsageError("--prefix-file needs a file name")
    label = f"--prefix-file {args.prefix_file}"
    try:
        data = read_regular_file(check_input_file(args.prefix_file, label), label)
    except OSError as exc:  # no permission, an I/O error
        raise DataError(f"cannot read {label}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark some editors write is not part of the prompt
    except UnicodeDecodeError as exc:
        raise DataError(f"{label} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        "save it as UTF-8") from None
    if args.prompts_per_line:
        prompts = [line for line in text.splitlines() if line.strip()]
    else:  # the whole file is one prompt; the line break an editor adds at the end is not part of it
        prompts = [text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text]
    if not any(p.strip() for p in prompts):
        raise DataError(f"{label} holds no prompt (it is empty or only white space)")
    return prompts


def cmd_generate(args) -> int:
    if args.num_samples < 1:
        raise UsageError(f"--num-samples must be >= 1, got {args.num_samples}")
    options = dict(greedy=args.greedy, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    if args.beam is not None:
        if not 1 <= args.beam <= MAX_BEAM:
            raise UsageError(f"--beam must be an integer from 1 to {MAX_BEAM:,}, got {args.beam}")
        if args.num_samples > 1:
            raise UsageError("--beam finds one text per prompt; drop --num-samples")
        if args.greedy or args.temperature != 1.0 or args.top_k or args.top_p != 1.0 or args.seed is not None:
            raise UsageError("--beam searches, it does not sample: drop --greedy, --temperature, --top-k, "
                             "--top-p and --seed")
    elif args.length_penalty is not None:
        raise UsageError("--length-penalty steers beam search; add --beam N")
    if args.length_penalty is not None and not 0 <= args.length_penalty < float("inf"):
        raise UsageError(f"--length-penalty must be a finite number >= 0, got {args.length_penalty}")
    prompts = _prompts(args)
    lm = LanguageModel.load(args.checkpoint, device=args.device)
    stop = args.stop or []
    lm.stop_ids(stop, "--stop")
    if args.beam is not None:
        penalty = 1.0 if args.length_penalty is None else args.length_penalty
        results = [lm.beam_search(p, args.length, args.beam, penalty, stop) for p in prompts]
        options = {"beam": args.beam, "length_penalty": penalty, "stop": stop}
    elif len(prompts) > 1 or args.num_samples > 1 or args.json:
        # Side by side in one batch; with --seed, sample j of every prompt is the text of --seed SEED+j.
        results = lm.generate_prompts(prompts, args.length, args.num_samples, seed=args.seed, stop=stop, **options)
        options["stop"] = stop
    else:  # one prompt, one sample, printed: stream it as it is generated
        sys.stdout.write(lm.prefix_text(prompts[0]))
        write_stream(lm.stream(prompts[0], args.length, seed=args.seed, stop=stop, **options), sys.stdout)
        sys.stdout.write("\n")
        return 0
    if not args.json:
        for result in results:
            print(result.text)
    summary = {"samples": [r.text for r in results], "prefix": prompts[0], "prompts": prompts,
               "length": args.length, **options,
               "texts": [{"prompt": r.prompt, "text": r.text, "log_prob": r.log_prob,
                          **({"score": r.score} if r.score is not None else {})} for r in results]}
    emit(summary, args.json)
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
    demo.add_argument("--precision", default=None, choices=PRECISIONS,
                      help="fp32, bf16 or auto (default auto: bf16 where the CPU supports it natively)")
    demo.add_argument("--model", default=None, choices=tuple(LADDERS), help="the model (default lstm)")
    demo.add_argument("--size", default=None, choices=("auto", *SIZES),
                      help="the model's size (default auto: the largest the budget pays for)")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=cmd_demo, saves_checkpoint=True)

    train = commands.add_parser("train", help="train a recurrent language model",
                                description="Train an RNN/GRU/LSTM (or the from-scratch RNN) language model. "
                                            "Defaults suit your own text: a 2-layer LSTM with Adam.")
    add_corpus_options(train, mode_default=None, token_default=None, held_out=True)
    train.add_argument("--preset", default=None, help=f"the book's experiments: {', '.join(PRESETS)}")
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
    gen.add_argument("--prefix", action="append", default=None, metavar="TEXT",
                     help="warm-up text (default 'the'); repeat it for several prompts, generated in one batch")
    gen.add_argument("--prefix-file", default=None, metavar="FILE",
                     help="read the prompt from a UTF-8 file (all of it, less one final line break)")
    gen.add_argument("--prompts-per-line", action="store_true",
                     help="with --prefix-file: every non-blank line is a prompt, generated in one batch")
    gen.add_argument("--length", type=int, default=200, help="tokens to generate (default 200)")
    gen.add_argument("--greedy", action="store_true", help="always take the most likely token")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (0 = all)")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1 = off)")
    gen.add_argument("--num-samples", type=int, default=1,
                     help="samples to generate (default 1); several are generated side by side in one batch")
    gen.add_argument("--beam", type=int, default=None, metavar="N",
                     help="beam search with N hypotheses instead of sampling (1 = greedy)")
    gen.add_argument("--length-penalty", type=float, default=None, metavar="A",
                     help="with --beam: rank endings by log-probability / tokens^A (default 1: per token)")
    gen.add_argument("--stop", action="append", default=None, metavar="TOKEN",
                     help="the text ends after this token (repeatable; with --beam: a hypothesis ends there), "
                          "e.g. --stop .")
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--json", action="store_true")
    gen.set_defaults(handler=cmd_generate)
