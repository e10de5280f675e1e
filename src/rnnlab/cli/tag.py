"""``rnnlab tag``: many-to-many, a tag per token of CoNLL sentences (see rnnlab.tasks.tag and
rnnlab.data.labelled)."""
from __future__ import annotations

from rnnlab.cli.common import NoteGiven, add_overwrite_option, aligned_table, emit, help_handler
from rnnlab.cli.tasks_common import add_fit_options, add_run_options, hold_out, report_training, start_or_resume
from rnnlab.errors import UsageError
from rnnlab.tasks.base import load_task
from rnnlab.tasks.loop import fit


def cmd_tag_train(args) -> int:
    from rnnlab.data.labelled import read_conll  # lazy: keeps rnnlab --help from loading rnnlab.data.labelled
    from rnnlab.tasks.tag import TaggingTask  # lazy: keeps rnnlab --help from loading rnnlab.tasks.tag

    out, resumed, options = start_or_resume(args, TaggingTask)
    train = read_conll(args.data, tag_col=args.tag_col, max_tokens=args.max_len)
    val = read_conll(args.val, tag_col=args.tag_col, max_tokens=args.max_len) if args.val else None
    if val is None:
        train, val = hold_out(train, args.val_fraction, args.seed)
    if resumed:
        task, model = resumed
        task.check_tags(train, args.data)
    else:
        task = TaggingTask.from_examples(train, lowercase=not args.keep_case)
        model = task.build_model(seed=args.seed, embed_size=args.embed_size, hidden_size=args.hidden_size,
                                 num_layers=args.layers, dropout=args.dropout, char_embed_size=args.char_size,
                                 char_hidden_size=args.char_size, crf=args.crf)
    if val:
        task.check_tags(val, args.val or f"{args.data} (held-out sentences)")
    summary = fit(task, model.train(), train, val, options, out_dir=out, resume=resumed is not None)
    summary.update(task="tag", train_sentences=len(train), val_sentences=len(val) if val else 0,
                   tags=task.tags, vocab_size=len(task.words))
    scores = summary["scores"]
    report_training(summary, f"word + character BiLSTM{'-CRF' if model.crf is not None else ''} tagger",
                    f"entity F1 {scores['entity_f1']:.4f} (P {scores['entity_precision']:.4f}, R "
                    f"{scores['entity_recall']:.4f}), token accuracy {scores['token_accuracy']:.4f} on "
                    f"{scores['sentences']:,} {summary['validated_on']} sentences", out, args.json)
    return 0


def _tagging_lines(report: dict) -> list[str]:
    lines = [f"sentences  {report['sentences']:,} ({report['tokens']:,} tokens, {report['entities']:,} entities)",
             f"entity F1  {report['entity_f1']:.4f} (precision {report['entity_precision']:.4f}, recall "
             f"{report['entity_recall']:.4f}; exact span and type, as conlleval)",
             f"token acc  {report['token_accuracy']:.4f}", ""]
    rows = [["type", "precision", "recall", "f1", "support", "predicted"]]
    for kind, s in report["per_type"].items():
        rows.append([kind, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}", str(s["support"]),
                     str(s["predicted"])])
    return lines + (aligned_table(rows) if len(rows) > 1 else [])


def cmd_tag_eval(args) -> int:
    from rnnlab.data.labelled import check_max_len, read_conll  # lazy: keeps rnnlab --help from loading rnnlab.data.labelled
    from rnnlab.tasks.tag import TaggingTask  # lazy: keeps rnnlab --help from loading rnnlab.tasks.tag

    check_max_len(args.max_len)
    task, model, _ = load_task(args.model, TaggingTask)
    sentences = read_conll(args.data, tag_col=args.tag_col, max_tokens=args.max_len)
    task.check_tags(sentences, args.data)
    report = task.evaluate(model, sentences)
    if not args.json:
        print("\n".join(_tagging_lines(report)))
    emit(report, args.json)
    return 0


def cmd_tag_predict(args) -> int:
    from rnnlab.data.labelled import check_max_len, read_conll  # lazy: keeps rnnlab --help from loading rnnlab.data.labelled
    from rnnlab.tasks.tag import TaggingTask  # lazy: keeps rnnlab --help from loading rnnlab.tasks.tag

    if (args.text is None) == (args.data is None):
        raise UsageError("give one sentence or --data FILE (CoNLL: a token per line, blank lines between sentences)")
    check_max_len(args.max_len)
    task, model, _ = load_task(args.model, TaggingTask)
    if args.text is not None:
        sentences = [args.text.split()]
        if not sentences[0]:
            raise UsageError("the sentence is empty")
        check_max_len(args.max_len, len(sentences[0]), "the sentence")
    else:
        sentences = [list(s.tokens) for s in read_conll(args.data, tagged=False, max_tokens=args.max_len)]
    predictions = task.predict(model, sentences)
    if not args.json:
        for index, pairs in enumerate(predictions):
            if index:
                print()
            for token, tag in pairs:
                print(f"{token}\t{tag}")
    emit({"predictions": predictions}, args.json)
    return 0


def add_parser(commands) -> None:
    """Register ``rnnlab tag`` and its subcommands on the main parser's subparsers."""
    tag = commands.add_parser("tag", help="many-to-many: a tag per token (CoNLL: named entities, parts of speech)")
    tag.set_defaults(handler=help_handler(tag))  # no subcommand
    tg = tag.add_subparsers(dest="tag_command", metavar="SUBCOMMAND")

    def tag_col(parser) -> None:
        parser.add_argument("--tag-col", type=int, default=-1,
                            help="the column of the tags, from 0 (negative: from the end; default -1, the last)")

    train = tg.add_parser("train", help="train a word + character BiLSTM tagger")
    add_run_options(train, "training file (CoNLL columns: token first, tag last)")
    tag_col(train)
    model = train.add_argument_group("model")
    model.add_argument("--char-size", type=int, default=25, action=NoteGiven,
                       help="character embedding and character-LSTM size (0: no character encoder; default 25)")
    flag = {"action": NoteGiven, "nargs": 0, "default": False}  # store_true, noted for --resume
    model.add_argument("--keep-case", **flag, help="do not lowercase words for the word embedding")
    model.add_argument("--crf", **flag,
                       help="a CRF output layer: score whole tag sequences, predict the best one (Viterbi)")
    add_fit_options(train, batch_size=16, lr=2e-3, dropout=0.5, max_len=1000)
    add_overwrite_option(train, "a tagger")
    train.add_argument("--json", action="store_true", help="also print the summary as JSON")
    train.set_defaults(handler=cmd_tag_train)

    ev = tg.add_parser("eval", help="entity precision/recall/F1 (conlleval's counting) and token accuracy")
    ev.add_argument("model", help="tagger folder")
    ev.add_argument("--data", required=True, help="tagged CoNLL file")
    tag_col(ev)
    ev.add_argument("--max-len", type=int, default=None, help="refuse a sentence of more tokens than this")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(handler=cmd_tag_eval)

    pr = tg.add_parser("predict", help="a tag for each token of a sentence (or of every sentence of --data)")
    pr.add_argument("model", help="tagger folder")
    pr.add_argument("text", nargs="?", default=None, help="the sentence, tokens separated by spaces")
    pr.add_argument("--data", default=None, help="a CoNLL file (token first; other columns ignored)")
    pr.add_argument("--max-len", type=int, default=None, help="refuse a sentence of more tokens than this")
    pr.add_argument("--json", action="store_true", help="print the token/tag pairs as JSON")
    pr.set_defaults(handler=cmd_tag_predict)
