"""ARPA back-off files: export and import.

Layout (the de-facto standard read by SRILM and KenLM's ``build_binary``/``query``)::

    \\data\\
    ngram 1=<count>
    ...
    \\1-grams:
    <log10 p(w)>  <w>  <log10 bow(w)>
    ...
    \\N-grams:
    <log10 p(w_N | w_1..w_N-1)>  <w_1> ... <w_N>
    \\end\\

The models in backoff form (``kn``, ``mle``) are written exactly: listed n-grams
carry their full interpolated probability and every listed context its backoff
weight (see :mod:`rnnlab.ngram.smoothing`). ``addk`` is not a backoff model (the
mass of an unseen word depends on the context *and* the word) and is refused.
Probability 0 (``mle``) is written as ``-99``, read back as 0.

Because the stream has no sentence boundaries, ``<s>`` and ``</s>`` are written
as unigrams with log10 probability -99 only so that KenLM accepts the file; use
``query -n`` (no sentence wrapping). Tokens containing whitespace or a backslash
(character models: the space, the newline) are escaped: ``\\s`` space, ``\\n``,
``\\t``, ``\\r``, ``\\\\`` backslash, ``\\uXXXX`` any other whitespace character;
the same escaping must be applied to text given to external tools.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from rnnlab.data.vocab import UNK, Vocab
from rnnlab.errors import DataError, UsageError
from rnnlab.fileio import atomic_open, refuse_special_file
from rnnlab.ngram.counts import NGramCounts
from rnnlab.ngram.model import NGramLM

LOG0 = -99.0
LN10 = math.log(10.0)
_NAMED = {" ": "\\s", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}
_UNNAMED = {v: k for k, v in _NAMED.items()}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|[sntr\\])")


def escape(token: str) -> str:
    if not any(ch.isspace() or ch == "\\" for ch in token):
        return token
    return "".join(_NAMED.get(ch, f"\\u{ord(ch):04x}" if ch.isspace() else ch) for ch in token)


def unescape(token: str) -> str:
    if "\\" not in token:
        return token
    return _ESCAPE_RE.sub(lambda m: _UNNAMED.get(m.group(0)) or chr(int(m.group(1)[1:], 16)), token)


def _fmt(log_e: float, probability: bool = False) -> str:
    value = log_e / LN10
    if probability:
        value = min(value, 0.0)  # rounding can give p = 1 + 1e-16; readers reject log10 p > 0
    return repr(float(value)) if value > LOG0 else "-99"


def write_arpa(model: NGramLM, path: str | os.PathLike, vocab: Vocab | None = None) -> None:
    """Write ``model`` (``kn``, ``mle`` or imported) to ``path`` in ARPA format."""
    model._check_fitted()
    if model.smoothing == "addk":
        raise UsageError("add-k smoothing is not a backoff model and has no exact ARPA form; "
                         "export a kn or mle model")
    vocab = vocab if vocab is not None else getattr(model, "vocab", None)
    V = model.vocab_size
    words = [escape(t) for t in vocab.idx_to_token] if vocab is not None else [f"w{i}" for i in range(V)]
    if vocab is None:
        words[0] = UNK
    if len(set(words)) != V:
        raise DataError("two vocabulary entries escape to the same ARPA word; cannot export")
    markers = [m for m in ("<s>", "</s>") if m not in set(words)]
    ngc = model.counts
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as out:  # never a truncated file
        out.write("\n\\data\\\n")
        for n in range(1, model.order + 1):
            extra = len(markers) if n == 1 else 0
            out.write(f"ngram {n}={len(ngc.keys[n - 1]) + extra}\n")
        for n in range(1, model.order + 1):
            out.write(f"\n\\{n}-grams:\n")
            rows = ngc.decode(n)
            logp = model.logp[n - 1]
            bows = model.logbow[n - 1] if n < model.order else None
            if n == 1:
                for m in markers:
                    out.write(f"-99\t{m}" + ("\t0\n" if bows is not None else "\n"))
            lines = []
            for i, row in enumerate(rows.tolist()):
                text = " ".join(words[j] for j in row)
                line = f"{_fmt(logp[i], probability=True)}\t{text}"
                if bows is not None:
                    line += f"\t{_fmt(bows[i])}"
                lines.append(line)
                if len(lines) >= 65536:
                    out.write("\n".join(lines) + "\n")
                    lines = []
            if lines:
                out.write("\n".join(lines) + "\n")
        out.write("\n\\end\\\n")


def _parse(path):
    """``(header counts, {n: list of (log10 p, words tuple, log10 bow or None)})``."""
    counts, sections, n = {}, {}, None
    refuse_special_file(path, f"ARPA file {path}")  # a FIFO or device would block or never end
    try:
        handle = open(path, "rb")  # decoded line by line, so an error can say which line
    except OSError as exc:
        raise DataError(f"cannot read ARPA file {path}: {exc.strerror}") from None
    with handle:
        for lineno, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                                f"{exc.start + 1}); ARPA files are read as UTF-8") from None
            if not line:
                continue
            if line == "\\data\\":
                n = 0
                continue
            if line == "\\end\\":
                break
            m = re.fullmatch(r"\\(\d+)-grams:", line)
            if m:
                n = int(m.group(1))
                sections[n] = []
                continue
            if n == 0:
                m = re.fullmatch(r"ngram\s+(\d+)\s*=\s*(\d+)", line)
                if not m:
                    raise DataError(f"{path}:{lineno}: expected 'ngram N=COUNT' in the \\data\\ header")
                counts[int(m.group(1))] = int(m.group(2))
                continue
            if n is None:
                continue  # text before \data\ is ignored, as other readers do
            fields = line.split()
            if len(fields) not in (n + 1, n + 2):
                raise DataError(f"{path}:{lineno}: expected a log10 probability, {n} words and an optional backoff")
            try:
                prob = float(fields[0])
                bow = float(fields[n + 1]) if len(fields) == n + 2 else None
            except ValueError:
                raise DataError(f"{path}:{lineno}: probability or backoff is not a number") from None
            # log10 p is at most 0 (p <= 1); -inf is written as the floor -99, so NaN and
            # infinities mean a damaged or foreign file, not a probability.
            if not math.isfinite(prob) or prob > 0:
                raise DataError(f"{path}:{lineno}: log10 probability {fields[0]} is not a finite number <= 0")
            if bow is not None and not math.isfinite(bow):
                raise DataError(f"{path}:{lineno}: log10 backoff weight {fields[n + 1]} is not a finite number")
            sections[n].append((prob, tuple(unescape(w) for w in fields[1:n + 1]), bow))
    if not counts or 1 not in sections:
        raise DataError(f"{path} is not an ARPA file (no \\data\\ header or no \\1-grams: section)")
    for k, expected in counts.items():
        if len(sections.get(k, [])) != expected:
            raise DataError(f"{path}: header says {expected} {k}-grams, found {len(sections.get(k, []))}")
    return counts, sections


def _ln(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return np.where(arr <= LOG0, -np.inf, arr * LN10)


def read_arpa(path: str | os.PathLike, mode: str | None = None, token: str | None = None) -> NGramLM:
    """Read an ARPA file into an :class:`NGramLM` (smoothing ``"arpa"``).

    The vocabulary is the unigram list in file order with ``<unk>`` at index 0
    (added with probability 0 if the file lacks it); ``<s>``/``</s>`` entries with
    probability -99 are dropped. ``mode``/``token`` record how text must be
    preprocessed to be scored (ARPA files do not say).
    """
    counts, sections = _parse(path)
    order = max(counts)
    unigrams = [e for e in sections[1] if not (e[1][0] in ("<s>", "</s>") and e[0] <= LOG0)]
    tokens = [e[1][0] for e in unigrams]
    if len(set(tokens)) != len(tokens):
        raise DataError(f"{path}: a unigram is listed twice")
    vocab = Vocab(reserved_tokens=[t for t in tokens if t != UNK])
    V = len(vocab)
    logp1 = np.full(V, -np.inf)
    bow1 = np.zeros(V)
    ids = [vocab.token_to_idx[t] for t in tokens]
    logp1[ids] = _ln([e[0] for e in unigrams])
    bow1[ids] = _ln([e[2] if e[2] is not None else 0.0 for e in unigrams])
    model = NGramLM(order, "arpa")
    ngc = NGramCounts(V, [np.arange(V, dtype=np.int64)], [np.zeros(V, dtype=np.int64)])
    model.counts, model.logp, model.logbow = ngc, [logp1], [bow1] if order > 1 else []
    for n in range(2, order + 1):
        entries = sections.get(n, [])
        rows = np.array([[vocab.token_to_idx.get(w, -1) for w in e[1]] for e in entries],
                        dtype=np.int64).reshape(-1, n)
        if (rows < 0).any():
            raise DataError(f"{path}: a {n}-gram uses a word missing from the 1-grams")
        prefix = ngc.rows_ids(rows[:, :-1])
        if (prefix < 0).any():
            raise DataError(f"{path}: a {n}-gram's first {n - 1} words are not listed as a {n - 1}-gram; "
                            "this reader needs every prefix listed")
        keys = prefix * V + rows[:, -1]
        sort = np.argsort(keys, kind="stable")
        keys = keys[sort]
        if len(keys) > 1 and (np.diff(keys) == 0).any():
            raise DataError(f"{path}: a {n}-gram is listed twice")
        ngc.keys.append(keys)
        ngc.counts.append(np.zeros(len(keys), dtype=np.int64))
        model.logp.append(_ln([entries[i][0] for i in sort]))
        if n < order:
            model.logbow.append(_ln([entries[i][2] if entries[i][2] is not None else 0.0 for i in sort]))
    model.totals = [np.zeros(1)] + [np.zeros(len(ngc.keys[n - 2])) for n in range(2, order + 1)]
    model.vocab = vocab
    model.preprocessing = {"mode": mode, "token": token} if mode and token else {}
    model.info = {"source": str(path), "ngrams": ngc.num_ngrams()}
    return model
