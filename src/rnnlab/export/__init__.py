"""``rnnlab export``: a trained language model as an ONNX or TorchScript graph for other runtimes.

:func:`export_model` writes two files:

* ``FILE`` -- the graph (:mod:`rnnlab.export.graphs`): inputs ``ids`` ``(batch, time)``
  int64 and the state (``state``, or ``state_h`` and ``state_c`` for an LSTM), each
  ``(layers, batch, hidden)`` float32; outputs ``logits`` ``(batch, time, vocab)`` and the
  new state (``new_state``, or ``new_state_h`` and ``new_state_c``), so a caller streams
  by feeding the returned state back in. Batch and time are dynamic (time >= 1).
* ``FILE.vocab.json`` -- what the graph needs around it: the tokens (``tokens[i]`` is id
  ``i``; id 0 is ``<unk>``), the preprocessing (``mode``, ``token``), the input and output
  names with their shapes, the model's configuration, and the float32 check made at export.

Each file is written to a temporary name beside its target and renamed into place, so
neither ever appears half written. ``quantize="int8"``: dynamic quantization (int8
weights, activations quantized per call) by ``onnxruntime.quantization.quantize_dynamic``
(MatMul, Gemm and LSTM operators) or ``torch.ao.quantization.quantize_dynamic``
(``nn.Linear``, ``nn.LSTM``, ``nn.GRU``); a model with a layer that has no int8 version
there is refused (:func:`rnnlab.export.graphs.int8_support`).

rnnlab itself never loads a TorchScript file (it is a pickle-based format); the tests and
the README's reference loop read what was written here.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.ao.quantization import quantize_dynamic

from rnnlab.errors import UsageError
from rnnlab.export.graphs import build_graph, int8_support, state_names, state_shape, zero_state
from rnnlab.fileio import atomic_write

FORMATS = ("onnx", "torchscript")
QUANTIZE = ("int8",)
OPSET = 17
VOCAB_SUFFIX = ".vocab.json"
# float32 graphs must reproduce PyTorch to rounding; anything larger is an export bug.
FP32_TOLERANCE = 1e-4


def vocab_path(out: str | os.PathLike) -> Path:
    """Where the vocabulary and preprocessing of the graph ``out`` are written: ``out`` + ``.vocab.json``."""
    return Path(os.fspath(out) + VOCAB_SUFFIX)


def require_onnx():
    """``(onnx, onnxruntime)``, or a UsageError saying how to install them."""
    try:
        import onnx  # lazy: optional dependency (the export extra)
        import onnxruntime  # lazy: optional dependency (the export extra)
    except ImportError:
        raise UsageError("ONNX export needs the onnx and onnxruntime packages: pip install 'rnnlab[export]' "
                         "(or pip install onnx onnxruntime onnxscript)") from None
    return onnx, onnxruntime


def check_request(model, fmt: str, quantize: str | None) -> None:
    """Refuse an unknown format, an unknown quantization or an int8 request the model's ops cannot honour."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r:.40}; choose onnx or torchscript")
    if quantize is not None and quantize not in QUANTIZE:
        raise UsageError(f"unknown quantization {quantize!r:.40}; the one supported is int8")
    if quantize == "int8":
        problem = int8_support(model, fmt)
        if problem:
            raise UsageError(problem)
    if fmt == "onnx":
        require_onnx()


def io_names(model) -> tuple[list[str], list[str]]:
    names = state_names(model)
    return ["ids", *names], ["logits", *[f"new_{n}" for n in names]]


def onnx_bytes(graph: torch.nn.Module, model) -> bytes:
    """The float32 ONNX model of ``graph`` (TorchScript-based exporter: the minGRU/minLSTM
    scan loop becomes an ONNX ``Loop`` over a dynamic number of steps)."""
    inputs, outputs = io_names(model)
    dynamic = {"ids": {0: "batch", 1: "time"}, "logits": {0: "batch", 1: "time"}}
    for name in inputs[1:] + outputs[1:]:
        dynamic[name] = {1: "batch"}
    example = (torch.zeros(1, 2, dtype=torch.long), *zero_state(model, 1))
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the exporter's notes on its own deprecation and on LSTM batch sizes
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(graph)
        torch.onnx.export(scripted, example, buffer, dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET)
    return fold_constants(buffer.getvalue())


def fold_constants(data: bytes) -> bytes:
    """The model after onnxruntime's basic (standard-ONNX) rewrites, constant folding first.

    The exporter leaves the LSTM's weights behind gate-reordering Slice/Concat nodes; folded
    into initializers they are what the int8 quantizer needs to see (it quantizes an LSTM
    only when its weights are constants), and every session is spared the work."""
    _, ort = require_onnx()
    with tempfile.TemporaryDirectory(prefix="rnnlab-export-") as folder:
        target = Path(folder) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(target)
        options.log_severity_level = 3
        ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        return target.read_bytes()


def quantize_onnx(data: bytes) -> bytes:
    """int8 dynamic quantization of an ONNX model's MatMul, Gemm and LSTM operators.

    The quantizer is told those operator types only: it cannot follow the outer-scope
    values a ``Loop`` body reads, and the loops (the minGRU/minLSTM scans) hold no products."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # lazy: optional dependency (the export extra)
    with tempfile.TemporaryDirectory(prefix="rnnlab-export-") as folder:
        source, target = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(data)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its advice to run a pre-processing pass first
        try:
            quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm", "LSTM"])
        finally:
            logging.getLogger().setLevel(quiet)
        return target.read_bytes()


def quantize_torch(graph: torch.nn.Module) -> torch.nn.Module:
    """``torch.ao`` dynamic int8 quantization of the graph's Linear, LSTM and GRU layers."""
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(graph, {torch.nn.Linear, torch.nn.LSTM, torch.nn.GRU}, dtype=torch.qint8)


