"""What the explorer's panels show, as pure functions of a model and token ids.

Hidden units are read through the model's step path (:func:`rnnlab.models.stepping.make_stepper`),
one token at a time from the zero state, so every language-model kind works (the
from-scratch RNN, ``nn.RNN``/GRU/LSTM, minGRU/minLSTM, and anything else through the
forward fallback) and the hidden state seen here is the one generation carries.
Surprisal alone goes through ``model.forward`` (:func:`surprisal_bits`: same numbers, faster).

Units: surprisal in bits, ``-log2 p(token | history)``; perplexity ``2 ** (bits per token)``.
Shapes: ``ids`` ``(T,)``; ``bits`` ``(T - 1,)`` for ``ids[1:]`` (the first token is only read);
``states`` ``(T, U)``, row ``t`` the state after reading token ``t``, one column per unit
(every layer's hidden units, then an LSTM's cells).
"""
from __future__ import annotations

import codecs
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnlab.data.text import preprocess, tokenize, word_separator
from rnnlab.errors import DataError
from rnnlab.models.stepping import make_stepper
from rnnlab.data.subword import token_bytes

LOG2 = math.log(2.0)


@dataclass
class Trace:
    """One pass over ``ids``: ``bits`` ``(T - 1,)`` float64, ``states`` ``(T, U)`` float32 or None,
    ``units`` the ``U`` column names (``"layer 0 h 12"``, ``"layer 1 cell 3"``)."""

    bits: np.ndarray
    states: np.ndarray | None
    units: list[str]


def _state_parts(state) -> list[torch.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def unit_names(state) -> list[str]:
    """Column names for a batch-of-one state in the model's format (``(L, 1, H)`` or a tuple of them)."""
    parts = _state_parts(state)
    kinds = ["h", "cell"] if len(parts) == 2 else [f"part {i}" for i in range(len(parts))]
    if len(parts) == 1:
        kinds = ["h"]
    names = []
    for kind, part in zip(kinds, parts):
        layers, width = part.shape[0], part[0].numel()
        names += [f"layer {layer} {kind} {j}" for layer in range(layers) for j in range(width)]
    return names


@torch.no_grad()
def trace(model, ids, keep_states: bool = True) -> Trace:
    """Feed ``ids`` (at least 1) through ``model`` one token at a time from the zero state.

    ``bits[t - 1]`` is the surprisal of ``ids[t]`` given ``ids[:t]``; with ``keep_states``
    row ``t`` of ``states`` is every unit's value after reading ``ids[t]``. The model
    must be in eval mode (dropout off); it is not changed.
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) < 1:
        raise DataError("there is no token to read")
    T, V = len(ids), model.vocab_size
    stepper = make_stepper(model, 1, mask_unk=False)  # a fresh copy: nothing shared with other requests
    tokens = torch.from_numpy(ids).to(stepper.device).view(T, 1)
    logits = torch.empty(T, V, dtype=torch.float32)
    rows: list[np.ndarray] = []
    units: list[str] = []
    with torch.inference_mode():
        for t in range(T):
            logits[t] = stepper.step(tokens[t])[0].float().cpu()
            if keep_states:
                state = stepper.state()
                if t == 0:
                    units = unit_names(state)
                rows.append(torch.cat([p.reshape(-1) for p in _state_parts(state)]).float().cpu().numpy())
    log_p = torch.log_softmax(logits[:-1].double(), dim=1)
    target = torch.from_numpy(ids[1:]).view(-1, 1)
    bits = (-log_p.gather(1, target).view(-1) / LOG2).numpy()
    states = np.stack(rows) if keep_states else None
    return Trace(bits=bits, states=states, units=units)


@torch.no_grad()
def surprisal_bits(model, ids, chunk: int = 512) -> np.ndarray:
    """``(T - 1,)`` surprisal in bits of ``ids[1:]``, one stream from the zero state.

    The same numbers as :func:`trace` (up to float rounding) through ``model.forward``,
    ``chunk`` tokens per call with the state carried: about 3x faster than stepping
    (600 characters, a 2 x 192 LSTM: 20 ms against 55 ms on the build machine), and the
    logits held at once are ``(chunk, V)``, not ``(T, V)``.
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) < 1:
        raise DataError("there is no token to read")
    device = model.device
    inputs = torch.from_numpy(ids[:-1]).to(device)
    targets = torch.from_numpy(ids[1:]).view(-1, 1)
    state = model.begin_state(1, device)
    out = []
    for start in range(0, len(inputs), chunk):
        logits, state = model(inputs[start:start + chunk].view(1, -1), state)
        log_p = torch.log_softmax(logits[0].double().cpu(), dim=1)
        out.append(-log_p.gather(1, targets[start:start + chunk]).view(-1) / LOG2)
    return torch.cat(out).numpy() if out else np.zeros(0)


