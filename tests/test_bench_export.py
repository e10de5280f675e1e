"""`rnnlab bench --only export`: the section runs in the quick plan and prints its rows (never timed here)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")

from rnnlab.cli import main  # noqa: E402


def test_bench_export_section_quick(capsys, monkeypatch):
    from rnnlab.bench import suite
    monkeypatch.setattr(suite, "QUICK", suite.Plan(**{**suite.asdict(suite.QUICK), "generate_length": 4}))
    assert main(["bench", "--quick", "--repeats", "1", "--only", "export"]) == 0
    out = capsys.readouterr().out
    assert "export: single-stream generation and held-out bits/char" in out
    for candidate in ("pytorch forward fp32", "rnnlab generate_ids fp32", "onnx fp32", "onnx int8"):
        assert f"| {candidate} |" in out
    assert main(["bench", "--quick", "--repeats", "1", "--only", "export", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["sections"]["export"]["rows"]
    assert [r["candidate"] for r in rows][2:] == ["onnx fp32", "onnx int8"]
    assert all(r["tokens_per_second"] > 0 and r["bits_per_char"] > 0 for r in rows)
    assert abs(rows[2]["bits_per_char_change"]) < 1e-4  # float32 ONNX scores the text as PyTorch does
