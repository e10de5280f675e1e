"""Corpus -> encoded train/val/test token arrays plus the vocabulary.

This is the one entry point the commands use: ``prepare_text(corpus, ...)`` runs
preprocess -> tokenize -> split -> vocabulary -> encode and returns a
:class:`TextDataset`. Character and byte tokens stay NumPy arrays throughout.
A prepared corpus (a folder from ``rnnlab corpus prepare``, :mod:`rnnlab.data.prepare`)
is already split and encoded: its splits are ``numpy.memmap`` arrays of the same ids.

Splits are contiguous (no shuffling of text):

* fractions ``(train, val, test)``, default ``(0.9, 0.05, 0.05)``: the vocabulary is
  built from the training part only, so validation text may contain ``<unk>``.
* ``"d2l"``: as the book, the vocabulary comes from the whole text and training
  uses its first ``max_tokens`` tokens (all when ``None``); whatever follows is the
  validation split, so the book's setting also gets a held-out perplexity.
* ``"files"``: the corpus carries validation and/or test text read from files of
  their own (:attr:`Corpus.val`, :attr:`Corpus.test`): the whole text (or its first
  ``max_tokens`` tokens) trains, and the vocabulary comes from that training part only;
  each held-out file is preprocessed and tokenized on its own the same way and
  encoded with that vocabulary (unseen tokens become ``<unk>``). A missing file gives
  an empty split. A corpus with held-out files always uses this split; the default
  fractions are taken to mean "not given", anything else is refused.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from rnnlab.data.corpus import Corpus
from rnnlab.data.encode import byte_codes, char_counts, codepoints, encode, encode_codes
from rnnlab.data.text import check_mode, check_tokenizer, preprocess, tokenize
from rnnlab.data.vocab import Vocab
from rnnlab.errors import DataError, UsageError

DEFAULT_SPLIT = (0.9, 0.05, 0.05)


@dataclass
class TextDataset:
    """Encoded splits of one corpus. Arrays are 1-D, dtype ``vocab.dtype``."""

    vocab: Vocab
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mode: str
    token: str
    corpus_name: str = ""
    split: object = DEFAULT_SPLIT
    info: dict = field(default_factory=dict)

    def part(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise UsageError(f"unknown split '{name}'; choose train, val or test")
        return getattr(self, name)

    def preprocessing(self) -> dict:
        """What a checkpoint must store to encode new text the same way."""
        return {"mode": self.mode, "token": self.token}


def parse_split(split) -> tuple[float, float, float] | str:
    """Accept ``"d2l"``, ``"files"``, ``"0.9,0.05,0.05"`` or a 3-tuple of fractions."""
    if split in ("d2l", "files"):
        return split
    if isinstance(split, str):
        try:
            split = tuple(float(x) for x in split.split(","))
        except ValueError:
            raise UsageError(f"--split must be 'd2l' or three fractions like 0.9,0.05,0.05, got '{split}'") from None
    try:
        fractions = tuple(float(x) for x in split)
    except (TypeError, ValueError):  # not a sequence, or one holding something other than numbers
        raise UsageError(f"--split must be 'd2l' or three fractions like 0.9,0.05,0.05, got {split!r:.60}") \
            from None
    # NaN compares false with everything, so it is refused by name rather than by the ranges below
    if (len(fractions) != 3 or not all(map(math.isfinite, fractions)) or any(f < 0 for f in fractions)
            or fractions[0] <= 0 or sum(fractions) > 1 + 1e-9):
        raise UsageError(f"--split fractions must be three finite non-negative numbers, train > 0, summing to <= 1; "
                         f"got {split}")
    return fractions


def _token_stream(text: str, mode: str, token: str):
    """(codes or token list, counter-builder) for the whole text."""
    segments = preprocess(text, mode)
    if token == "char":
        return codepoints("".join(segments))
    if token == "byte":
        return byte_codes("".join(segments))
    return tokenize(segments, "word", mode)


def _count(stream) -> Counter:
    return char_counts(stream) if isinstance(stream, np.ndarray) else Counter(stream)


def _encode(stream, vocab: Vocab) -> np.ndarray:
    return encode_codes(stream, vocab) if isinstance(stream, np.ndarray) else encode(stream, vocab, "word")


def prepare_text(corpus: Corpus | str, mode: str = "raw", token: str = "char", split=DEFAULT_SPLIT,
                 min_freq: int = 0, max_tokens: int | None = None, vocab: Vocab | None = None) -> TextDataset:
    """Preprocess, tokenize, split and encode ``corpus`` (a :class:`Corpus` or a string).

    ``vocab`` given (for example from a checkpoint) is used as is; otherwise one is
    built as described in the module docstring.
    """
    check_mode(mode)
    check_tokenizer(token)
    split = parse_split(split)
    if max_tokens is not None and max_tokens < 1:
        raise UsageError(f"max_tokens must be positive, got {max_tokens}")
    if getattr(corpus, "is_prepared", False):
        # A prepared folder (rnnlab.data.prepare): memory-mapped ids, already split and encoded.
        from rnnlab.data.prepare import dataset_from_prepared
        return dataset_from_prepared(corpus, mode, token, split, min_freq, max_tokens, vocab)
    text = corpus.text if isinstance(corpus, Corpus) else corpus
    name = corpus.name if isinstance(corpus, Corpus) else ""
    held_out = {role: getattr(corpus, role, None) for role in ("val", "test")}
    split = _files_split(split, held_out, name)
    stream = _token_stream(text, mode, token)
    n = len(stream)
    if n == 0:
        raise DataError(f"corpus '{name}' has no {token} tokens after {mode} preprocessing")
    if split == "files":
        return _prepare_files(stream, held_out, mode, token, name, min_freq, max_tokens, vocab)
    if split == "d2l":
        n_train = n if max_tokens is None else min(max_tokens, n)
        bounds = (n_train, n, n)
        vocab_source = stream
    else:
        n_train = int(n * split[0])
        if max_tokens is not None:
            n_train = min(n_train, max_tokens)
        n_val = int(n * split[1])
        n_test = int(n * split[2])
        bounds = (n_train, n_train + n_val, n_train + n_val + n_test)
        vocab_source = stream[:n_train]
    if vocab is None:
        vocab = Vocab(counts=_count(vocab_source), min_freq=min_freq)
    encoded = _encode(stream, vocab)
    train, val, test = encoded[:bounds[0]], encoded[bounds[0]:bounds[1]], encoded[bounds[1]:bounds[2]]
    info = {"num_tokens": n, "train_tokens": len(train), "val_tokens": len(val), "test_tokens": len(test)}
    return TextDataset(vocab=vocab, train=train, val=val, test=test, mode=mode, token=token,
                       corpus_name=name, split=split, info=info)


def check_held_out_options(split: str | None, val: str | None, test: str | None) -> None:
    """Refuse an explicit ``split`` (None = not given) together with held-out files."""
    if (val or test) and split is not None and split != "files":
        raise UsageError(f"--val/--test make the whole corpus the training split; they cannot be combined with "
                         f"--split {split}")


def _files_split(split, held_out: dict, name: str):
    """The split to use when the corpus may carry held-out files (see the module docstring)."""
    if any(part is not None for part in held_out.values()):
        if split not in ("files", DEFAULT_SPLIT):
            shown = split if isinstance(split, str) else ",".join(f"{f:g}" for f in split)
            raise UsageError(f"corpus '{name}' has separate validation/test files, which make the whole corpus the "
                             f"training split; they cannot be combined with --split {shown}")
        return "files"
    if split == "files":
        raise UsageError("split 'files' needs validation or test files: --val FILE / --test FILE, or a folder "
                         "holding train/valid/test files")
    return split


def _prepare_files(stream, held_out: dict, mode: str, token: str, name: str, min_freq: int,
                   max_tokens: int | None, vocab: Vocab | None) -> TextDataset:
    """The ``"files"`` split: ``stream`` (the training tokens) plus held-out Corpus objects."""
    train_stream = stream if max_tokens is None else stream[:max_tokens]
    if vocab is None:
        vocab = Vocab(counts=_count(train_stream), min_freq=min_freq)
    parts = {"train": _encode(train_stream, vocab)}
    for role, part in held_out.items():
        if part is None:
            parts[role] = parts["train"][:0]  # empty, same dtype
            continue
        part_stream = _token_stream(part.text, mode, token)
        if len(part_stream) == 0:
            raise DataError(f"the {'validation' if role == 'val' else 'test'} file {part.sources[0]} has no {token} "
                            f"tokens after {mode} preprocessing")
        parts[role] = _encode(part_stream, vocab)
    info = {"num_tokens": len(stream) + len(parts["val"]) + len(parts["test"]),
            **{f"{key}_tokens": len(ids) for key, ids in parts.items()}}
    return TextDataset(vocab=vocab, mode=mode, token=token, corpus_name=name, split="files", info=info, **parts)


def encode_text(text: str, vocab: Vocab, mode: str, token: str) -> np.ndarray:
    """Encode new text exactly as a dataset with this preprocessing was encoded."""
    return _encode(_token_stream(text, mode, token), vocab)
