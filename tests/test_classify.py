"""Sequence classification: CSV/TSV reading, metrics by hand, padding invariance for every
cell and pooling, a label decided far from the end, the CLI round trip and bad inputs."""
from __future__ import annotations

import json
import re

import pytest
import torch

from rnnlab.cli import main
from rnnlab.data.labelled import LabelledText, read_table
from rnnlab.errors import DataError, UsageError
from rnnlab.tasks.classify import ClassificationTask
from rnnlab.tasks.loop import FitOptions, fit
from rnnlab.tasks.metrics import classification_report
from rnnlab.tasks.synthetic import distant_cue_texts, write_csv

# ----------------------------------------------------------------------------------
# reading


def test_csv_with_quoted_fields_and_any_label_strings(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('id,text,label\n1,"hello, world",4.0\n2,"she said ""no""\nand left",neg\n\n3,plain,1\n')
    rows = read_table(path)
    assert rows == [LabelledText("hello, world", "4.0", 2), LabelledText('she said "no"\nand left', "neg", 3),
                    LabelledText("plain", "1", 6)]


def test_separator_from_suffix_header_or_option(tmp_path):
    tsv = tmp_path / "data.tsv"
    tsv.write_text("sentence\tpolarity\na, b; c\t1\n")
    assert read_table(tsv, text_col="sentence", label_col="polarity")[0].text == "a, b; c"
    semicolons = tmp_path / "data.txt"
    semicolons.write_text("text;label\nx, y;pos\n")
    assert read_table(semicolons)[0] == LabelledText("x, y", "pos", 2)
    assert read_table(semicolons, sep="semicolon")[0].label == "pos"
    with pytest.raises(UsageError, match="--sep"):
        read_table(semicolons, sep="::")


@pytest.mark.parametrize("text, options, message", [
    ("", {}, "the file is empty"),
    ("text,label\n", {}, "a header but no rows"),
    ("text,label\nhi,pos\n", {"label_col": "sentiment"}, "line 1: no column 'sentiment' \\(--label-col\\)"),
    ("body,label\nhi,pos\n", {}, "line 1: no column 'text' \\(--text-col\\); the header has 'body', 'label'"),
    ("text,label\nhi,pos\nhi,there,neg\n", {}, "line 3: 3 fields, the header has 2"),
    ("text,label\n,pos\n", {}, "line 2: the text is empty"),
    ("text,label\na b c d,pos\n", {"max_tokens": 3}, "line 2: a text of 4 tokens, above the limit of 3"),
])
def test_bad_tables(tmp_path, text, options, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        read_table(path, **options)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


# ----------------------------------------------------------------------------------
# metrics


def test_classification_report_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", "c", "c"]
    report = classification_report(gold, predicted, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                        "support": 3}
    assert report["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert report["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["majority_accuracy"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------------
# the model


@pytest.mark.parametrize("cell, bidirectional, pooling, layers", [
    ("lstm", True, "max", 1), ("lstm", True, "last", 2), ("gru", False, "last", 1), ("gru", True, "mean", 1),
    ("rnn", False, "mean", 2), ("rnn", True, "max", 1),
])
def test_padding_never_changes_a_prediction(cell, bidirectional, pooling, layers):
    texts = [LabelledText(" ".join(["w%d" % (i % 7)] * n), "x" if n % 2 else "y", n) for i, n in
             enumerate([3, 9, 14, 20, 27])]
    task = ClassificationTask.from_examples(texts)
    model = task.build_model(seed=0, cell=cell, bidirectional=bidirectional, pooling=pooling, num_layers=layers,
                             embed_size=8, hidden_size=12, dropout=0.1).eval()
    alone = task.probabilities(model, texts[:1])
    together = task.probabilities(model, texts)  # one batch, padded to 27 steps
    assert torch.allclose(alone[0], together[0], atol=1e-6, rtol=0)
    logits = model(*(lambda b: (b["tokens"], b["lengths"]))(next(task.batches(texts, 8))))
    assert logits.shape == (5, 2)


def test_label_decided_far_from_the_end():
    train, val, test = distant_cue_texts(600, seed=0), distant_cue_texts(100, seed=1), distant_cue_texts(300, seed=2)
    task = ClassificationTask.from_examples(train)
    model = task.build_model(seed=0, embed_size=16, hidden_size=24)
    summary = fit(task, model, train, val, FitOptions(epochs=6, lr=5e-3, early_stop=2))
    assert summary["best"] >= 0.95
    assert task.evaluate(model, test)["accuracy"] >= 0.95
    assert min(len(t.text.split()) for t in test) >= 16  # the cue is at least 15 tokens from the end


# ----------------------------------------------------------------------------------
# the CLI


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classify")
    write_csv(distant_cue_texts(400, seed=0), folder / "train.csv")
    write_csv(distant_cue_texts(100, seed=1), folder / "val.csv")
    write_csv(distant_cue_texts(100, seed=2), folder / "test.csv")
    out = folder / "model"
    assert main(["-q", "classify", "train", "--data", str(folder / "train.csv"), "--val", str(folder / "val.csv"),
                 "--out", str(out), "--epochs", "5", "--lr", "5e-3", "--hidden-size", "24", "--embed-size", "16",
                 "--cell", "gru", "--pooling", "mean"]) == 0
    return folder, out


def test_cli_train_eval_predict_round_trip(trained, capsys, tmp_path):
    folder, out = trained
    capsys.readouterr()
    plot = tmp_path / "confusion.png"
    assert main(["-q", "classify", "eval", str(out), "--data", str(folder / "test.csv"), "--json",
                 "--plot", str(plot)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["accuracy"] >= 0.9 and report["labels"] == ["neg", "pos"] and plot.stat().st_size > 0
    from rnnlab.tasks.base import load_task
    task, model, config = load_task(out, ClassificationTask)
    assert config["model"]["cell"] == "gru" and config["kind"] == "classifier"
    assert task.evaluate(model, read_table(folder / "test.csv"))["accuracy"] == report["accuracy"]
    assert main(["-q", "classify", "predict", str(out), "terrible " + "tree " * 20, "--json"]) == 0
    prediction = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"][0]
    assert prediction["label"] == "neg" and sum(prediction["probabilities"].values()) == pytest.approx(1)
    assert main(["-q", "classify", "predict", str(out), "--data", str(folder / "test.csv")]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 100


def test_unseen_label_and_unknown_column_on_the_command_line(trained, tmp_path, capsys):
    folder, out = trained
    path = tmp_path / "other.csv"
    path.write_text("text,label\ngreat day,pos\nso so,neutral\n")
    assert main(["-q", "classify", "eval", str(out), "--data", str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 3: label 'neutral' was never seen in training" in err and len(err.strip().splitlines()) == 1
    assert main(["-q", "classify", "eval", str(out), "--data", str(path), "--label-col", "y"]) == 1
    assert "no column 'y' (--label-col)" in capsys.readouterr().err
    assert main(["-q", "classify", "eval", str(folder), "--data", str(path)]) == 1  # not a checkpoint
    assert "error:" in capsys.readouterr().err
    (tmp_path / "mine.txt").write_text("user file")
    assert main(["-q", "classify", "train", "--data", str(folder / "train.csv"), "--out", str(tmp_path)]) == 2
    assert "not an rnnlab output folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------------
# numeric sequences (speech frames)


def test_numeric_sequences_from_a_csv(tmp_path):
    from rnnlab.data.labelled import read_feature_sequences
    from rnnlab.tasks.base import load_task, save_task
    from rnnlab.tasks.classify import FeatureClassificationTask
    from rnnlab.tasks.synthetic import tone_sequences, write_feature_csv
    write_feature_csv(tone_sequences(300, seed=0), tmp_path / "train.csv")
    write_feature_csv(tone_sequences(100, seed=1), tmp_path / "test.csv")
    train, test = read_feature_sequences(tmp_path / "train.csv"), read_feature_sequences(tmp_path / "test.csv")
    assert len(train) == 300 and train[0].features.shape[1] == 2 and train[0].id == "clip0"
    task = FeatureClassificationTask.from_examples(train)
    model = task.build_model(seed=0, cell="gru", hidden_size=16, pooling="mean", dropout=0.0)
    fit(task, model, train, None, FitOptions(epochs=6, lr=1e-2))
    accuracy = task.evaluate(model, test)["accuracy"]
    assert accuracy >= 0.9
    save_task(tmp_path / "tones", task, model, {})
    task2, model2, _ = load_task(tmp_path / "tones", FeatureClassificationTask)
    assert task2.evaluate(model2, test)["accuracy"] == accuracy
    predictions = task2.predict(model2, test[:2])
    assert predictions[0]["id"] == "clip0" and set(predictions[0]["probabilities"]) == {"high", "low"}


@pytest.mark.parametrize("text, message", [
    ("id,step,f0,label\na,0,1.0,x\na,1,oops,x\n", "line 3: feature 'f0' is 'oops', not a number"),
    ("id,step,f0,label\na,0,1.0,x\na,1,2.0,y\n", "line 3: sequence 'a' has label 'y' here but 'x' on line 2"),
    ("id,step,f0,label\na,0,1.0,x\na,0,2.0,x\n", "line 3: sequence 'a' has step 0 twice"),
    ("id,t,f0,label\na,0,1.0,x\n", "line 1: no column 'step'"),
])
def test_bad_numeric_sequences(tmp_path, text, message):
    from rnnlab.data.labelled import read_feature_sequences
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_feature_sequences(path)


def test_cli_resume_continues_exactly(trained, tmp_path, capsys):
    folder, _ = trained
    common = ["-q", "classify", "train", "--data", str(folder / "train.csv"), "--hidden-size", "8", "--embed-size",
              "8", "--patience", "0"]
    assert main([*common, "--out", str(tmp_path / "whole"), "--epochs", "2"]) == 0
    assert main([*common, "--out", str(tmp_path / "part"), "--epochs", "1"]) == 0
    assert main([*common, "--resume", str(tmp_path / "part"), "--epochs", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs"] == 2 and len(summary["history"]) == 2
    from rnnlab.checkpoint import load_tensors
    for folder, stem in (("", "model"), ("", "optimizer"), ("best", "model")):  # latest and best weights
        whole, part = load_tensors(tmp_path / "whole" / folder, stem), load_tensors(tmp_path / "part" / folder, stem)
        assert whole.keys() == part.keys() and all(torch.equal(whole[k], part[k]) for k in whole), stem
    assert main([*common, "--resume", str(tmp_path / "part"), "--out", str(tmp_path / "x")]) == 2
    assert main([*common]) == 2
    assert "give --out DIR" in capsys.readouterr().err


def test_early_stopping_and_time_budget():
    train, val = distant_cue_texts(64, seed=0), distant_cue_texts(32, seed=1)
    task = ClassificationTask.from_examples(train)
    model = task.build_model(seed=0, embed_size=8, hidden_size=8)
    # a learning rate too small to change anything: no evaluation improves on the first one
    summary = fit(task, model, train, val, FitOptions(epochs=10, lr=1e-9, early_stop=2))
    assert summary["stopped"] == "early_stop" and summary["epochs"] == 3 and summary["best_epoch"] == 1
    summary = fit(task, model, train, val, FitOptions(epochs=10, max_time=1e-9))
    assert summary["stopped"] == "max_time" and summary["steps"] == 1


@pytest.mark.parametrize("option, message", [
    ("--lr nan", "lr must be a finite number > 0"), ("--epochs 0", "epochs must be a positive integer"),
    ("--max-len 0", "--max-len must be a positive integer"), ("--dropout 1.5", "dropout must be in [0, 1)"),
    ("--val-fraction 1", "--val-fraction must be in [0, 1)"), ("--max-time 0", "max-time must be > 0 seconds"),
])
def test_bad_options(trained, tmp_path, capsys, option, message):
    folder, _ = trained
    assert main(["-q", "classify", "train", "--data", str(folder / "train.csv"), "--out", str(tmp_path / "o"),
                 *option.split()]) == 2
    assert message in capsys.readouterr().err


def test_cli_numeric_sequences(tmp_path, capsys):
    from rnnlab.tasks.synthetic import tone_sequences, write_feature_csv
    write_feature_csv(tone_sequences(200, seed=0), tmp_path / "train.csv")
    write_feature_csv(tone_sequences(60, seed=1), tmp_path / "test.csv")
    out = str(tmp_path / "tones")
    assert main(["-q", "classify", "train", "--frames", "--data", str(tmp_path / "train.csv"), "--out", out,
                 "--cell", "gru", "--hidden-size", "16", "--pooling", "mean", "--lr", "1e-2", "--epochs", "6"]) == 0
    capsys.readouterr()
    assert main(["-q", "classify", "eval", out, "--data", str(tmp_path / "test.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] >= 0.9
    assert main(["-q", "classify", "predict", out, "--data", str(tmp_path / "test.csv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 60 and lines[0].startswith("clip0\t")
    assert main(["-q", "classify", "predict", out, "some text"]) == 2


def test_evaluate_refuses_an_unseen_label():
    task = ClassificationTask.from_examples([LabelledText("a b", "x", 2), LabelledText("c", "y", 3)])
    model = task.build_model(seed=0, embed_size=4, hidden_size=4)
    with pytest.raises(DataError, match="line 7: label 'z' was never seen in training"):
        task.evaluate(model, [LabelledText("a", "z", 7)])


def test_sizes_beyond_the_bound_are_refused_before_allocation():
    from rnnlab.data.labelled import LabelledText
    task = ClassificationTask.from_examples([LabelledText("a b", "x", 1), LabelledText("c", "y", 2)])
    with pytest.raises(UsageError, match="hidden_size must be an integer from 1 to 1048576"):
        task.build_model(hidden_size=10**9)
    # layers: the constructors hold the registries' bound (1024), so no network is built that cannot be loaded
    from rnnlab.models import MAX_LAYERS, build_model
    from rnnlab.models.recurrent import TorchRecurrentLM
    with pytest.raises(UsageError, match=f"num_layers must be an integer from 1 to {MAX_LAYERS}"):
        task.build_model(num_layers=MAX_LAYERS + 1)
    with pytest.raises(UsageError, match=f"num_layers must be an integer from 1 to {MAX_LAYERS}"):
        TorchRecurrentLM(10, hidden_size=4, num_layers=MAX_LAYERS + 1)
    with pytest.raises(UsageError, match=f"num_layers must be an integer from 1 to {MAX_LAYERS}"):
        build_model("gru", 10, hidden_size=4, num_layers=MAX_LAYERS + 1)


def test_resume_changes_only_what_a_resume_may_change(trained, tmp_path, capsys):
    """--max-steps caps this invocation (not inherited), --precision may change, a finished
    run, an old folder and a forged learning rate are refused with one error line."""
    folder, _ = trained
    common = ["-q", "classify", "train", "--data", str(folder / "train.csv"), "--hidden-size", "8", "--embed-size",
              "8", "--early-stop", "0"]
    run = tmp_path / "run"
    assert main([*common, "--out", str(run), "--epochs", "2", "--max-steps", "3"]) == 0
    assert main([*common, "--resume", str(run), "--epochs", "2", "--max-steps", "3"]) == 2
    assert "is not above the 3 steps" in capsys.readouterr().err
    assert main([*common, "--resume", str(run), "--epochs", "2", "--precision", "bf16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["stopped"] == "epochs" and summary["epochs"] == 2 and summary["steps"] > 3
    assert json.loads((run / "config.json").read_text())["train_config"]["max_steps"] is None
    assert main([*common, "--resume", str(run), "--epochs", "2"]) == 2
    assert "already finished 2 epochs" in capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    config["progress"]["lr"] = 1e300
    (run / "config.json").write_text(json.dumps(config))
    assert main([*common, "--resume", str(run), "--epochs", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "key 'progress.lr' must be a number from" in err[0], err
    del config["train_config"]  # a folder without its training options
    (run / "config.json").write_text(json.dumps(config))
    assert main([*common, "--resume", str(run), "--epochs", "3"]) == 1
    assert "cannot be resumed; train it again" in capsys.readouterr().err


def test_a_time_budget_alone_lifts_the_epoch_cap():
    """`classify train --max-time S` (and `tag train`) trains until S is spent, as `rnnlab train` does."""
    import argparse

    from rnnlab.cli.tasks_common import _fit_options
    from rnnlab.tasks.loop import FitOptions
    from rnnlab.training.config import UNLIMITED_EPOCHS
    default = FitOptions().epochs
    assert _fit_options(argparse.Namespace(max_time=60.0, epochs=None)).epochs == UNLIMITED_EPOCHS
    assert _fit_options(argparse.Namespace(max_time=60.0, epochs=3)).epochs == 3
    assert _fit_options(argparse.Namespace(max_time=None, epochs=None)).epochs == default < UNLIMITED_EPOCHS


# ----------------------------------------------------------------------------------
# hostile folders and resumed runs (issue 18)


def _saved_classifier(folder):
    from rnnlab.tasks.base import save_task
    task = ClassificationTask.from_examples([LabelledText("a b", "x", 1), LabelledText("c", "y", 2)])
    save_task(folder, task, task.build_model(seed=0, embed_size=4, hidden_size=4))
    return folder


@pytest.mark.parametrize("key, value, fragment", [
    ("model.hidden_size", float("nan"), "key 'model.hidden_size' must be an integer from 1 to 1048576, got NaN"),
    ("model.hidden_size", "4", "key 'model.hidden_size' must be an integer from 1 to 1048576, got \"4\""),
    ("model.embed_size", 4.0, "key 'model.embed_size' must be an integer from 1"),
    ("model.num_layers", True, "key 'model.num_layers' must be an integer from 1 to 1024, got true"),
    ("model.bidirectional", "yes", "key 'model.bidirectional' must be True or False, got \"yes\""),
    ("model.pooling", "sum", "key 'model.pooling' must be one of last, mean, max"),
    ("model.colour", "red", "key 'model.colour' is not an option of the classifier"),
    ("model.num_classes", 3, "key 'model.num_classes' is 3, but task.labels has 2"),
    ("task.lowercase", "false", "key 'task.lowercase' must be true or false, got \"false\""),
    ("task.labels", ["x", "x"], "key 'task.labels' lists 'x' twice; every label must be distinct"),
    ("task.vocab", ["<pad>", "<unk>", "a", "a", "b", "c"], "key 'task.vocab' lists 'a' twice"),
    ("task.metric", "f2", "key 'task.metric' must be one of accuracy, macro_f1"),
])
def test_a_forged_classifier_config_is_one_checkpoint_error(tmp_path, key, value, fragment):
    from test_hostile_checkpoints import edit_config

    from rnnlab.errors import CheckpointError
    from rnnlab.tasks.base import load_task
    folder = _saved_classifier(tmp_path / "cls")
    load_task(folder, ClassificationTask)  # the unedited folder loads
    edit_config(folder, key, value)
    with pytest.raises(CheckpointError, match=re.escape(fragment)):
        load_task(folder, ClassificationTask)


def test_resuming_on_other_examples_is_refused_and_line_numbers_do_not_count(tmp_path):
    from rnnlab.tasks.loop import examples_digest
    train = distant_cue_texts(40, seed=0)
    moved = [LabelledText(e.text, e.label, e.line + 7) for e in train]
    assert examples_digest(train) == examples_digest(moved) and examples_digest([]) is None
    assert examples_digest(train) != examples_digest(train[::-1])
    task = ClassificationTask.from_examples(train)
    options = dict(batch_size=8, early_stop=None)
    fit(task, task.build_model(seed=0, embed_size=4, hidden_size=4), train, None, FitOptions(epochs=1, **options),
        out_dir=tmp_path / "run")
    other = train[:-1] + [LabelledText(train[-1].text + " extra", train[-1].label, train[-1].line)]
    with pytest.raises(DataError, match="the training examples differ from the 40 the run in .* was trained on"):
        fit(task, task.build_model(seed=0, embed_size=4, hidden_size=4), other, None,
            FitOptions(epochs=2, **options), out_dir=tmp_path / "run", resume=True)
    summary = fit(task, task.build_model(seed=0, embed_size=4, hidden_size=4), moved, None,
                  FitOptions(epochs=2, **options), out_dir=tmp_path / "run", resume=True)
    assert summary["epochs"] == 2
