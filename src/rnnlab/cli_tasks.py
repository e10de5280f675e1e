"""The ``classify`` and ``tag`` command families (parsers and thin handlers).

``rnnlab.cli.build_parser`` calls :func:`add_task_commands`; the work is done by
:mod:`rnnlab.tasks` and :mod:`rnnlab.data.labelled`. Conventions are those of
:mod:`rnnlab.cli` (``--json``: one JSON object on the last stdout line).
"""
from __future__ import annotations

import argparse
import sys

from rnnlab.errors import UsageError

VAL_FRACTION = 0.1  # held out of --data for early stopping when no --val file is given


def _add_fit_options(parser: argparse.ArgumentParser, batch_size: int, lr: float, dropout: float,
                     max_len: int) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=20, help="most passes over the data (default 20)")
    group.add_argument("--max-time", type=float, default=None, metavar="SECONDS",
                       help="stop after this many seconds of training (the epoch in progress is cut short)")
    group.add_argument("--patience", type=int, default=4,
                       help="stop after this many epochs without a better validation score (0: never; default 4)")
    group.add_argument("--batch-size", type=int, default=batch_size, help=f"sequences per step (default {batch_size})")
    group.add_argument("--lr", type=float, default=lr, help=f"Adam learning rate (default {lr})")
    group.add_argument("--clip", type=float, default=5.0, help="gradient-norm clipping threshold (default 5)")
    group.add_argument("--dropout", type=float, default=dropout, help=f"dropout (default {dropout})")
    group.add_argument("--hidden-size", type=int, default=128, help="recurrent units per direction (default 128)")
    group.add_argument("--embed-size", type=int, default=100, help="word embedding size (default 100)")
    group.add_argument("--layers", type=int, default=1, help="stacked recurrent layers (default 1)")
    group.add_argument("--seed", type=int, default=0, help="seed of the weights, data order and held-out split")
    group.add_argument("--max-len", type=int, default=max_len,
                       help=f"refuse a sequence of more tokens than this (default {max_len})")
    group.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                       help=f"without --val, hold out this fraction of --data for early stopping (default "
                            f"{VAL_FRACTION}; 0: none, the best epoch is then the last)")


def _fit_options(args):
    from rnnlab.tasks.loop import FitOptions
    return FitOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, clip=args.clip,
                      max_time=args.max_time, patience=args.patience, seed=args.seed)


def _start_or_resume(args, task_class):
    """(output folder, task and model if resuming else None, FitOptions) before any data is read."""
    from dataclasses import asdict

    from rnnlab.checkpoint import prepare_output_folder
    from rnnlab.tasks.base import load_task
    from rnnlab.tasks.loop import FitOptions

    if args.resume is None:
        if args.out is None:
            raise UsageError("give --out DIR (a new run) or --resume DIR (continue one)")
        return prepare_output_folder(args.out, task_class.kind, overwrite=args.overwrite), None, \
            _fit_options(args).validate()
    if args.out is not None and args.out != args.resume:
        raise UsageError("--resume continues the run in its own folder; leave out --out")
    task, model, config = load_task(args.resume, task_class)
    # the saved run's options, except how long to go on
    saved = {**config["training"]["options"], "epochs": args.epochs, "max_time": args.max_time}
    options = FitOptions(**{k: v for k, v in saved.items() if k in asdict(FitOptions())}).validate()
    args.seed = options.seed  # the held-out split of --data must be the one of the first run
    return args.resume, (task, model), options


def _hold_out(examples: list, fraction: float, seed: int) -> tuple[list, list | None]:
    if not 0 <= fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {fraction}")
    count = int(len(examples) * fraction)
    if count == 0:
        return examples, None
    import random
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths)))
            for row in rows]


def _train_lines(summary: dict, what: str) -> list[str]:
    rate = summary["train_examples_per_second"]
    return [f"model      {what} ({summary['parameters']:,} parameters, {summary['threads']} threads)",
            f"trained    {summary['epochs']} epochs, {summary['steps']:,} steps in {summary['train_seconds']:.1f} s "
            f"({rate:,.0f} sequences/s); stopped by {summary['stopped']}; best epoch {summary['best_epoch']}",
            f"best       {summary['validated_on']} {summary['metric']} {summary['best']:.4f}"]


# ----------------------------------------------------------------------------------
# classify


def _read_texts(args, path: str, labelled: bool = True, frames: bool = False):
    """Texts, or with ``frames`` numeric sequences (one row per time step), from a CSV/TSV file."""
    from rnnlab.data.labelled import read_feature_sequences, read_table
    label_col = args.label_col if labelled else None
    if frames:
        return read_feature_sequences(path, id_col=args.id_col, step_col=args.step_col, label_col=label_col,
                                      sep=args.sep, max_steps=args.max_len,
                                      ignore_cols=() if labelled else (getattr(args, "label_col", "label"),))
    return read_table(path, text_col=args.text_col, label_col=label_col, sep=args.sep, max_tokens=args.max_len)


