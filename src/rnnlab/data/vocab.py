"""Vocabulary: token <-> index, d2l-compatible with the known bugs fixed.

Index 0 is ``<unk>``, then the reserved tokens in the given order, then every token
with frequency >= ``min_freq`` by descending frequency; ties are broken by the token
itself (ascending), so the order depends only on the counts, never on how they were
gathered. ``ties="first"`` breaks them by first occurrence instead, as d2l's ``Vocab``
does (a stable sort of a ``Counter``): it reproduces the book's printed indices of rare
words (``rnnlab reproduce``, section 8.2).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Iterable, Mapping

import numpy as np

from rnnlab.checks import integer, token_ids
from rnnlab.errors import DataError, UsageError
from rnnlab.fileio import read_regular_file

UNK = "<unk>"
TIE_ORDERS = ("token", "first")


class Vocab:
    """Map tokens to indices and back.

    >>> v = Vocab(list("hello"))
    >>> v.idx_to_token[:3], v["l"], v.to_tokens([v["h"]])
    (['<unk>', 'l', 'e'], 1, ['h'])
    """

    def __init__(self, tokens: Iterable[str] | None = None, min_freq: int = 0,
                 reserved_tokens: Iterable[str] | None = None,
                 counts: Mapping[str, int] | None = None, ties: str = "token", subword=None) -> None:
        integer(min_freq, "min_freq", 0)
        if tokens is not None and not hasattr(tokens, "__iter__"):
            raise UsageError(f"tokens must be a list of string tokens (or of token lists), got "
                             f"{type(tokens).__name__}")
        if reserved_tokens is not None and (not isinstance(reserved_tokens, (list, tuple))
                                            or not all(isinstance(tok, str) for tok in reserved_tokens)):
            raise UsageError(f"reserved_tokens must be a list of strings, got {reserved_tokens!r:.60}")
        if ties not in TIE_ORDERS:
            raise UsageError(f"unknown tie order '{ties}'; choose one of {', '.join(TIE_ORDERS)}")
        if counts is None:
            counts = Counter(flatten(tokens) if tokens is not None else [])
        self.min_freq = int(min_freq)
        self.reserved_tokens = list(reserved_tokens or [])
        self.ties = ties
        # Descending frequency, then token ascending: deterministic for any count source.
        # "first": Python's sort is stable, so equal counts keep the counts' insertion order.
        tie_key = (lambda kv: (-kv[1], kv[0])) if ties == "token" else (lambda kv: -kv[1])
        self.token_freqs: list[tuple[str, int]] = sorted(
            ((tok, int(freq)) for tok, freq in counts.items()), key=tie_key)
        self.idx_to_token: list[str] = [UNK]
        for tok in self.reserved_tokens:
            if tok not in self.idx_to_token:
                self.idx_to_token.append(tok)
        seen = set(self.idx_to_token)
        for tok, freq in self.token_freqs:
            if freq < self.min_freq:
                break
            if tok not in seen:
                self.idx_to_token.append(tok)
                seen.add(tok)
        self.token_to_idx: dict[str, int] = {tok: i for i, tok in enumerate(self.idx_to_token)}
        # bpe/unigram tokens: the rnnlab.data.subword.SubwordTokenizer that makes them from text
        # (kept beside the vocabulary in a checkpoint, as its own file; not part of to_dict()).
        self.subword = subword

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __contains__(self, token: str) -> bool:
        return token in self.token_to_idx

    def __getitem__(self, tokens):
        """Index of one token (``<unk>``'s, 0, when unknown) or a list of indices."""
        if isinstance(tokens, (list, tuple)):
            return [self.__getitem__(tok) for tok in tokens]
        return self.token_to_idx.get(tokens, self.unk)

    @property
    def unk(self) -> int:
        return 0

    def to_tokens(self, indices):
        """Token of one index, or the list of tokens of a sequence of indices.

        A one-element list gives a one-element list (d2l returned a bare string). An index
        outside ``[0, len(self))`` is a :class:`DataError` (a negative one never wraps around),
        anything but integers a :class:`UsageError`.
        """
        scalar = np.ndim(indices) == 0 and not isinstance(indices, (list, tuple))
        ids = token_ids([indices] if scalar else indices, len(self), "indices")
        tokens = [self.idx_to_token[i] for i in ids.tolist()]
        return tokens[0] if scalar else tokens

    @property
    def dtype(self) -> np.dtype:
        """Smallest unsigned integer type that holds every index."""
        return smallest_uint(len(self) - 1)

    # ---- persistence -------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": "rnnlab.vocab/1", "unk": UNK, "min_freq": self.min_freq,
                "reserved_tokens": self.reserved_tokens, "idx_to_token": self.idx_to_token,
                "token_freqs": [[tok, freq] for tok, freq in self.token_freqs],
                **({"ties": self.ties} if self.ties != "token" else {})}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocab":
        try:
            vocab = cls(counts={tok: freq for tok, freq in data["token_freqs"]},
                        min_freq=data["min_freq"], reserved_tokens=data["reserved_tokens"],
                        ties=data.get("ties", "token"))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a valid rnnlab vocabulary: {exc}") from None
        if vocab.idx_to_token != data.get("idx_to_token"):
            raise DataError("vocabulary file is inconsistent: idx_to_token does not follow from token_freqs")
        return vocab

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        """The vocabulary :meth:`save` wrote to ``path``; a file that is missing, not UTF-8,
        not JSON or not a vocabulary is a :class:`DataError` naming it."""
        if not isinstance(path, (str, os.PathLike)):
            raise UsageError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        try:
            data = json.loads(read_regular_file(path).decode("utf-8"))
        except OSError as exc:
            raise DataError(f"cannot read vocabulary file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"vocabulary file {path} is not valid UTF-8 (byte {exc.start})") from None
        except ValueError as exc:  # json.JSONDecodeError
            raise DataError(f"vocabulary file {path} is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DataError(f"vocabulary file {path} holds a JSON {type(data).__name__}, not an rnnlab vocabulary "
                            "(an object with token_freqs, min_freq, reserved_tokens, idx_to_token)")
        try:
            return cls.from_dict(data)
        except DataError as exc:
            raise DataError(f"vocabulary file {path}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.idx_to_token[:8])
        return f"Vocab(size={len(self)}, tokens=[{head}{', ...' if len(self) > 8 else ''}])"


def flatten(tokens: Iterable) -> Iterable[str]:
    """Accept a flat token list or a list of token lists (d2l's per-line layout)."""
    for item in tokens:
        if isinstance(item, (list, tuple)):
            yield from item
        else:
            yield item


def smallest_uint(max_value: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)