def onnx_session(data: bytes | str, threads: int | None = None):
    """An onnxruntime CPU session of a model (bytes or a path); ``threads`` intra-op threads."""
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def _max_difference(a: list, b: list) -> float:
    return max(float(np.max(np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64))))
               for x, y in zip(a, b))


def check_against_torch(model, run, steps: int = 8, batch: int = 2, seed: int = 0) -> float:
    """Max |difference| between ``run(ids, *states)`` (numpy in and out) and the model's own
    forward on random ids and a random state: logits and new states together."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.vocab_size, (batch, steps), generator=generator)
    states = [torch.randn(s.shape, generator=generator) * 0.5 for s in zero_state(model, batch)]
    with torch.no_grad():
        logits, new = model(ids, states[0] if len(states) == 1 else tuple(states))
    expected = [logits, *(new if isinstance(new, tuple) else (new,))]
    got = run(ids.numpy(), *[s.numpy() for s in states])
    return _max_difference(got, [t.float().numpy() for t in expected])


def _subword_section(vocab) -> dict:
    """bpe/unigram tokens: the tokenizer itself (its library's JSON, as an object), so a caller
    can encode text without rnnlab."""
    subword = getattr(vocab, "subword", None)
    if subword is None:
        return {}
    return {"tokenizer": json.loads(subword.to_json()),
            "tokenizer_note": "byte-level subwords: encode with tokenizers.Tokenizer.from_str(json.dumps("
                              "preprocessing['tokenizer'])).encode(text).tokens and look each token string up in "
                              "'tokens'; decode by mapping every character of a token to its byte (the byte-level "
                              "pre-tokenizer's table) and reading the bytes as UTF-8"}


def metadata(lm, fmt: str, quantize: str | None, out: Path, difference: float) -> dict:
    model = lm.model
    inputs, outputs = io_names(model)
    shape = state_shape(model)
    return {
        "format": "rnnlab.export/1", "graph": out.name, "graph_format": fmt, "quantize": quantize,
        "opset": OPSET if fmt == "onnx" else None,
        "model": model.config(),
        "preprocessing": {"mode": lm.mode, "token": lm.token, **_subword_section(lm.vocab)},
        "tokens": list(lm.vocab.idx_to_token), "unk_id": 0,
        "inputs": [{"name": "ids", "shape": ["batch", "time"], "dtype": "int64"},
                   *({"name": n, "shape": shape, "dtype": "float32"} for n in inputs[1:])],
        "outputs": [{"name": "logits", "shape": ["batch", "time", model.vocab_size], "dtype": "float32"},
                    *({"name": n, "shape": shape, "dtype": "float32"} for n in outputs[1:])],
        "state": [{"input": i, "output": o} for i, o in zip(inputs[1:], outputs[1:])],
        "check": {"max_abs_difference_vs_pytorch": difference, "what": "logits and new state, random ids "
                  "(batch 2, 8 steps) from a random state"},
        "notes": ["feed zeros as the state of a new stream and each call's new state to the next call",
                  "char tokens are Unicode characters; byte tokens are UTF-8 bytes shown as the Latin-1 "
                  "character of the same number; word tokens (raw mode) are words, punctuation marks and "
                  "newlines, rejoined with a space except before punctuation and around newlines",
                  "d2l mode: lines become lower-case letters and single spaces (re.sub('[^A-Za-z]+', ' ', line)"
                  ".strip().lower()), joined without a separator"],
    }


def export_model(lm, fmt: str, out: str | os.PathLike, quantize: str | None = None) -> dict:
    """Write ``lm`` (a :class:`rnnlab.lm.LanguageModel`) as ``fmt`` to ``out`` and its
    metadata to ``out.vocab.json`` (module docstring); returns a summary with the files,
    their sizes and the max abs difference of the written graph from PyTorch."""
    model = copy.deepcopy(lm.model).float().cpu().eval()  # the caller's model keeps its device and dtype
    check_request(model, fmt, quantize)
    out = Path(out)
    graph = build_graph(model)
    if fmt == "onnx":
        data = onnx_bytes(graph, model)
        if quantize == "int8":
            data = quantize_onnx(data)
        session = onnx_session(data)
        names = io_names(model)[0]
        difference = check_against_torch(model, lambda *a: session.run(None, dict(zip(names, a))))
    else:
        if quantize == "int8":
            graph = quantize_torch(graph)
        with warnings.catch_warnings():  # TorchScript's deprecation notice: it is still the target asked for
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.script(graph)

        def run(*arrays):
            with torch.no_grad():
                return [t.numpy() for t in scripted(*[torch.from_numpy(a) for a in arrays])]
        difference = check_against_torch(model, run)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(scripted, buffer)
        data = buffer.getvalue()
    if quantize is None and not difference <= FP32_TOLERANCE:
        raise UsageError(f"the exported {fmt} graph differs from PyTorch by {difference:.3g} (more than "
                         f"{FP32_TOLERANCE:g}); this is a bug in rnnlab's export, please report it")
    info = metadata(lm, fmt, quantize, out, difference)
    atomic_write(out, data)
    atomic_write(vocab_path(out), (json.dumps(info, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return {"out": str(out), "vocab": str(vocab_path(out)), "format": fmt, "quantize": quantize,
            "model": model.name, "bytes": len(data), "max_abs_difference": difference,
            "inputs": [i["name"] for i in info["inputs"]], "outputs": [o["name"] for o in info["outputs"]]}


__all__ = ["FORMATS", "QUANTIZE", "export_model", "vocab_path", "check_request", "onnx_session", "build_graph"]