def _load_classifier(folder):
    """(task, model, is it a classifier of numeric sequences) from a classifier folder."""
    from rnnlab.checkpoint import load_config
    from rnnlab.tasks.base import load_task
    from rnnlab.tasks.classify import ClassificationTask, FeatureClassificationTask
    frames = "mean" in load_config(folder, kind=ClassificationTask.kind).get("task", {})
    task, model, _ = load_task(folder, FeatureClassificationTask if frames else ClassificationTask)
    return task, model, frames


def cmd_classify_train(args) -> int:
    from rnnlab.cli import emit
    from rnnlab.tasks.classify import ClassificationTask, FeatureClassificationTask
    from rnnlab.tasks.loop import fit

    out, resumed, options = _start_or_resume(args, ClassificationTask)
    frames = args.frames or bool(resumed and isinstance(resumed[0], FeatureClassificationTask))
    train = _read_texts(args, args.data, frames=frames)
    val = _read_texts(args, args.val, frames=frames) if args.val else None
    if val is None:
        train, val = _hold_out(train, args.val_fraction, args.seed)
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
    if not args.json:
        shape = model.config()
        kind = f"{'bidirectional ' if shape['bidirectional'] else ''}{shape['cell']}, {shape['pooling']} pooling"
        for line in _train_lines(summary, kind):
            print(line)
        scores = summary["scores"]
        print(f"scores     accuracy {scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f} "
              f"(majority class {scores['majority_accuracy']:.4f}) on {scores['examples']:,} "
              f"{summary['validated_on']} examples")
        print(f"checkpoint {out}")
    emit(summary, args.json)
    return 0


def _classification_lines(report: dict) -> list[str]:
    lines = [f"examples   {report['examples']:,}",
             f"accuracy   {report['accuracy']:.4f} (always the majority class: {report['majority_accuracy']:.4f})",
             f"macro-F1   {report['macro_f1']:.4f}", ""]
    rows = [["label", "precision", "recall", "f1", "support"]]
    for label, s in report["per_class"].items():
        rows.append([label, f"{s['precision']:.4f}", f"{s['recall']:.4f}", f"{s['f1']:.4f}", str(s["support"])])
    lines += _table(rows) + ["", "confusion (rows: true label, columns: predicted)"]
    labels = report["labels"]
    rows = [[label] + [str(count) for count in row] for label, row in zip(labels, report["confusion"])]
    lines += _table([[""] + labels] + rows)
    return lines


def cmd_classify_eval(args) -> int:
    from rnnlab.cli import emit, output_file

    plot = output_file(args.plot, "--plot", args.overwrite, figure=True)
    task, model, frames = _load_classifier(args.model)
    examples = _read_texts(args, args.data, frames=frames)
    task.check_labels(examples, args.data)
    report = task.evaluate(model, examples)
    if plot:
        from rnnlab.plots import confusion_plot
        confusion_plot(report["confusion"], report["labels"], plot, title=f"{args.model} on {args.data}")
        report["plot"] = plot
    if not args.json:
        print("\n".join(_classification_lines(report)))
    emit(report, args.json)
    return 0


def cmd_classify_predict(args) -> int:
    from rnnlab.cli import emit

    if (args.text is None) == (args.data is None):
        raise UsageError("give one text or --data FILE (a CSV/TSV with a --text-col column)")
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


# ----------------------------------------------------------------------------------
# tag


def cmd_tag_train(args) -> int:
    from rnnlab.cli import emit
    from rnnlab.data.labelled import read_conll
    from rnnlab.tasks.loop import fit
    from rnnlab.tasks.tag import TaggingTask

    out, resumed, options = _start_or_resume(args, TaggingTask)
    train = read_conll(args.data, tag_col=args.tag_col, max_tokens=args.max_len)
    val = read_conll(args.val, tag_col=args.tag_col, max_tokens=args.max_len) if args.val else None
    if val is None:
        train, val = _hold_out(train, args.val_fraction, args.seed)
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
    if not args.json:
        for line in _train_lines(summary, f"word + character BiLSTM{'-CRF' if model.crf is not None else ''} tagger"):
            print(line)
        scores = summary["scores"]
        print(f"scores     entity F1 {scores['entity_f1']:.4f} (P {scores['entity_precision']:.4f}, "
              f"R {scores['entity_recall']:.4f}), token accuracy {scores['token_accuracy']:.4f} on "
              f"{scores['sentences']:,} {summary['validated_on']} sentences")
        print(f"checkpoint {out}")
    emit(summary, args.json)
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
    return lines + (_table(rows) if len(rows) > 1 else [])


