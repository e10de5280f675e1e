"""Tokens -> NumPy integer arrays, vectorised.

Characters and bytes never become Python lists: the text is viewed as an array of
code points (UTF-32) and mapped through a lookup table, which runs at memory speed.
Words go through one dict lookup each (``np.fromiter``), the fastest pure-Python route.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from rnnlab.data.text import check_tokenizer
from rnnlab.data.vocab import Vocab
from rnnlab.errors import UsageError


def codepoints(text: str) -> np.ndarray:
    """``(len(text),) uint32``: the Unicode code point of every character."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def byte_codes(text: str) -> np.ndarray:
    """``(num_bytes,) uint8``: the UTF-8 bytes of ``text``."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def char_counts(codes: np.ndarray) -> Counter:
    """Count characters given their code points (or bytes, shown as Latin-1 chars)."""
    values, counts = np.unique(codes, return_counts=True)
    return Counter({chr(int(v)): int(c) for v, c in zip(values, counts)})


def lookup_table(vocab: Vocab, max_code: int) -> np.ndarray:
    """``(max_code + 1,)`` array mapping a code point to its index (0 = ``<unk>``)."""
    table = np.zeros(max_code + 1, dtype=vocab.dtype)
    for index, tok in enumerate(vocab.idx_to_token):
        if len(tok) == 1 and ord(tok) <= max_code:
            table[ord(tok)] = index
    return table


def encode_codes(codes: np.ndarray, vocab: Vocab) -> np.ndarray:
    """Map code points to vocabulary indices in the vocabulary's smallest dtype."""
    if codes.size == 0:
        return np.zeros(0, dtype=vocab.dtype)
    table = lookup_table(vocab, int(codes.max()))
    return table[codes]


def encode(tokens, vocab: Vocab, token: str = "char") -> np.ndarray:
    """Encode a text (for ``char``/``byte``) or a token list into vocabulary indices.

    Returns a 1-D array of the smallest unsigned dtype that holds ``len(vocab) - 1``;
    unknown tokens map to 0 (``<unk>``).
    """
    check_tokenizer(token)
    if not isinstance(vocab, Vocab):
        raise UsageError(f"vocab must be an rnnlab Vocab, got {type(vocab).__name__}")
    if isinstance(tokens, str):
        if token == "char":
            return encode_codes(codepoints(tokens), vocab)
        if token == "byte":
            return encode_codes(byte_codes(tokens), vocab)
        raise UsageError("word encoding takes a token list; call tokenize() first")
    if not isinstance(tokens, (list, tuple)):  # the container only: a check per token would slow word corpora
        raise UsageError(f"tokens must be a text or a list of string tokens, got {type(tokens).__name__}")
    lookup = vocab.token_to_idx.get
    return np.fromiter((lookup(tok, 0) for tok in tokens), dtype=vocab.dtype, count=len(tokens))
