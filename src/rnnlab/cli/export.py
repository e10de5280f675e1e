"""``rnnlab score`` (a text's log-probability, per token if asked) and ``rnnlab export``
(a language model as an ONNX or TorchScript graph); see rnnlab.scoring and rnnlab.export."""
from __future__ import annotations

import sys

from rnnlab.cli.common import add_overwrite_option, emit, fmt, output_file
from rnnlab.data.corpus import read_text_file
from rnnlab.fileio import check_input_file
from rnnlab.jsonout import dumps
from rnnlab.lm import LanguageModel, load_scorer
from rnnlab.scoring import score_text


def cmd_score(args) -> int:
    path = check_input_file(args.text, f"--text {args.text}")
    text = read_text_file(path, args.encoding_errors)
    model, vocab, mode, token, description = load_scorer(args.checkpoint)
    result = score_text(model, vocab, mode, token, text, per_token=args.per_token, top=args.top, what=str(path))
    summary = {"source": str(path), "model": description, "mode": mode, **result.to_dict()}
    if args.per_token:  # JSON Lines: one object per scored token, then the summary
        for item in result.per_token:
            sys.stdout.write(dumps({"token": item.token, "id": item.id, "offset": item.offset,
                                    "log_prob": item.log_prob, "rank": item.rank, "top": item.top}) + "\n")
        print(dumps(summary))
        return 0
    if not args.json:
        print(f"source           {path}")
        print(f"model            {description}, {token} tokens, {mode} mode")
        print(f"log-probability  {result.log_prob:.4f} nats")
        print(f"tokens           {result.tokens:,} scored (the first is context only), "
              f"{result.unknown_tokens:,} unknown (<unk>)")
        print(f"characters       {result.chars:,} covered by the scored tokens")
        print(f"nats per char    {fmt(result.nats_per_char, '.4f')}")
        print(f"bits per char    {fmt(result.bits_per_char, '.4f')}")
        print(f"perplexity       {fmt(result.perplexity, '.4f')} per token")
    emit(summary, args.json)
    return 0


def cmd_export(args) -> int:
    # lazy: keeps rnnlab --help from loading rnnlab.export
    from rnnlab.export import check_request, export_model, vocab_path

    lm = LanguageModel.load(args.checkpoint)
    check_request(lm.model, args.format, args.quantize)
    out = output_file(args.out, "--out", args.overwrite)
    output_file(str(vocab_path(out)), "--out's vocabulary file", args.overwrite)
    result = export_model(lm, args.format, out, quantize=args.quantize)
    if not args.json:
        kind = f"{args.format}{' int8' if args.quantize else ' float32'}"
        print(f"graph       {result['out']} ({kind}, {result['bytes']:,} bytes)")
        print(f"vocabulary  {result['vocab']}")
        print(f"inputs      {', '.join(result['inputs'])}; outputs {', '.join(result['outputs'])}")
        print(f"check       max |difference| from PyTorch {result['max_abs_difference']:.3g} "
              "(logits and state, 2 x 8 random tokens)")
    emit(result, args.json)
    return 0


def add_parser(commands) -> None:
    """Register ``score`` and ``export`` on the main parser's subparsers."""
    score = commands.add_parser("score", help="log-probability of a text under a language-model or n-gram folder",
                                description="Total log-probability, nats and bits per character and per-token "
                                            "perplexity of a UTF-8 text, read as one stream (rnnlab.scoring).")
    score.add_argument("checkpoint", metavar="DIR")
    score.add_argument("--text", required=True, metavar="FILE", help="the UTF-8 text to score")
    score.add_argument("--per-token", action="store_true",
                       help="JSON Lines: each scored token with its offset, log-prob, rank and top alternatives, "
                            "then the summary")
    score.add_argument("--top", type=int, default=5, help="alternatives per token with --per-token (default 5)")
    score.add_argument("--encoding-errors", default="strict", help="strict (default), replace or ignore")
    score.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    score.set_defaults(handler=cmd_score)

    export = commands.add_parser("export", help="write a language model as an ONNX or TorchScript graph",
                                 description="A graph from token ids (batch, time) and the state to logits and "
                                             "the new state, plus FILE.vocab.json (rnnlab.export).")
    export.add_argument("checkpoint", metavar="DIR")
    export.add_argument("--format", required=True, choices=("onnx", "torchscript"))
    export.add_argument("--quantize", default=None, choices=("int8",), help="dynamic int8 quantization")
    export.add_argument("--out", required=True, metavar="FILE", help="the graph file (FILE.vocab.json beside it)")
    add_overwrite_option(export, "FILE and FILE.vocab.json")
    export.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    export.set_defaults(handler=cmd_export)
