"""`rnnlab reproduce`: the deterministic sections equal the book's numbers, and the
command writes its report, results and figures.

The trained sections (8.4-8.6, 8.7) take minutes even with --quick; here they run with
two epochs each, which checks the plumbing (rows, gradient traces, figures), not the
book's perplexities.
"""
from __future__ import annotations

import json

import pytest

from rnnlab.cli import main
from rnnlab.reproduce import Context, parse_sections
from rnnlab.reproduce import beyond, bptt, language_models, rnn, text_preprocessing

PNG = b"\x89PNG\r\n\x1a\n"


def context(tmp_path, timemachine_dir, quick=True) -> Context:
    return Context(out_dir=tmp_path, quick=quick, data_dir=str(timemachine_dir))


def rows_by_quantity(section) -> dict:
    return {row.quantity: row for row in section.rows}


def test_text_preprocessing_equals_the_book(tmp_path, timemachine_dir):
    section = text_preprocessing.run(context(tmp_path, timemachine_dir))
    book = text_preprocessing.BOOK
    rows = rows_by_quantity(section)
    assert rows["text lines"].ours == book["lines"] == 3221
    assert rows["lines[0]"].ours == book["line_0"]
    assert rows["lines[10]"].ours == book["line_10"]
    assert rows["first 10 word-vocabulary entries (token, index)"].ours == book["top_10"]
    assert rows["character tokens, len(corpus)"].ours == book["char_tokens"] == 170_580
    assert rows["character vocabulary, len(vocab)"].ours == book["char_vocab"] == 28
    # The one difference by design: ties in frequency. d2l's tie order gives the book's indices.
    tie_order = section.details["book_tie_order_indices"]
    assert tie_order == {"indices_0": book["indices_0"], "indices_10": book["indices_10"]}
    for row in section.rows:
        if row.quantity.startswith("indices"):
            assert row.match == "no" and "first occurrence" in row.why
        else:
            assert row.match == "yes" and row.book == row.ours, row.quantity


def test_language_models_equals_the_book(tmp_path, timemachine_dir):
    section = language_models.run(context(tmp_path, timemachine_dir))
    rows = rows_by_quantity(section)
    assert rows["word tokens"].ours == 32_775
    assert rows["word vocabulary"].ours == 4_580
    assert rows["top 10 unigrams (count)"].ours == language_models.BOOK[1]
    assert rows["top 10 bigrams (count)"].ours == language_models.BOOK[2]
    trigrams = rows["top 10 trigrams (count)"].ours
    assert trigrams[0] == ["the-time-traveller", 59]
    assert sorted(map(tuple, trigrams)) == sorted(map(tuple, language_models.BOOK[3]))  # ties ordered differently
    for sampling in ("random", "sequential"):
        batches = section.details[f"{sampling}_iterator"]
        assert len(batches) == 3  # as many minibatches as the book prints
        assert all(b["Y"] == [[x + 1 for x in row] for row in b["X"]] for b in batches)
    assert all(row.match in ("yes", "-") for row in section.rows)
    assert (tmp_path / "zipf.png").read_bytes()[:8] == PNG


def test_trained_sections_plumbing_with_two_epochs(tmp_path, timemachine_dir, monkeypatch):
    monkeypatch.setattr(rnn, "QUICK_EPOCHS", 2)
    monkeypatch.setattr(bptt, "QUICK_EPOCHS", 2)
    ctx = context(tmp_path, timemachine_dir)
    section = rnn.run(ctx)
    details = section.details
    assert details["scratch"]["grad_norm"]["steps"] == 2 * 8  # 10,000 characters: 8 minibatches of 32 x 35
    assert details["scratch_no_clip"]["grad_norm"]["steps"] == 16
    assert details["scratch"]["clip"] == 1.0 and details["scratch_no_clip"]["clip"] is None
    assert any(row.quantity.startswith("greedy continuation of 'time traveller '") for row in section.rows)
    assert all("--quick trains 2" in row.why for row in section.rows if row.match == "no"
               and row.quantity.startswith("training perplexity"))
    section = bptt.run(ctx)
    assert section.details["full"]["grad_norm"]["steps"] == 2  # one update per epoch
    assert section.details["truncated"]["grad_norm"]["steps"] == 16
    for figure in ("perplexity.png", "clipping.png", "bptt.png"):
        assert (tmp_path / figure).read_bytes()[:8] == PNG


