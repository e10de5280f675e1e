"""`rnnlab export`: ONNX Runtime and TorchScript reproduce PyTorch, one step and streamed.

For every model kind a tiny model is exported in both formats and read back the way a
caller would (``onnxruntime.InferenceSession``, ``torch.jit.load``); its logits and states
are compared with the model's own forward in float32, for one token from a fresh state
and for a 12-token sequence fed in pieces of 1, 5 and 6 tokens with the state carried
between calls. The largest difference seen is printed (``-s``) and must stay below 1e-5.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from rnnlab.cli import main  # noqa: E402
from rnnlab.data.vocab import Vocab  # noqa: E402
from rnnlab.errors import UsageError  # noqa: E402
from rnnlab.export import export_model, vocab_path  # noqa: E402
from rnnlab.lm import LanguageModel  # noqa: E402
from rnnlab.models import build_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5
KINDS = {
    "rnn-scratch": dict(hidden_size=16),
    "rnn": dict(hidden_size=16, num_layers=2, embed_size=8, nonlinearity="relu"),
    "gru": dict(hidden_size=16, num_layers=2, embed_size=8),
    "lstm": dict(hidden_size=16, num_layers=2),  # one-hot input
    "mingru": dict(hidden_size=16, num_layers=2),
    "minlstm": dict(hidden_size=16, num_layers=2, mlp_ratio=0),
}
INT8 = {"onnx": {"lstm", "mingru", "minlstm"}, "torchscript": {"lstm", "gru", "mingru", "minlstm"}}


def tiny(kind: str) -> LanguageModel:
    vocab = Vocab(list("the quick brown fox jumps over"))
    return LanguageModel(build_model(kind, len(vocab), seed=5, **KINDS[kind]).eval(), vocab)


def runner(fmt: str, path: Path):
    """``run(ids, states) -> (logits, states)`` over numpy arrays, reading the file as a user would."""
    meta = json.loads(vocab_path(path).read_text(encoding="utf-8"))
    names = [s["input"] for s in meta["state"]]
    if fmt == "onnx":
        import onnxruntime as ort
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run(ids, states):
            out = session.run(None, {"ids": ids, **dict(zip(names, states))})
            return out[0], out[1:]
        return run
    graph = torch.jit.load(str(path))  # a file this test wrote; rnnlab never loads TorchScript

    def run(ids, states):
        with torch.no_grad():
            out = graph(torch.from_numpy(ids), *[torch.from_numpy(s) for s in states])
        return out[0].numpy(), [t.numpy() for t in out[1:]]
    return run


def reference(model, ids: np.ndarray, states: list[np.ndarray]):
    state = [torch.from_numpy(s) for s in states]
    with torch.no_grad():
        logits, new = model(torch.from_numpy(ids), state[0] if len(state) == 1 else tuple(state))
    new = new if isinstance(new, tuple) else (new,)
    return logits.numpy(), [t.numpy() for t in new]


def difference(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip([a[0], *a[1]], [b[0], *b[1]]))


def zero_states(path: Path, batch: int) -> list[np.ndarray]:
    meta = json.loads(vocab_path(path).read_text(encoding="utf-8"))
    shapes = {i["name"]: i["shape"] for i in meta["inputs"]}
    return [np.zeros([batch if d == "batch" else d for d in shapes[s["input"]]], np.float32) for s in meta["state"]]


WORST: dict[str, float] = {}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_export_matches_pytorch_one_step_and_streamed(kind, fmt, tmp_path):
    lm = tiny(kind)
    path = tmp_path / f"model.{fmt}"
    summary = export_model(lm, fmt, path)
    assert path.is_file() and vocab_path(path).is_file() and summary["max_abs_difference"] < TOLERANCE
    run = runner(fmt, path)
    generator = np.random.default_rng(0)
    # one step from a fresh stream
    ids = np.array([[3]], dtype=np.int64)
    states = zero_states(path, 1)
    worst = difference(run(ids, states), reference(lm.model, ids, states))
    # 12 tokens in pieces, state carried, two streams, against one call over the whole sequence
    ids = generator.integers(0, len(lm.vocab), (2, 12)).astype(np.int64)
    start = [s + generator.normal(0, 0.5, s.shape).astype(np.float32) for s in zero_states(path, 2)]
    whole = reference(lm.model, ids, start)
    states, pieces = start, []
    for a, b in ((0, 1), (1, 6), (6, 12)):
        logits, states = run(ids[:, a:b], states)
        pieces.append(logits)
    worst = max(worst, difference((np.concatenate(pieces, axis=1), states), whole))
    WORST[f"{kind} {fmt}"] = worst
    print(f"{kind:12s} {fmt:12s} max |difference| {worst:.2e}")
    assert worst < TOLERANCE


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_int8_is_written_where_the_ops_quantize_and_refused_elsewhere(kind, fmt, tmp_path):
    lm = tiny(kind)
    path = tmp_path / f"model8.{fmt}"
    if kind not in INT8[fmt]:
        with pytest.raises(UsageError, match="no int8"):
            export_model(lm, fmt, path, quantize="int8")
        assert not path.exists() and not vocab_path(path).exists()
        return
    export_model(lm, fmt, path, quantize="int8")
    assert json.loads(vocab_path(path).read_text())["quantize"] == "int8"
    ids = np.array([[1, 2, 3, 4]], dtype=np.int64)
    states = zero_states(path, 1)
    got, want = runner(fmt, path)(ids, states), reference(lm.model, ids, states)
    assert np.isfinite(got[0]).all() and difference(got, want) < 0.2  # int8 weights: close, not equal


def test_cli_export_writes_both_files_and_refuses_to_overwrite(tmp_path, capsys):
    corpus = tmp_path / "fox.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    assert main(["-q", "train", "--corpus", str(corpus), "--model", "minlstm", "--hidden", "8", "--layers", "1",
                 "--batch-size", "4", "--num-steps", "8", "--sample-length", "0", "--max-steps", "1",
                 "--device", "cpu", "--precision", "fp32", "--out", str(tmp_path / "lm")]) == 0
    out = tmp_path / "m.onnx"
    capsys.readouterr()
    assert main(["-q", "export", str(tmp_path / "lm"), "--format", "onnx", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["inputs"] == ["ids", "state"] and result["outputs"] == ["logits", "new_state"]
    meta = json.loads(vocab_path(out).read_text(encoding="utf-8"))
    assert meta["tokens"][0] == "<unk>" and meta["preprocessing"] == {"mode": "raw", "token": "char"}
    assert main(["-q", "export", str(tmp_path / "lm"), "--format", "onnx", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if "tmp-" in p.name]  # no temporary file left behind


def readme_snippet() -> str:
    text = (REPO / "docs" / "howto" / "score-export.md").read_text(encoding="utf-8")  # moved there from the README
    match = re.search(r"<!-- onnx-reference-loop -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/howto/score-export.md lost its <!-- onnx-reference-loop --> snippet"
    return match.group(1)


def test_the_readme_reference_loop_runs_without_rnnlab(tmp_path, monkeypatch):
    """The README's numpy + onnxruntime loop, run as it is printed, with rnnlab unimportable."""
    import subprocess
    lm = tiny("lstm")
    export_model(lm, "onnx", tmp_path / "lm.onnx")
    code = readme_snippet()
    assert "rnnlab" not in code.replace("lm.onnx", "")
    guard = "import sys\nsys.modules['rnnlab'] = None  # any import of rnnlab fails\n"
    done = subprocess.run([sys.executable, "-c", guard + code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.rstrip("\n")
    assert printed.startswith("the ") and len(printed) > len("the ")


BPE_LOOP = """
import json, sys
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.modules['rnnlab'] = None  # any import of rnnlab fails
meta = json.load(open("bpe.onnx.vocab.json", encoding="utf-8"))
tokenizer = Tokenizer.from_str(json.dumps(meta["preprocessing"]["tokenizer"]))
index = {token: i for i, token in enumerate(meta["tokens"])}
session = ort.InferenceSession("bpe.onnx", providers=["CPUExecutionProvider"])
names = [s["input"] for s in meta["state"]]
shape = {i["name"]: i["shape"] for i in meta["inputs"]}
state = [np.zeros([1 if d == "batch" else d for d in shape[n]], np.float32) for n in names]
ids = [index[t] for t in tokenizer.encode(sys.argv[1]).tokens]
logits, *state = session.run(None, {"ids": np.array([ids], np.int64), **dict(zip(names, state))})
out = []
for _ in range(int(sys.argv[2])):
    token = 1 + int(np.argmax(logits[0, -1, 1:]))  # never <unk> (id 0), as rnnlab generates
    out.append(token)
    logits, *state = session.run(None, {"ids": np.array([[token]], np.int64), **dict(zip(names, state))})
tokens = [meta["tokens"][i] for i in out]
print(json.dumps({"ids": ids, "text": tokenizer.decode([tokenizer.token_to_id(t) for t in tokens])}))
"""


def test_a_bpe_model_exports_and_generates_without_rnnlab(tmp_path):
    """A byte-level BPE model: the tokenizer JSON written beside the graph encodes as rnnlab
    does, and greedy decoding with onnxruntime alone writes rnnlab's greedy text."""
    import subprocess
    from rnnlab.data.dataset import prepare_text

    text = "the quick brown fox jumps over the lazy dog; naïve café, 東京 ünd Straße. " * 30
    vocab = prepare_text(text, mode="raw", token="bpe", split=(1.0, 0.0, 0.0), vocab_size=320).vocab
    lm = LanguageModel(build_model("lstm", len(vocab), seed=3, hidden_size=16, embed_size=8).eval(), vocab,
                       mode="raw", token="bpe")
    export_model(lm, "onnx", tmp_path / "bpe.onnx")
    prefix = "the lazy café 東"
    done = subprocess.run([sys.executable, "-c", BPE_LOOP, prefix, "25"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["ids"] == lm.prefix_ids(prefix)
    assert prefix + got["text"] == lm.generate(prefix, 25, greedy=True)