# ---- tokens as text ------------------------------------------------------------------
def text_tokens(text: str, mode: str, token: str, subword=None) -> list[str]:
    """The tokens the model reads for ``text`` (same order and count as ``LanguageModel.encode``;
    ``subword``: the tokenizer of ``bpe``/``unigram`` tokens)."""
    return tokenize(preprocess(text, mode), token, mode, subword=subword)


def pieces(tokens: list[str], token: str) -> list[str]:
    """Display text per token, one string per token, concatenating to the text.

    Words get the separator :func:`~rnnlab.data.text.word_separator` puts before them;
    bytes (and the bytes of subword tokens) are decoded as UTF-8 and a multi-byte character
    is shown on the token holding its last byte (the tokens before it show ``""``).
    """
    if token == "char":
        return list(tokens)
    if token == "word":
        out, previous = [], None
        for tok in tokens:
            out.append(word_separator(previous, tok) + tok)
            previous = tok
        return out
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    if token in ("bpe", "unigram"):
        out = [decoder.decode(token_bytes(tok)) for tok in tokens]
    else:
        out = [decoder.decode(tok.encode("latin-1")) for tok in tokens]
    tail = decoder.decode(b"", final=True)
    if tail and out:
        out[-1] += tail
    return out


# ---- surprisal -----------------------------------------------------------------------
def summary(bits: np.ndarray, shown: list[str]) -> dict:
    """Totals of the predicted tokens (``shown[1:]`` their text): bits, bits per token and per
    character, perplexity per token (``2 ** bits_per_token``)."""
    bits = np.asarray(bits, dtype=np.float64)
    chars = sum(len(p) for p in shown[1:])
    total = float(bits.sum()) if len(bits) else 0.0
    per_token = total / len(bits) if len(bits) else None
    return {"tokens": int(len(bits)), "characters": int(chars), "total_bits": total,
            "bits_per_token": per_token, "bits_per_char": total / chars if chars else None,
            "perplexity": float(2.0 ** per_token) if per_token is not None and per_token < 1024 else None}


def ngram_bits(ngram, ids) -> np.ndarray:
    """``(T - 1,)`` surprisal in bits of ``ids[1:]`` under an :class:`rnnlab.ngram.NGramLM`."""
    return -np.asarray(ngram.log_probs(np.asarray(ids, dtype=np.int64)), dtype=np.float64) / LOG2


# ---- hidden units and text features ------------------------------------------------
QUOTES = {'"': None, "\u201c": True, "\u201d": False}  # None: a straight quote toggles
OPENING, CLOSING = "([{", ")]}"
VOWELS = set("aeiouAEIOU")

FEATURES = {
    "inside quotes": "1 from an opening double quote up to its closing one (1 after reading the opening quote, "
                     "0 after the closing one)",
    "inside brackets": "1 while an opened (, [ or { is not yet closed",
    "position in line": "characters since the last newline, after reading the token",
    "after a space": "1 when the token just read is whitespace (the next token starts a word)",
    "vowel": "1 when the token (its first letter, for words) is a vowel a e i o u",
    "consonant": "1 when the token (its first letter, for words) is a letter but not a vowel",
}


def text_features(shown: list[str]) -> dict[str, np.ndarray]:
    """Each feature of :data:`FEATURES` ``(T,)`` float64, the value after reading token ``t``.

    ``shown`` is the display text per token (:func:`pieces`); quotes and brackets are
    followed character by character through every token's text.
    """
    T = len(shown)
    out = {name: np.zeros(T) for name in FEATURES}
    inside, depth, column = False, 0, 0
    for t, piece in enumerate(shown):
        for ch in piece:
            if ch in QUOTES:
                inside = (not inside) if QUOTES[ch] is None else QUOTES[ch]
            elif ch in OPENING:
                depth += 1
            elif ch in CLOSING:
                depth = max(0, depth - 1)
            column = 0 if ch == "\n" else column + 1
        out["inside quotes"][t] = inside
        out["inside brackets"][t] = depth > 0
        out["position in line"][t] = column
        stripped = piece.strip()
        out["after a space"][t] = bool(piece) and not stripped
        first = next((c for c in stripped if c.isalpha()), "")
        out["vowel"][t] = first in VOWELS
        out["consonant"][t] = bool(first) and first.isascii() and first not in VOWELS
    return out


