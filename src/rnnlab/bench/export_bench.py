"""The ``export`` section of ``rnnlab bench``: PyTorch against ONNX Runtime, float32 and int8.

One character LSTM (1 layer, hidden 256, one-hot input) is trained briefly on the built-in
corpus (:data:`TRAIN_STEPS` Adam steps of 32 x 64 tokens; the quick plan takes 3), exported
to ONNX in float32 and int8 (:mod:`rnnlab.export`), and then, side by side in interleaved
repetitions:

* single-stream greedy generation, tokens/s: ``model.forward`` on a ``(1, 1)`` input per
  token (the graph's own PyTorch counterpart), rnnlab's generation path
  (``rnnlab.generation.generate_ids``, the one ``rnnlab generate`` uses), and one
  ``InferenceSession.run`` per token of the float32 and int8 graphs (numpy argmax);
  onnxruntime gets as many intra-op threads as torch has;
* bits per character of the held-out tail of the corpus (the last :data:`HELD_OUT`
  characters, never trained on) under each, read as one stream in chunks of 256 tokens,
  and the int8 graph's change from PyTorch.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from rnnlab.bench.timing import Candidate, measure
from rnnlab.data.corpus import builtin_text
from rnnlab.data.dataset import encode_text
from rnnlab.data.vocab import Vocab
from rnnlab.export import io_names, onnx_bytes, onnx_session, quantize_onnx, require_onnx
from rnnlab.export.graphs import build_graph, zero_state
from rnnlab.generation import Sampling, generate_ids
from rnnlab.models import build_model
from rnnlab.progress import logger
from rnnlab.scoring import recurrent_log_probs

HIDDEN = 256
TRAIN_STEPS = 300
HELD_OUT = 20_000
BATCH, STEPS = 32, 64


def _train(model, ids: np.ndarray, steps: int, seed: int = 0) -> None:
    generator = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.004)
    data = torch.from_numpy(ids.astype(np.int64))
    model.train()
    for _ in range(steps):
        starts = torch.from_numpy(generator.integers(0, len(ids) - STEPS - 1, BATCH))
        index = starts[:, None] + torch.arange(STEPS + 1)
        batch = data[index]
        logits, _ = model(batch[:, :-1], model.begin_state(BATCH))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()


def _session_log_probs(session, names: list[str], ids: np.ndarray, states: list[np.ndarray], chunk: int = 256):
    """log p of ``ids[1:]`` through an onnxruntime session, one stream, float64 log-softmax."""
    out = []
    inputs = ids[None, :-1].astype(np.int64)
    for start in range(0, inputs.shape[1], chunk):
        result = session.run(None, {"ids": inputs[:, start:start + chunk], **dict(zip(names[1:], states))})
        logits, states = result[0][0].astype(np.float64), result[1:]
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        out.append(logp[np.arange(len(logp)), ids[1 + start:1 + start + len(logp)]])
    return np.concatenate(out)


def section_export(plan, quick: bool) -> dict:
    try:
        require_onnx()
    except Exception as exc:  # onnx/onnxruntime not installed: the section says so and goes on
        return {"rows": [{"candidate": "all", "skipped": f"skipped: {exc}"}], "notes": []}

    text = builtin_text("pydoc")
    held_chars = 2_000 if quick else HELD_OUT
    train_text, held = text[:-held_chars], text[-held_chars:]
    vocab = Vocab(list(train_text))
    train_ids = encode_text(train_text, vocab, "raw", "char")
    held_ids = encode_text(held, vocab, "raw", "char").astype(np.int64)
    model = build_model("lstm", len(vocab), seed=0, hidden_size=HIDDEN, num_layers=1)
    steps = 3 if quick else TRAIN_STEPS
    logger.info("bench export: training lstm 1 x %d for %d steps", HIDDEN, steps)
    _train(model, train_ids, steps)
    graph = build_graph(model)
    fp32 = onnx_bytes(graph, model)
    int8 = quantize_onnx(fp32)
    threads = torch.get_num_threads()
    sessions = {"onnx fp32": onnx_session(fp32, threads), "onnx int8": onnx_session(int8, threads)}
    names = io_names(model)[0]
    length = plan.generate_length

    def torch_forward() -> None:
        state = model.begin_state(1)
        token = torch.ones(1, 1, dtype=torch.long)
        with torch.inference_mode():
            for _ in range(length):
                logits, state = model(token, state)
                token = logits[:, -1].argmax(-1, keepdim=True)

    def rnnlab_generate() -> None:
        for _ in generate_ids(model, [1], length, Sampling(greedy=True)):
            pass

    def onnx_loop(session):
        def run() -> None:
            states = [s.numpy() for s in zero_state(model, 1)]
            token = np.ones((1, 1), dtype=np.int64)
            for _ in range(length):
                out = session.run(None, {"ids": token, **dict(zip(names[1:], states))})
                states = out[1:]
                token = out[0][:, -1].argmax(-1).reshape(1, 1).astype(np.int64)
        return run

    candidates = [Candidate("pytorch forward fp32", torch_forward, length),
                  Candidate("rnnlab generate_ids fp32", rnnlab_generate, length),
                  Candidate("onnx fp32", onnx_loop(sessions["onnx fp32"]), length),
                  Candidate("onnx int8", onnx_loop(sessions["onnx int8"]), length)]
    logger.info("bench export: %d candidates x %d repetitions", len(candidates), plan.repeats)
    measured = measure(candidates, plan.repeats, plan.min_seconds, plan.warmup, desc="export")

    chars = len(held) - 1  # char tokens: each scored token is one character
    bits = {"pytorch": -float(recurrent_log_probs(model, held_ids)[0].sum()) / chars / math.log(2)}
    for key, session in sessions.items():
        logp = _session_log_probs(session, names, held_ids, [s.numpy() for s in zero_state(model, 1)])
        bits[key] = -float(logp.sum()) / chars / math.log(2)
    sizes = {"onnx fp32": len(fp32), "onnx int8": len(int8)}
    rows = []
    for candidate in candidates:
        m = measured[candidate.key]
        family = "pytorch" if not candidate.key.startswith("onnx") else candidate.key
        rows.append({"candidate": candidate.key, "tokens_per_second": m.rate, "spread": m.spread,
                     "vs_pytorch_forward": m.rate / measured["pytorch forward fp32"].rate,
                     "bits_per_char": bits[family], "bits_per_char_change": bits[family] - bits["pytorch"],
                     "bytes": sizes.get(candidate.key)})
    notes = [f"lstm 1 x {HIDDEN}, one-hot input, vocabulary {len(vocab)}, {model.num_parameters():,} parameters, "
             f"trained {steps} Adam steps of {BATCH} x {STEPS} characters of the built-in corpus",
             f"greedy single stream, {length} tokens per repetition; onnxruntime {threads} intra-op threads",
             f"bits/char on the corpus's last {held_chars:,} characters (held out), one stream from a fresh state",
             "int8: onnxruntime.quantization.quantize_dynamic (DynamicQuantizeLSTM, MatMulInteger)"]
    return {"rows": rows, "notes": notes}