def test_beyond_the_book_trains_every_cell_for_the_same_time(tmp_path, timemachine_dir, monkeypatch):
    monkeypatch.setattr(beyond, "QUICK_SECONDS", 1.0)
    monkeypatch.setattr(beyond, "QUICK_EVAL_EVERY", 1)
    section = beyond.run(context(tmp_path, timemachine_dir))
    assert [row.quantity for row in section.rows] == [f"{label}, 1 s" for label in beyond.MODELS.values()]
    for model, details in section.details.items():
        summary = details["summary"]
        assert summary["stopped"] == "max_time" and summary["model"] == model, (model, summary["stopped"])
        assert summary["epochs"] > 0 and summary["val_perplexity"] > 1 and summary["precision"] == "fp32"
    parameters = {model: d["summary"]["parameters"] for model, d in section.details.items()}
    assert parameters["rnn"] < parameters["gru"] < parameters["lstm"]  # 1, 3 and 4 gates of 256 units
    assert all(row.match == "-" for row in section.rows)  # the book prints no equal-time numbers
    assert (tmp_path / "beyond.png").read_bytes()[:8] == PNG


def test_cli_quick_fast_sections_write_report_results_and_figures(tmp_path, timemachine_dir, capsys):
    out = tmp_path / "reproduce"
    code = main(["reproduce", "--quick", "--only", "8.1,8.2,8.3", "--out", str(out),
                 "--data-dir", str(timemachine_dir), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert printed == saved and saved["quick"] is True
    assert [s["key"] for s in saved["sections"]] == ["8.1", "8.2", "8.3"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "--quick" in report and "## 8.2 Text preprocessing" in report and "| 170580 | 170580 |" in report
    for figure in ("sine.png", "zipf.png"):
        assert (out / figure).read_bytes()[:8] == PNG
    # A second run into the same folder needs --overwrite, like every output folder.
    assert main(["reproduce", "--only", "8.2", "--out", str(out), "--data-dir", str(timemachine_dir)]) == 2
    assert main(["reproduce", "--only", "8.2", "--out", str(out), "--data-dir", str(timemachine_dir),
                 "--overwrite"]) == 0
    assert not (out / "sine.png").exists()  # the earlier run's figures went with it


def test_only_names_sections():
    assert parse_sections("8.5,8.2") == ["8.2", "8.4-8.6"]
    assert parse_sections(None) == ["8.1", "8.2", "8.3", "8.4-8.6", "8.7", "beyond"]
    assert parse_sections("beyond,8.7") == ["8.7", "beyond"]
    with pytest.raises(Exception, match="unknown section '9.1'"):
        parse_sections("9.1")


@pytest.mark.slow
def test_the_whole_quick_reproduction_runs(tmp_path, timemachine_dir, capsys):
    """Issue 12's CI check: `rnnlab reproduce --quick` end to end, every section."""
    out = tmp_path / "all"
    assert main(["reproduce", "--quick", "--out", str(out), "--data-dir", str(timemachine_dir), "--json"]) == 0
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    keys = [s["key"] for s in saved["sections"]]
    assert keys[0] == "8.1" and "8.2" in keys and "8.3" in keys and keys[-2:] == ["8.7", "beyond"] and len(keys) == 6
    for section in saved["sections"]:
        if section["key"] in ("8.2", "8.3"):  # deterministic: every row with a book number must match it,
            # except the word indices, which differ by the order of equal counts (explained in the report)
            assert all(row["match"] in ("yes", "-") for row in section["rows"]
                       if not row["quantity"].startswith("indices of lines")), section["key"]
    assert (out / "report.md").is_file()
    for figure in ("sine.png", "zipf.png", "perplexity.png", "clipping.png", "bptt.png", "beyond.png"):
        assert (out / figure).read_bytes()[:8] == PNG
