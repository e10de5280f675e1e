"""``rnnlab classify``: many-to-one, a label per text or per numeric sequence (see
rnnlab.tasks.classify and rnnlab.data.labelled)."""
from __future__ import annotations

from rnnlab.checkpoint import load_config
from rnnlab.cli.common import NoteGiven, add_overwrite_option, aligned_table, emit, help_handler, output_file
from rnnlab.cli.tasks_common import add_fit_options, add_run_options, hold_out, report_training, start_or_resume
from rnnlab.errors import UsageError
from rnnlab.plots import confusion_plot
from rnnlab.tasks.base import load_task
from rnnlab.tasks.loop import fit


def _read_texts(args, path: str, labelled: bool = True, frames: bool = False):
    """Texts, or with ``frames`` numeric sequences (one row per time step), from a CSV/TSV file."""
    # lazy: keeps rnnlab --help from loading rnnlab.data.labelled
    from rnnlab.data.labelled import read_feature_sequences, read_table
    label_col = args.label_col if labelled else None
    if frames:
        return read_feature_sequences(path, id_col=args.id_col, step_col=args.step_col, label_col=label_col,
                                      sep=args.sep, max_steps=args.max_len,
                                      ignore_cols=() if labelled else (getattr(args, "label_col", "label"),))
    return read_table(path, text_col=args.text_col, label_col=label_col, sep=args.sep, max_tokens=args.max_len)


def _load_classifier(folder):
    """(task, model, is it a classifier of numeric sequences) from a classifier folder."""
    # lazy: keeps rnnlab --help from loading rnnlab.tasks.classify
    from rnnlab.tasks.classify import ClassificationTask, FeatureClassificationTask
    saved = load_config(folder, kind=ClassificationTask.kind).get("task")
    frames = isinstance(saved, dict) and "mean" in saved  # anything else: load_task names the bad key
    task, model, _ = load_task(folder, FeatureClassificationTask if frames else ClassificationTask)
    return task, model, frames


def cmd_classify_train(args) -> int:
    # lazy: keeps rnnlab --help from loading rnnlab.tasks.classify
    from rnnlab.tasks.classify import ClassificationTask, FeatureClassificationTask

    out, resumed, options = start_or_resume(args, ClassificationTask)
    frames = args.frames or bool(resumed and isinstance(resumed[0], FeatureClassificationTask))
    train = _read_texts(args, args.data, frames=frames)
    val = _read_texts(args, args.val, frames=frames) if args.val else None
    if val is None:
        train, val = hold_out(train, args.val_fraction, args.seed)
    if resumed:
        task, model = resumed
        task.check_labels(train, args.data)
    elif frames:
        task = FeatureClassificationTask.from_examples(train, metric=args.metric)
    else:
        task = ClassificationTask.from_examples(train, tokens=args.tokens, lowercase=not args.keep_case,
                                                metric=args.metric)
    if not resumed:
        model = task.build_model(seed=args.seed, cell=args.cell, embed_size=args.embed_size,
                                 hidden_size=args.hidden_size, num_layers=args.layers,
                                 bidirectional=not args.unidirectional, pooling=args.pooling, dropout=args.dropout)
    if val:
        task.check_labels(val, args.val or f"{args.data} (held-out rows)")
    summary = fit(task, model.train(), train, val, options, out_dir=out, resume=resumed is not None)
    summary.update(task="classify", train_examples=len(train), val_examples=len(val) if val else 0,
                   labels=task.labels, vocab_size=len(task.vocab))
    shape, scores = model.config(), summary["scores"]
    report_training(summary, f"{'bidirectional ' if shape['bidirectional'] else ''}{shape['cell']}, "
                    f"{shape['pooling']} pooling",
                    f"accuracy {scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f} (majority class "
                    f"{scores['majority_accuracy']:.4f}) on {scores['examples']:,} {summary['validated_on']} examples",
                    out, args.json)
    return 0