def cmd_tag_eval(args) -> int:
    from rnnlab.cli import emit
    from rnnlab.data.labelled import read_conll
    from rnnlab.tasks.base import load_task
    from rnnlab.tasks.tag import TaggingTask

    task, model, _ = load_task(args.model, TaggingTask)
    sentences = read_conll(args.data, tag_col=args.tag_col, max_tokens=args.max_len)
    task.check_tags(sentences, args.data)
    report = task.evaluate(model, sentences)
    if not args.json:
        print("\n".join(_tagging_lines(report)))
    emit(report, args.json)
    return 0


def cmd_tag_predict(args) -> int:
    from rnnlab.cli import emit
    from rnnlab.data.labelled import read_conll
    from rnnlab.tasks.base import load_task
    from rnnlab.tasks.tag import TaggingTask

    if (args.text is None) == (args.data is None):
        raise UsageError("give one sentence or --data FILE (CoNLL: a token per line, blank lines between sentences)")
    task, model, _ = load_task(args.model, TaggingTask)
    if args.text is not None:
        sentences = [args.text.split()]
        if not sentences[0]:
            raise UsageError("the sentence is empty")
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


# ----------------------------------------------------------------------------------
# parsers


def add_task_commands(commands, add_overwrite_option) -> None:
    """Add ``classify`` and ``tag`` to the subparsers ``commands`` of the main parser."""
    classify = commands.add_parser("classify", help="many-to-one: a label per text (CSV/TSV)")
    classify.set_defaults(handler=lambda args: (classify.print_help(sys.stderr), 2)[1])
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
    train.add_argument("--data", required=True, help="training file (CSV/TSV with a header)")
    train.add_argument("--val", default=None, help="validation file (early stopping, best checkpoint)")
    train.add_argument("--out", default=None, help="output folder (the checkpoint, metrics.jsonl)")
    train.add_argument("--resume", default=None, metavar="DIR",
                       help="continue the run in DIR exactly where it stopped (give the same --data/--val; "
                            "--epochs and --max-time may change, the other options are the saved run's)")
    columns(train)
    model = train.add_argument_group("model")
    model.add_argument("--cell", choices=("rnn", "gru", "lstm"), default="lstm", help="recurrent cell (default lstm)")
    model.add_argument("--unidirectional", action="store_true", help="read left to right only")
    model.add_argument("--pooling", choices=("last", "mean", "max"), default="max",
                       help="sequence summary: final states, mean or max of the outputs (default max)")
    model.add_argument("--tokens", choices=("word", "char"), default="word", help="word or character tokens")
    model.add_argument("--frames", action="store_true",
                       help="numeric sequences (speech frames...): one row per time step with --id-col, "
                            "--step-col, --label-col and feature columns (every other column)")
    model.add_argument("--keep-case", action="store_true", help="do not lowercase the texts")
    model.add_argument("--metric", choices=("accuracy", "macro_f1"), default="accuracy",
                       help="validation score to maximise (default accuracy)")
    _add_fit_options(train, batch_size=32, lr=2e-3, dropout=0.3, max_len=5000)
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
    pr.add_argument("--max-len", type=int, default=None, help="refuse a text of more tokens than this")
    pr.add_argument("--json", action="store_true", help="print the predictions as JSON")
    pr.set_defaults(handler=cmd_classify_predict)

    tag = commands.add_parser("tag", help="many-to-many: a tag per token (CoNLL: named entities, parts of speech)")
    tag.set_defaults(handler=lambda args: (tag.print_help(sys.stderr), 2)[1])
    tg = tag.add_subparsers(dest="tag_command", metavar="SUBCOMMAND")

    def tag_col(parser) -> None:
        parser.add_argument("--tag-col", type=int, default=-1,
                            help="the column of the tags, from 0 (negative: from the end; default -1, the last)")

    train = tg.add_parser("train", help="train a word + character BiLSTM tagger")
    train.add_argument("--data", required=True, help="training file (CoNLL columns: token first, tag last)")
    train.add_argument("--val", default=None, help="validation file (early stopping, best checkpoint)")
    train.add_argument("--out", default=None, help="output folder (the checkpoint, metrics.jsonl)")
    train.add_argument("--resume", default=None, metavar="DIR",
                       help="continue the run in DIR exactly where it stopped (give the same --data/--val; "
                            "--epochs and --max-time may change, the other options are the saved run's)")
    tag_col(train)
    model = train.add_argument_group("model")
    model.add_argument("--char-size", type=int, default=25,
                       help="character embedding and character-LSTM size (0: no character encoder; default 25)")
    model.add_argument("--keep-case", action="store_true", help="do not lowercase words for the word embedding")
    model.add_argument("--crf", action="store_true",
                       help="a CRF output layer: score whole tag sequences, predict the best one (Viterbi)")
    _add_fit_options(train, batch_size=16, lr=2e-3, dropout=0.5, max_len=1000)
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


__all__ = ["add_task_commands"]