def correlations(states: np.ndarray, features: dict[str, np.ndarray]) -> np.ndarray:
    """Pearson correlation ``(U, K)`` of every unit with every feature (in ``features``' order);
    NaN where a unit or a feature is constant over the text."""
    X = np.asarray(states, dtype=np.float64)
    F = np.stack([np.asarray(v, dtype=np.float64) for v in features.values()], axis=1)
    scale = np.abs(X).max(axis=0, initial=0.0) + 1.0
    X = X - X.mean(axis=0)
    F = F - F.mean(axis=0)
    sx, sf = np.sqrt((X * X).sum(axis=0)), np.sqrt((F * F).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        R = (X.T @ F) / np.outer(sx, sf)
    # A unit constant up to float32 rounding (a saturated one) has no direction to correlate with.
    R[sx <= 1e-6 * scale * math.sqrt(len(X))] = np.nan
    R[:, sf == 0] = np.nan
    return R


def rank_units(R: np.ndarray, names: list[str], features: list[str], feature: str | None = None,
               limit: int = 200) -> list[dict]:
    """Units ordered by ``|r|`` with ``feature`` (default: each unit's best feature), at most ``limit``.

    Each entry: ``{"unit": column index, "name", "feature", "r"}``; units whose every
    correlation is NaN come last with ``r`` None.
    """
    if feature is not None:
        column = features.index(feature)
        best = np.full(len(names), column)
    else:
        filled = np.where(np.isnan(R), -1.0, np.abs(R))
        best = filled.argmax(axis=1) if R.shape[1] else np.zeros(len(names), dtype=int)
    r = R[np.arange(len(names)), best] if R.shape[1] else np.full(len(names), np.nan)
    key = np.where(np.isnan(r), -1.0, np.abs(r))
    order = np.argsort(-key, kind="stable")[:limit]
    return [{"unit": int(u), "name": names[u], "feature": features[best[u]] if R.shape[1] else None,
             "r": None if np.isnan(r[u]) else round(float(r[u]), 4)} for u in order]


# ---- training log --------------------------------------------------------------------
def read_metrics(path: Path, max_bytes: int = 8 << 20) -> tuple[list[dict], bool]:
    """The records of a training run's ``metrics.jsonl`` and whether the file was cut.

    Read while a run may still be appending: a last line without its newline is a
    record being written and is left for the next read; lines that are not JSON objects
    are skipped. Only the last ``max_bytes`` are read (``truncated`` True then).
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read(max_bytes)
    except FileNotFoundError:
        return [], False
    lines = data.split(b"\n")
    if start:
        lines = lines[1:]  # the first line is partial
    lines = lines[:-1]  # after the last newline: empty, or a record still being written
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, bool(start)


def metrics_file(folder: Path) -> Path:
    """``metrics.jsonl`` of the run in ``folder``: in it, or beside ``best/`` for a run's best weights."""
    own = folder / "metrics.jsonl"
    if not own.exists() and folder.name == "best" and (folder.parent / "metrics.jsonl").exists():
        return folder.parent / "metrics.jsonl"
    return own


def training_report(metrics_path: Path, config: dict, max_bytes: int, charts: list[dict],
                    baselines: dict | None) -> dict:
    """What the Training panel draws: the records of ``metrics_path`` (at most its last
    ``max_bytes``), how long ago the file was written (a run still training refreshes),
    the run's options from ``config`` (its ``config.json``), ``charts`` (the metric
    charts of the folder's kind: ``[{"title", "log", "series": [[record key, label]]}]``,
    the first series the one the status line quotes) and ``baselines`` (name ->
    validation value; None where the kind has none)."""
    records, truncated = read_metrics(metrics_path, max_bytes)
    try:
        modified = metrics_path.stat().st_mtime
    except OSError:
        modified = None
    progress = config.get("progress", {})
    return {"records": records, "truncated": truncated, "metrics_file": metrics_path.exists(),
            "seconds_since_write": None if modified is None else max(0.0, time.time() - modified),
            "train_config": config.get("train_config", {}), "model": config.get("model", {}),
            "data": {k: v for k, v in config.get("data", {}).items() if not isinstance(v, (dict, list))},
            "stopped": progress.get("stopped") if isinstance(progress, dict) else None,
            "charts": charts, "baselines": baselines}
