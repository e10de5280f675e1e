"""`rnnlab corpus stats` and one-line errors for bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rnnlab.cli import main


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stats_json_on_the_timemachine(timemachine_dir, tmp_path, capsys):
    plot = tmp_path / "zipf.png"
    code, out, err = run(["corpus", "stats", "--corpus", "timemachine", "--data-dir", str(timemachine_dir),
                          "--token", "word", "--json", "--plot", str(plot)], capsys)
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["num_tokens"] == 32_775 and result["vocab_size"] == 4_580
    assert result["top_unigrams"][:3] == [["the", 2261], ["i", 1267], ["and", 1245]]
    assert set(result["zipf_alpha"]) == {"1", "2", "3"}
    assert result["zipf_alpha"]["1"] > result["zipf_alpha"]["3"] > 0  # the book's observation
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_default_corpus_human_output(capsys):
    code, out, _ = run(["corpus", "stats", "--mode", "raw", "--top", "3"], capsys)
    assert code == 0
    assert out.startswith("corpus      pydoc") and "zipf alpha" in out


@pytest.mark.parametrize("setup,argv_tail,message", [
    (None, ["--corpus", "/no/such/file.txt"], "neither a file"),
    ("emptydir", ["--corpus", "{tmp}/emptydir"], "no text files"),
    ("empty", ["--corpus", "{tmp}/empty.txt"], "is empty"),
    ("latin1", ["--corpus", "{tmp}/latin1.txt"], "not valid UTF-8"),
    (None, ["--corpus", "shakespeare"], "neither a file, a folder, a glob nor a known name"),
    (None, ["--mode", "lowercase"], "unknown mode 'lowercase'"),
    (None, ["--token", "sentencepiece"], "unknown tokenizer 'sentencepiece'"),
])
def test_bad_input_gives_one_line(tmp_path, capsys, setup, argv_tail, message):
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    argv = ["corpus", "stats"] + [a.format(tmp=tmp_path) for a in argv_tail]
    code, out, err = run(argv, capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_encoding_errors_replace_reads_the_file(tmp_path, capsys):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait ".encode("latin-1") * 5)
    code, out, _ = run(["corpus", "stats", "--corpus", str(path), "--encoding-errors", "replace", "--json"], capsys)
    assert code == 0 and json.loads(out.splitlines()[-1])["num_tokens"] > 0


def test_usage_errors_exit_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "corpus", "stats", "--token", "sentencepiece"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
