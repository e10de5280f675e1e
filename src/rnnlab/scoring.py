"""Score a text token by token: log-probabilities, per-character rates, ranks and alternatives.

One definition for recurrent and n-gram models. The text is preprocessed and tokenized
as the model's training text was; its tokens are read in one stream, from a fresh state,
and every token but the first (which has no context) is predicted from all the tokens
before it. For the scored tokens (natural logs throughout):

* ``log_prob`` -- the sum of ``log p(token | history)`` in nats (<= 0);
* ``nats_per_char`` = ``-log_prob / chars`` and ``bits_per_char`` = that ``/ ln 2``, where
  ``chars`` is the number of characters the scored tokens cover: the preprocessed text
  from the end of the first token to the end of the last, spaces between words included.
  Character, word and byte models of the same text are comparable on these;
* ``perplexity`` = ``exp(-log_prob / tokens)``, per token.

Per token (``per_token=True``): the token as it appears in the text, its id (0 for
``<unk>``), its character offset in the preprocessed text (for a byte, the offset of the
character it is part of), its log-probability, the rank of the true token among all
(1 = the most likely; ties count in its favour) and the ``top`` most likely tokens with
their log-probabilities.

Recurrent models are run in float32 with float64 log-softmax; the total is the float64
sum of the per-token log-probabilities, so the two always agree exactly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from rnnlab import checks
from rnnlab.data.dataset import covered_chars  # noqa: F401  (part of this module's API)
from rnnlab.data.text import SUBWORDS, preprocess, tokenize
from rnnlab.errors import DataError, UsageError
from rnnlab.metrics import per_char_fields  # noqa: F401  (part of this module's API)
from rnnlab.models.base import RecurrentLM
from rnnlab.data.subword import token_bytes

TOP = 5
CHUNK = 256  # time steps per forward call of a recurrent model (the state carries over)


@dataclass
class TokenScore:
    """One scored token; ``log_prob`` in nats; ``top``: ``[(token, log_prob), ...]``, most likely first."""

    token: str
    id: int
    offset: int
    log_prob: float
    rank: int
    top: list = field(default_factory=list)


@dataclass
class TextScore:
    """The score of a text (module docstring). ``tokens``: scored tokens (all but the first);
    ``chars``: characters they cover; ``unknown_tokens``: scored tokens that are ``<unk>``."""

    log_prob: float
    tokens: int
    chars: int
    unknown_tokens: int
    nats_per_char: float
    bits_per_char: float
    perplexity: float
    bits_per_token: float
    token_kind: str = "char"
    per_token: list[TokenScore] | None = None

    def to_dict(self, with_tokens: bool = False) -> dict:
        out = asdict(self)
        out.pop("per_token")
        if with_tokens and self.per_token is not None:
            out["per_token"] = [asdict(t) for t in self.per_token]
        return out


def token_spans(text: str, mode: str, token: str, subword=None) -> tuple[list[str], np.ndarray, np.ndarray, str]:
    """``(tokens, starts, ends, scored_text)``: the model's tokens of ``text`` and the
    character span ``[start, end)`` of each in ``scored_text``, the preprocessed text
    (its segments joined without a separator, as the character stream is).

    Word tokens are found left to right (what lies between two tokens is whitespace);
    a byte's span is the character it belongs to, ending there only at its last byte, and a
    subword's runs from the character holding its first byte to the end of the last character
    it completes (``subword``: the tokenizer of ``bpe``/``unigram`` tokens)."""
    segments = preprocess(text, mode)
    scored = "".join(segments)
    tokens = tokenize(segments, token, mode, subword=subword)
    if token in SUBWORDS:
        starts, ends = subword_spans(tokens, scored)
        return tokens, starts, ends, scored
    if token == "char":
        starts = np.arange(len(tokens), dtype=np.int64)
        return tokens, starts, starts + 1, scored
    if token == "byte":
        lengths = np.fromiter((len(ch.encode("utf-8")) for ch in scored), dtype=np.int64, count=len(scored))
        owner = np.repeat(np.arange(len(scored), dtype=np.int64), lengths)
        last = np.zeros(len(owner), dtype=bool)
        last[np.cumsum(lengths) - 1] = True
        return tokens, owner, np.where(last, owner + 1, owner), scored
    starts, position = [], 0
    for tok in tokens:
        start = scored.find(tok, position)
        if start < 0:  # every word token is a substring of the preprocessed text
            raise AssertionError(f"token {tok!r} not found after offset {position}")
        starts.append(start)
        position = start + len(tok)
    starts = np.asarray(starts, dtype=np.int64)
    return tokens, starts, starts + np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens)), scored


def subword_spans(tokens: list[str], scored: str) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` in characters of ``scored`` of byte-level subword ``tokens`` (each
    token character one byte): a token starts in the character its first byte belongs to and
    ends after the last character whose final byte it holds."""
    char_ends = np.cumsum(np.fromiter((len(ch.encode("utf-8")) for ch in scored), dtype=np.int64,
                                      count=len(scored)))  # byte offset just past each character
    sizes = np.fromiter((len(token_bytes(tok)) for tok in tokens), dtype=np.int64, count=len(tokens))
    byte_ends = np.cumsum(sizes)
    starts = np.searchsorted(char_ends, byte_ends - sizes, side="right")
    ends = np.searchsorted(char_ends, byte_ends, side="right")
    return starts.astype(np.int64), ends.astype(np.int64)


def text_chars(text: str, vocab, mode: str, token: str) -> int:
    """Characters that the scored tokens of ``text`` (all but the first) cover, exactly as
    :func:`score_text` counts them."""
    tokens, _, ends, _ = token_spans(text, mode, token, subword=getattr(vocab, "subword", None))
    return int(ends[-1] - ends[0]) if len(tokens) > 1 else 0


