"""`rnnlab bench`: a smoke test of the structure, never of speed.

Runs the quick bench in-process with one repetition and checks that every section
asked for is there and that every rate (every key ending in ``_per_second``) is a
positive finite number, except on rows the bench says it skipped.
"""
from __future__ import annotations

import json
import math

import pytest

from rnnlab.cli import main


def rates(node, skipped=False):
    """Yield (path, value) of every ``*_per_second`` entry of ``node`` outside skipped rows."""
    if isinstance(node, dict):
        skipped = skipped or "skipped" in node
        for key, value in node.items():
            if key.endswith("_per_second") and not skipped:
                yield key, value
            yield from rates(value, skipped)
    elif isinstance(node, list):
        for item in node:
            yield from rates(item, skipped)


@pytest.fixture(autouse=True)
def small_quick_plan(monkeypatch):
    """The quick plan with even shorter sequences: the structure is the same, the test faster."""
    from rnnlab.bench import suite
    monkeypatch.setattr(suite, "QUICK", suite.Plan(**{**suite.asdict(suite.QUICK), "max_steps": 4,
                                                      "generate_length": 4}))


def run_json(capsys, *args) -> dict:
    assert main(["bench", "--quick", "--json", "--repeats", "1", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_quick_json_structure(capsys):
    result = run_json(capsys, "--only", "rnn,roofline,memory")
    header = result["header"]
    for key in ("torch", "threads", "cpu_capability", "bf16_supported", "plan"):
        assert key in header
    assert header["quick"] is True
    assert set(result["sections"]) == {"rnn", "roofline", "memory"}

    rnn = result["sections"]["rnn"]["rows"]
    assert len(rnn) == 10  # (a)-(e) at batch 32 and 256
    assert {row["shape"]["batch"] for row in rnn} == {32, 256}
    for row in rnn:
        if "skipped" not in row:
            assert row["seconds_per_step"] > 0
        if row["candidate"].startswith("(a)"):
            assert row["vs_book"] == pytest.approx(1.0)

    roofline = result["sections"]["roofline"]
    assert roofline["matmul"] and all(m["flops_per_second"] > 0 for m in roofline["matmul"])
    measured = [row for row in roofline["rows"] if row["section"] == "rnn"]
    assert measured and all(row["percent_of_roofline"] > 0 for row in measured)

    memory = result["sections"]["memory"]["rows"]
    assert {row["model"] for row in memory} == {"book RNN", "default config"}
    for row in memory:
        assert row["saved_bytes"] > 0 and row["formula_bytes"] > 0
        assert row["peak_bytes"] is None or row["peak_bytes"] > 0

    found = list(rates(result))
    assert found
    for key, value in found:
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


def test_bench_generate_falls_back_to_timing_generate_ids(capsys, monkeypatch):
    from rnnlab.bench import suite
    monkeypatch.setattr(suite, "generation_tokens_per_second", None)
    result = run_json(capsys, "--only", "generate")
    rows = result["sections"]["generate"]["rows"]
    assert [row["streams"] for row in rows] == [1, 64] * 4  # book RNN, default model, mingru, minlstm
    assert [row["model"].split()[0] for row in rows[4:]] == ["mingru"] * 2 + ["minlstm"] * 2
    assert all("timed by the bench" in row["method"] or "rnnlab.bench" in row["method"] for row in rows)
    for key, value in rates(result):
        assert math.isfinite(value) and value > 0, (key, value)


def test_bench_rejects_unknown_section(capsys):
    assert main(["bench", "--quick", "--only", "rnn,nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_bench_skips_bf16_rows_where_unsupported(capsys, monkeypatch):
    import rnnlab.precision
    monkeypatch.setattr(rnnlab.precision, "bf16_supported", lambda device="cpu": False)
    result = run_json(capsys, "--only", "rnn,roofline")
    assert result["header"]["bf16_supported"] is False
    rows = result["sections"]["rnn"]["rows"]
    skipped = [row for row in rows if "skipped" in row]
    assert {row["precision"] for row in skipped} == {"bf16"} and len(skipped) == 2
    assert all("tokens_per_second" not in row and row["vs_book"] is None for row in skipped)
    assert {m["precision"] for m in result["sections"]["roofline"]["matmul"]} == {"fp32"}
    for key, value in rates(result):
        assert math.isfinite(value) and value > 0, (key, value)


def test_bench_generate_compares_the_book_end_to_end(capsys):
    result = run_json(capsys, "--only", "generate")
    rows = result["sections"]["generate"]["end_to_end"]
    assert [row["candidate"] for row in rows] == ["book predict_ch8", "rnnlab generate end to end"]
    assert rows[0]["vs_book"] == 1.0
    assert math.isclose(rows[1]["vs_book"], rows[1]["tokens_per_second"] / rows[0]["tokens_per_second"])
    assert main(["bench", "--quick", "--repeats", "1", "--only", "generate"]) == 0
    assert "rnnlab generate end to end" in capsys.readouterr().out


def test_the_books_predict_ch8_gives_rnnlab_s_greedy_text():
    """The bench's copy of the book's loop computes the same function as rnnlab's generation."""
    import torch

    from rnnlab.bench.book_generation import BookScratchRNN, predict_ch8
    from rnnlab.data.vocab import Vocab
    from rnnlab.lm import LanguageModel
    from rnnlab.models import build_model

    vocab = Vocab(list("abcdefghijklmnopqrstuvwxyz "))
    model = build_model("rnn-scratch", len(vocab), seed=3, hidden_size=32, init_std=0.5).eval()
    with torch.no_grad():
        model.b_q[0] = -1e4  # the book can emit <unk>, rnnlab never does: keep it out of reach
    book = predict_ch8("time traveller ", 60, BookScratchRNN(model), vocab)
    ours = LanguageModel(model=model, vocab=vocab).generate("time traveller ", 60, greedy=True)
    assert book == ours and len(set(book[15:])) > 3