def _classification_lines(report: dict) -> list[str]:
    lines = [f"examples   {report['examples']:,}",
             f"accuracy   {report['accuracy']:.4f} (always the majority class: {report['majority_accuracy']:.4f})",
             f"macro-F1   {report['macro_f1']:.4f}", ""]
    rows = [["label", "precision", "recall", "f1", "support"]]
    for label, s in report["per_class"].items():
        rows.append([label, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}", str(s["support"])])
    lines += aligned_table(rows) + ["", "confusion (rows: true label, columns: predicted)"]
    labels = report["labels"]
    rows = [[label] + [str(count) for count in row] for label, row in zip(labels, report["confusion"])]
    lines += aligned_table([[""] + labels] + rows)
    return lines


def cmd_classify_eval(args) -> int:
    from rnnlab.data.labelled import check_max_len  # lazy: keeps rnnlab --help from loading rnnlab.data.labelled
    check_max_len(args.max_len)
    plot = output_file(args.plot, "--plot", args.overwrite, figure=True)
    task, model, frames = _load_classifier(args.model)
    examples = _read_texts(args, args.data, frames=frames)
    task.check_labels(examples, args.data)
    report = task.evaluate(model, examples)
    if plot:
        confusion_plot(report["confusion"], report["labels"], plot, title=f"{args.model} on {args.data}")
        report["plot"] = plot
    if not args.json:
        print("\n".join(_classification_lines(report)))
    emit(report, args.json)
    return 0


def cmd_classify_predict(args) -> int:
    from rnnlab.data.labelled import check_max_len  # lazy: keeps rnnlab --help from loading rnnlab.data.labelled
    if (args.text is None) == (args.data is None):
        raise UsageError("give one text or --data FILE (a CSV/TSV with a --text-col column)")
    check_max_len(args.max_len)
    task, model, frames = _load_classifier(args.model)
    if frames:
        if args.data is None:
            raise UsageError("this classifier reads numeric sequences: give --data FILE (one row per time step)")
        predictions = task.predict(model, _read_texts(args, args.data, labelled=False, frames=True))
        if not args.json:
            for prediction in predictions:
                ranked = sorted(prediction["probabilities"].items(), key=lambda item: -item[1])
                print(f"{prediction['id']}\t{prediction['label']}\t"
                      + " ".join(f"{label}={p:.3f}" for label, p in ranked[:5]))
        emit({"predictions": predictions}, args.json)
        return 0
    if args.text is not None:  # counted as --data rows are: whitespace-separated tokens
        check_max_len(args.max_len, len(args.text.split()))
    texts = [args.text] if args.text is not None else [e.text for e in _read_texts(args, args.data, labelled=False)]
    if not any(task.tokenize(text) for text in texts):
        raise UsageError("the text is empty")
    predictions = task.predict(model, texts)
    if not args.json:
        for prediction in predictions:
            ranked = sorted(prediction["probabilities"].items(), key=lambda item: -item[1])
            print(f"{prediction['label']}\t" + " ".join(f"{label}={p:.3f}" for label, p in ranked[:5])
                  + (f"\t{prediction['text']}" if args.data else ""))
    emit({"predictions": predictions}, args.json)
    return 0


def add_parser(commands) -> None:
    """Register ``rnnlab classify`` and its subcommands on the main parser's subparsers."""
    classify = commands.add_parser("classify", help="many-to-one: a label per text (CSV/TSV)")
    classify.set_defaults(handler=help_handler(classify))  # no subcommand
    cl = classify.add_subparsers(dest="classify_command", metavar="SUBCOMMAND")

    def columns(parser, label: bool = True) -> None:
        parser.add_argument("--text-col", default="text", help="the column of the texts (default 'text')")
        parser.add_argument("--id-col", default="id",
                            help="numeric sequences: the column naming each sequence (default 'id')")
        parser.add_argument("--step-col", default="step",
                            help="numeric sequences: the column of the time step (default 'step')")
        if label:
            parser.add_argument("--label-col", default="label", help="the column of the labels (default 'label')")
        parser.add_argument("--sep", default=None,
                            help="column separator: a character or tab/comma/semicolon/pipe (default: a tab for "
                                 ".tsv files, else detected from the header)")

    train = cl.add_parser("train", help="train a recurrent classifier")
    add_run_options(train, "training file (CSV/TSV with a header)")
    columns(train)
    model = train.add_argument_group("model")
    flag = {"action": NoteGiven, "nargs": 0, "default": False}  # store_true, noted for --resume
    model.add_argument("--cell", choices=("rnn", "gru", "lstm"), default="lstm", action=NoteGiven,
                       help="recurrent cell (default lstm)")
    model.add_argument("--unidirectional", **flag, help="read left to right only")
    model.add_argument("--pooling", choices=("last", "mean", "max"), default="max", action=NoteGiven,
                       help="sequence summary: final states, mean or max of the outputs (default max)")
    model.add_argument("--tokens", choices=("word", "char"), default="word", action=NoteGiven,
                       help="word or character tokens")
    model.add_argument("--frames", **flag,
                       help="numeric sequences (speech frames...): one row per time step with --id-col, "
                            "--step-col, --label-col and feature columns (every other column)")
    model.add_argument("--keep-case", **flag, help="do not lowercase the texts")
    model.add_argument("--metric", choices=("accuracy", "macro_f1"), default="accuracy", action=NoteGiven,
                       help="validation score to maximise (default accuracy)")
    add_fit_options(train, batch_size=32, lr=2e-3, dropout=0.3, max_len=5000)
    add_overwrite_option(train, "a classifier")
    train.add_argument("--json", action="store_true", help="also print the summary as JSON")
    train.set_defaults(handler=cmd_classify_train)

    ev = cl.add_parser("eval", help="accuracy, macro-F1, per-class scores and the confusion matrix")
    ev.add_argument("model", help="classifier folder")
    ev.add_argument("--data", required=True, help="labelled CSV/TSV file")
    columns(ev)
    ev.add_argument("--max-len", type=int, default=None, help="refuse a text of more tokens than this")
    ev.add_argument("--plot", default=None, help="also draw the confusion matrix into this PNG/SVG/PDF file")
    add_overwrite_option(ev, "the --plot file")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(handler=cmd_classify_eval)

    pr = cl.add_parser("predict", help="the label and class probabilities of a text (or of every row of --data)")
    pr.add_argument("model", help="classifier folder")
    pr.add_argument("text", nargs="?", default=None, help="the text to classify")
    pr.add_argument("--data", default=None, help="a CSV/TSV file: one prediction per row")
    columns(pr, label=False)
    pr.add_argument("--max-len", type=int, default=None,
                    help="refuse a text of more whitespace-separated tokens (numeric sequences: steps) than this")
    pr.add_argument("--json", action="store_true", help="print the predictions as JSON")
    pr.set_defaults(handler=cmd_classify_predict)
