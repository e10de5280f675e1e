"""Preprocessing and tokenization.

Preprocessing turns raw text into *segments*: tokens never span two segments, and
character/byte streams are the segments concatenated with no separator.

* ``d2l``: exactly d2l 0.17's ``read_time_machine``: every line becomes
  ``re.sub('[^A-Za-z]+', ' ', line).strip().lower()``; one segment per line.
* ``raw``: the text untouched (newlines, punctuation, any Unicode), one segment.

Tokenizers: ``char`` (Unicode code points), ``word`` (d2l: whitespace split; raw:
words, single punctuation marks and newlines), ``byte`` (UTF-8 bytes, each shown
as the Latin-1 character with the same number so every token is a 1-char str),
``bpe`` and ``unigram`` (byte-level subwords learnt from the training split, see
:mod:`rnnlab.data.subword`: tokenizing needs that tokenizer, decoding does not).
"""
from __future__ import annotations

import re

from rnnlab.data.subword import decode_tokens
from rnnlab.errors import UsageError

MODES = ("d2l", "raw")
TOKENIZERS = ("char", "word", "byte", "bpe", "unigram")
SUBWORDS = ("bpe", "unigram")

_NON_LETTERS = re.compile("[^A-Za-z]+")
_NEWLINES = re.compile(r"\r\n|\r|\n")
# Raw word tokens: runs of word characters, or one non-space symbol, or a newline.
_RAW_WORD = re.compile(r"\w+|[^\w\s]|\n")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UsageError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
    return mode


def _kind(value) -> str:
    if isinstance(value, (list, tuple)):
        odd = next((item for item in value if not isinstance(item, str)), None)
        return f"a {type(value).__name__} holding a {type(odd).__name__}"
    return f"a {type(value).__name__}"


def _check_text(value, name: str) -> None:
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string, got {_kind(value)}")


def check_tokenizer(token: str) -> str:
    if token not in TOKENIZERS:
        raise UsageError(f"unknown tokenizer '{token}'; choose one of {', '.join(TOKENIZERS)}")
    return token


def preprocess(text: str, mode: str = "d2l") -> list[str]:
    """Return the text's segments under ``mode`` (see the module docstring)."""
    check_mode(mode)
    _check_text(text, "text")
    if mode == "raw":
        return [text]
    # d2l reads with readlines() in text mode: universal newlines, then the regex per line.
    lines = _NEWLINES.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # readlines() yields no empty line after a final newline
    return [_NON_LETTERS.sub(" ", line).strip().lower() for line in lines]


def preprocess_prefix(text: str, mode: str = "d2l") -> list[str]:
    """Like :func:`preprocess` for a generation prefix: d2l mode keeps the edge spaces,
    since a trailing space is part of what the model should continue from."""
    check_mode(mode)
    if mode == "raw":
        return [text]
    return [_NON_LETTERS.sub(" ", line).lower() for line in _NEWLINES.split(text)]


def tokenize(segments: list[str] | str, token: str = "char", mode: str = "d2l", subword=None) -> list[str]:
    """Flatten ``segments`` into one token list.

    ``mode`` only matters for ``word``: d2l splits on whitespace, raw keeps
    punctuation and newlines as tokens so text can be rebuilt. ``subword``: the
    :class:`rnnlab.data.subword.SubwordTokenizer` that ``bpe``/``unigram`` tokens need
    (it reads the segments joined, as the character stream is).
    """
    check_tokenizer(token)
    check_mode(mode)
    if isinstance(segments, str):
        segments = [segments]
    if not isinstance(segments, (list, tuple)) or not all(isinstance(segment, str) for segment in segments):
        raise UsageError(f"segments must be a string or a list of strings, got {_kind(segments)}")
    if token in SUBWORDS:
        if subword is None:
            raise UsageError(f"--token {token} needs its trained tokenizer (a checkpoint's, or one learnt from the "
                             "training split)")
        return subword.tokens("".join(segments))
    if token == "char":
        return list("".join(segments))
    if token == "byte":
        return list("".join(segments).encode("utf-8").decode("latin-1"))
    if mode == "raw":
        return [tok for seg in segments for tok in _RAW_WORD.findall(seg)]
    return [tok for seg in segments for tok in seg.split()]


def detokenize(tokens: list[str], token: str = "char") -> str:
    """Inverse of :func:`tokenize` as far as possible (word spacing is normalised)."""
    check_tokenizer(token)
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(tok, str) for tok in tokens):
        raise UsageError(f"tokens must be a list of strings, got {_kind(tokens)}")
    if token == "char":
        return "".join(tokens)
    if token == "byte":
        return "".join(tokens).encode("latin-1").decode("utf-8", errors="replace")
    if token in SUBWORDS:
        return decode_tokens(tokens)
    out: list[str] = []
    for tok in tokens:
        out.append(word_separator(out[-1] if out else None, tok) + tok)
    return "".join(out)


def word_separator(previous: str | None, token: str) -> str:
    """What goes between two word tokens when rebuilding text: a space, or nothing
    at the start, around newlines and before punctuation."""
    if previous is None or token == "\n" or previous.endswith("\n"):
        return ""
    if len(token) == 1 and not token.isalnum() and token not in "([{\"'":
        return ""
    return " "