def shown_token(tok: str, token_kind: str) -> str:
    """A byte token as its character when ASCII, else ``\\xNN``; other tokens unchanged."""
    if token_kind == "byte" and len(tok) == 1 and ord(tok) >= 0x80:  # <unk> stays as it is
        return f"\\x{ord(tok):02x}"
    return tok


def recurrent_log_probs(model, ids: np.ndarray, top: int = 0, chunk: int = CHUNK):
    """``(log_probs (T-1,), ranks (T-1,) or None, top_ids (T-1, top), top_log_probs (T-1, top))``
    of ``ids[1:]`` under a recurrent model read as one stream from a fresh state."""
    was_training = model.training
    model.eval()
    device = model.device
    inputs = torch.from_numpy(np.ascontiguousarray(ids[:-1], dtype=np.int64))[None]
    targets = torch.from_numpy(np.ascontiguousarray(ids[1:], dtype=np.int64))
    out_lp, out_rank, out_top_ids, out_top_lp = [], [], [], []
    state = model.begin_state(1, device)
    try:
        with torch.no_grad():
            for start in range(0, inputs.shape[1], chunk):
                logits, state = model(inputs[:, start:start + chunk].to(device), state)
                logp = logits[0].double().log_softmax(-1).cpu()  # (steps, V), float64
                y = targets[start:start + chunk]
                true = logp.gather(1, y[:, None])  # (steps, 1)
                out_lp.append(true[:, 0].numpy())
                if top:
                    out_rank.append((logp > true).sum(1).numpy() + 1)
                    values, indices = logp.topk(min(top, logp.shape[1]), dim=1)
                    out_top_ids.append(indices.numpy())
                    out_top_lp.append(values.numpy())
    finally:
        model.train(was_training)
    if not top:
        return np.concatenate(out_lp), None, None, None
    return (np.concatenate(out_lp), np.concatenate(out_rank), np.concatenate(out_top_ids),
            np.concatenate(out_top_lp))


def ngram_log_probs(model, ids: np.ndarray, top: int = 0):
    """The same four arrays for an :class:`rnnlab.ngram.NGramLM` (ranks and alternatives from
    its full distribution at every position: one ``(V,)`` vector each, so ``top`` is slow on long texts)."""
    logp = model.log_probs(ids)
    if not top:
        return logp, None, None, None
    ranks, top_ids, top_lp = [], [], []
    history = max(model.order - 1, 0)
    with np.errstate(divide="ignore"):
        for t in range(1, len(ids)):
            dist = np.log(model.distribution(ids[max(0, t - history):t] if history else ids[:0]))
            ranks.append(int((dist > dist[ids[t]]).sum()) + 1)  # the same vector's value: no rounding gap
            order = np.argsort(-dist, kind="stable")[:top]
            top_ids.append(order)
            top_lp.append(dist[order])
    return logp, np.asarray(ranks), np.asarray(top_ids), np.asarray(top_lp)


def score_text(model, vocab, mode: str, token: str, text: str, per_token: bool = False, top: int = TOP,
               what: str = "the text") -> TextScore:
    """Score ``text`` with a recurrent model (:class:`rnnlab.models.RecurrentLM`) or an
    :class:`rnnlab.ngram.NGramLM` and its ``vocab``/``mode``/``token`` (module docstring).

    Raises DataError for an empty text, one with fewer than two tokens, and (word models)
    one whose every token is unknown to the vocabulary; ``what`` names the text in them."""
    checks.text(text, "text")
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1000:
        raise UsageError(f"top must be an integer from 1 to 1000, got {top!r:.40}")
    if not text:
        raise DataError(f"{what} is empty: nothing to score")
    tokens, starts, ends, _ = token_spans(text, mode, token, subword=getattr(vocab, "subword", None))
    if len(tokens) < 2:
        raise DataError(f"{what} has {len(tokens)} {token} token(s) after {mode} preprocessing; scoring needs at "
                        "least 2 (the first is only context)")
    ids = np.asarray(vocab[list(tokens)], dtype=np.int64)
    unknown = ids == 0
    if token == "word" and unknown.all():
        raise DataError(f"every word of {what} ({len(tokens):,} tokens) is unknown to the model's vocabulary "
                        f"(all <unk>): its score would say nothing about the text; score text in the model's "
                        "language")
    k = top if per_token else 0
    if isinstance(model, RecurrentLM):
        logp, ranks, top_ids, top_lp = recurrent_log_probs(model, ids, k)
    else:
        logp, ranks, top_ids, top_lp = ngram_log_probs(model, ids, k)
    total = float(np.sum(logp, dtype=np.float64))
    n = len(logp)
    chars = int(ends[-1] - ends[0])
    nats_per_char = -total / chars if chars > 0 else float("nan")
    mean = -total / n
    result = TextScore(log_prob=total, tokens=n, chars=chars, unknown_tokens=int(unknown[1:].sum()),
                       nats_per_char=nats_per_char, bits_per_char=nats_per_char / math.log(2),
                       perplexity=math.exp(mean) if mean < 700 else float("inf"), bits_per_token=mean / math.log(2),
                       token_kind=token)
    if per_token:
        names = vocab.idx_to_token
        result.per_token = [
            TokenScore(token=shown_token(tokens[t + 1], token), id=int(ids[t + 1]), offset=int(starts[t + 1]),
                       log_prob=float(logp[t]), rank=int(ranks[t]),
                       top=[[shown_token(names[int(i)], token), float(v)] for i, v in zip(top_ids[t], top_lp[t])])
            for t in range(n)]
    return result


__all__ = ["TextScore", "TokenScore", "score_text", "token_spans", "recurrent_log_probs", "covered_chars",
           "text_chars", "per_char_fields"]
