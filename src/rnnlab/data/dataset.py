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

import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlab.artifacts import is_sha256, verify_member
from rnnlab.data.corpus import MANIFEST, Corpus, PreparedCorpus, read_manifest
from rnnlab.data.encode import byte_codes, char_counts, codepoints, encode, encode_codes
from rnnlab.data.subword import TOKENIZER_FILE, SubwordTokenizer, check_subword_min_freq, check_vocab_size, token_bytes
from rnnlab.data.text import SUBWORDS, check_mode, check_tokenizer, detokenize, preprocess, tokenize
from rnnlab.data.vocab import Vocab
from rnnlab.errors import DataError, RnnlabError, UsageError

DEFAULT_SPLIT = (0.9, 0.05, 0.05)
SPLITS = ("train", "val", "test")
# How much of a prepared corpus is checked on open (see rnnlab.data.prepare's module docstring).
VERIFY_LEVELS = ("sizes", "first-use", "full")


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

    def covered_chars(self, name: str) -> int:
        """Characters of text that split ``name``'s scored tokens (all but its first) cover:
        counted from the text when the dataset was built (word tokens), else from the ids
        (:func:`covered_chars`)."""
        recorded = self.info.get(f"{name}_chars")
        return int(recorded) if recorded is not None else covered_chars(self.vocab, self.token, self.part(name))

    def preprocessing(self) -> dict:
        """What a checkpoint must store to encode new text the same way (for subword tokens,
        also the name of the tokenizer's file in the folder: :meth:`checkpoint_documents`)."""
        if self.token in SUBWORDS:
            return {"mode": self.mode, "token": self.token, "tokenizer_file": TOKENIZER_FILE}
        return {"mode": self.mode, "token": self.token}

    def checkpoint_documents(self) -> dict[str, bytes]:
        """Files a checkpoint keeps beside its tensors: the subword tokenizer's JSON, if any."""
        if self.token in SUBWORDS and self.vocab.subword is not None:
            return {TOKENIZER_FILE: self.vocab.subword.to_json().encode("utf-8")}
        return {}


def covered_chars(vocab: Vocab, token: str, ids) -> int:
    """Characters of text that the scored tokens ``ids[1:]`` cover, as
    :func:`rnnlab.scoring.score_text` counts them (from the end of the first token to the end
    of the last), where only ids are at hand: one each for ``char``; for ``byte`` and subword
    tokens the characters their bytes complete (exact); for ``word`` tokens, their text
    rebuilt with :func:`rnnlab.data.text.detokenize` (one space between words, which is exact
    for d2l preprocessing; a dataset counts raw word splits from the text instead,
    :meth:`TextDataset.covered_chars`)."""
    if len(ids) < 2:
        return 0
    if token == "char":
        return len(ids) - 1
    tokens = vocab.to_tokens(np.asarray(ids).tolist())
    if token == "word":
        return len(detokenize(tokens, token)) - len(tokens[0])
    pieces = [token_bytes(tok) if token in SUBWORDS else tok.encode("latin-1") for tok in tokens]
    text = b"".join(pieces).decode("utf-8", errors="replace")
    char_ends = np.cumsum(np.fromiter((len(ch.encode("utf-8")) for ch in text), dtype=np.int64, count=len(text)))
    byte_ends = np.cumsum(np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces)))
    ends = np.searchsorted(char_ends, byte_ends[[0, -1]], side="right")
    return int(ends[1] - ends[0])


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


def _token_stream(text: str, mode: str, token: str, subword=None):
    """Code points / bytes (an array) or the token list of the whole text."""
    segments = preprocess(text, mode)
    if token in SUBWORDS:
        return tokenize(segments, token, mode, subword=subword)
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
                 min_freq: int = 0, max_tokens: int | None = None, vocab: Vocab | None = None,
                 vocab_size: int | None = None) -> TextDataset:
    """Preprocess, tokenize, split and encode ``corpus`` (a :class:`Corpus` or a string).

    ``vocab`` given (for example from a checkpoint) is used as is; otherwise one is
    built as described in the module docstring. ``vocab_size``: the subword vocabulary
    size of ``bpe``/``unigram`` tokens (:func:`rnnlab.data.subword.check_vocab_size`).
    """
    check_mode(mode)
    check_tokenizer(token)
    vocab_size = check_vocab_size(vocab_size, token)
    check_subword_min_freq(min_freq, token)
    split = parse_split(split)
    if max_tokens is not None and max_tokens < 1:
        raise UsageError(f"max_tokens must be positive, got {max_tokens}")
    if isinstance(corpus, PreparedCorpus):
        # A prepared folder (rnnlab.data.prepare): memory-mapped ids, already split and encoded.
        return dataset_from_prepared(corpus, mode, token, split, min_freq, max_tokens, vocab)
    text = corpus.text if isinstance(corpus, Corpus) else corpus
    name = corpus.name if isinstance(corpus, Corpus) else ""
    held_out = {role: getattr(corpus, role, None) for role in ("val", "test")}
    split = _files_split(split, held_out, name)
    if token in SUBWORDS:
        return _prepare_subword(text, held_out, mode, token, name, split, min_freq, max_tokens, vocab, vocab_size)
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
    if token == "word":  # spaces are no tokens: the characters a split covers come from the text
        ends = word_ends("".join(preprocess(text, mode)), stream)
        info.update({f"{role}_chars": _span_chars(ends, lo, hi) for role, lo, hi in
                     (("val", bounds[0], bounds[1]), ("test", bounds[1], bounds[2]))})
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


def word_ends(scored: str, tokens: list[str]) -> np.ndarray:
    """``(len(tokens),) int64``: where each word token ends in ``scored``, the preprocessed
    text (its segments joined), found left to right."""
    ends = np.empty(len(tokens), dtype=np.int64)
    position = 0
    for i, tok in enumerate(tokens):
        position = scored.index(tok, position) + len(tok)
        ends[i] = position
    return ends


def _span_chars(ends: np.ndarray, lo: int, hi: int) -> int:
    """Characters that tokens ``lo + 1 .. hi - 1`` (a split's scored tokens) cover."""
    return int(ends[hi - 1] - ends[lo]) if hi - lo >= 2 else 0


def _prepare_files(stream, held_out: dict, mode: str, token: str, name: str, min_freq: int,
                   max_tokens: int | None, vocab: Vocab | None) -> TextDataset:
    """The ``"files"`` split: ``stream`` (the training tokens) plus held-out Corpus objects."""
    train_stream = stream if max_tokens is None else stream[:max_tokens]
    if vocab is None:
        vocab = Vocab(counts=_count(train_stream), min_freq=min_freq)
    parts = {"train": _encode(train_stream, vocab)}
    held_out_chars = {}
    for role, part in held_out.items():
        if part is None:
            parts[role] = parts["train"][:0]  # empty, same dtype
            continue
        part_stream = _token_stream(part.text, mode, token)
        if len(part_stream) == 0:
            raise DataError(f"the {'validation' if role == 'val' else 'test'} file {part.sources[0]} has no {token} "
                            f"tokens after {mode} preprocessing")
        parts[role] = _encode(part_stream, vocab)
        if token == "word":
            held_out_chars[f"{role}_chars"] = _span_chars(
                word_ends("".join(preprocess(part.text, mode)), part_stream), 0, len(part_stream))
    info = {"num_tokens": len(stream) + len(parts["val"]) + len(parts["test"]),
            **{f"{key}_tokens": len(ids) for key, ids in parts.items()}, **held_out_chars}
    return TextDataset(vocab=vocab, mode=mode, token=token, corpus_name=name, split="files", info=info, **parts)


def _prepare_subword(text: str, held_out: dict, mode: str, token: str, name: str, split, min_freq: int,
                     max_tokens: int | None, vocab: Vocab | None, vocab_size: int) -> TextDataset:
    """``bpe``/``unigram`` tokens: the tokenizer is learnt from the training split's text only.

    Fractions cut the preprocessed text by characters (so the tokenizer never sees held-out
    text) and each part is tokenized on its own; ``"d2l"`` learns it from the whole text, as
    that split's vocabulary is; ``"files"`` from the training text. The vocabulary holds every
    subword of the tokenizer (those unseen in training with count 0), so nothing is ``<unk>``.
    """
    scored = "".join(preprocess(text, mode))
    if not scored:
        raise DataError(f"corpus '{name}' has no {token} tokens after {mode} preprocessing")
    if split == "files":
        parts = {"train": scored, **{role: None if part is None else "".join(preprocess(part.text, mode))
                                     for role, part in held_out.items()}}
        for role, part in held_out.items():
            if part is not None and not parts[role]:
                raise DataError(f"the {'validation' if role == 'val' else 'test'} file {part.sources[0]} has no "
                                f"{token} tokens after {mode} preprocessing")
    elif split == "d2l":
        parts = {"train": scored}
    else:
        n = len(scored)
        a = int(n * split[0])
        b = a + int(n * split[1])
        parts = {"train": scored[:a], "val": scored[a:b], "test": scored[b:b + int(n * split[2])]}
    if not parts["train"]:
        raise DataError(f"the training split of corpus '{name}' is empty after {mode} preprocessing")
    if vocab is None:
        subword = SubwordTokenizer.train(parts["train"], vocab_size, token)
    elif vocab.subword is None or vocab.subword.kind != token:
        raise UsageError(f"a --token {token} dataset needs the vocabulary's {token} tokenizer, and this vocabulary "
                         "has none")
    else:
        subword = vocab.subword
    tokens = {role: subword.tokens(part) if part else [] for role, part in parts.items()}
    if split == "d2l":
        n_train = len(tokens["train"]) if max_tokens is None else min(max_tokens, len(tokens["train"]))
        tokens = {"train": tokens["train"][:n_train], "val": tokens["train"][n_train:], "test": []}
    elif max_tokens is not None:
        tokens["train"] = tokens["train"][:max_tokens]
    if vocab is None:
        counts = Counter({tok: 0 for tok in subword.vocabulary()})
        counts.update(tokens["train"])
        vocab = Vocab(counts=counts, min_freq=min_freq, subword=subword)
    ids = {role: encode(tokens.get(role, []), vocab, "word") for role in ("train", "val", "test")}
    info = {"num_tokens": sum(len(part) for part in ids.values()),
            **{f"{role}_tokens": len(part) for role, part in ids.items()}}
    return TextDataset(vocab=vocab, mode=mode, token=token, corpus_name=name, split=split, info=info, **ids)


def encode_text(text: str, vocab: Vocab, mode: str, token: str) -> np.ndarray:
    """Encode new text exactly as a dataset with this preprocessing was encoded."""
    return _encode(_token_stream(text, mode, token, getattr(vocab, "subword", None)), vocab)


# ----------------------------------------------------------------------------------
# prepared folders (rnnlab corpus prepare): reading


def _manifest_error(folder: Path, key: str, problem: str) -> DataError:
    """The one error for a bad value in a prepared corpus's manifest: it names the file and the key."""
    return DataError(f"{folder / MANIFEST}: key '{key}' {problem}; prepare the corpus again")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_verify(verify) -> str:
    """``verify`` as one of :data:`VERIFY_LEVELS` (``True``: "full", ``False``: "sizes")."""
    level = {True: "full", False: "sizes"}.get(verify, verify) if isinstance(verify, bool) else verify
    if level not in VERIFY_LEVELS:
        raise UsageError(f"verify must be one of {', '.join(VERIFY_LEVELS)} (or True/False), got {verify!r}")
    return level


def check_shards(folder: Path, manifest: dict, verify="sizes") -> dict[str, tuple[Path, int] | None]:
    """Every shard the manifest names, checked (see the module docstring for ``verify``):
    ``{split: (path, num_tokens)}``, None for a split without tokens."""
    level = _check_verify(verify)
    try:
        dtype = np.dtype(manifest["dtype"])
    except (KeyError, TypeError, ValueError):
        raise _manifest_error(folder, "dtype", f"must name an unsigned integer type, got {manifest.get('dtype')!r:.60}"
                              ) from None
    if dtype.kind != "u":
        raise _manifest_error(folder, "dtype", f"must name an unsigned integer type, got {manifest['dtype']!r:.60}")
    splits = manifest.get("splits")
    if not isinstance(splits, dict):
        raise _manifest_error(folder, "splits", "must be a JSON object with train, val and test")
    found = {}
    for split in SPLITS:
        part = splits.get(split)
        shards = part.get("shards") if isinstance(part, dict) else None
        if not isinstance(shards, list):
            raise _manifest_error(folder, f"splits.{split}.shards", "must be a list of shards")
        if len(shards) > 1:
            raise DataError(f"{folder}: split {split} has {len(shards)} shards; this rnnlab reads one per "
                            "split (format 1)")
        found[split] = None
        for index, shard in enumerate(shards):
            key = f"splits.{split}.shards[{index}]"
            if not isinstance(shard, dict):
                raise _manifest_error(folder, key, "must be a JSON object")
            for key_name, check, expected in (("num_tokens", lambda v: _is_count(v) and v > 0, "a positive integer"),
                                              ("bytes", _is_count, "an integer >= 0"),
                                              ("sha256", is_sha256, "a SHA-256 (64 hex digits)")):
                if not check(shard.get(key_name)):
                    raise _manifest_error(folder, f"{key}.{key_name}", f"must be {expected}, got "
                                          f"{json.dumps(shard.get(key_name))[:60]}")
            if shard["bytes"] != shard["num_tokens"] * dtype.itemsize:
                raise _manifest_error(folder, f"{key}.bytes", f"is {shard['bytes']}, but {shard['num_tokens']} "
                                      f"{dtype.name} tokens take {shard['num_tokens'] * dtype.itemsize}")
            path = verify_member(folder, shard.get("file"), f"{folder / MANIFEST}: key '{key}.file'", MANIFEST,
                                 size=shard["bytes"], sha256=None if level == "sizes" else shard["sha256"],
                                 error=DataError, once_per_process=level == "first-use",
                                 advice="prepare the corpus again")
            found[split] = (path, shard["num_tokens"])
    return found


def prepared_vocab(folder: Path, manifest: dict) -> Vocab:
    """The vocabulary of a prepared corpus; for ``bpe``/``unigram`` tokens with its tokenizer,
    read from the ``tokenizer.json`` the manifest names (inside the folder, its size and
    SHA-256 checked: it is small) and making exactly tokens of the vocabulary."""
    vocab = Vocab.from_dict(manifest["vocab"])
    token = manifest["preprocessing"]["token"]
    if token not in SUBWORDS:
        return vocab
    entry = manifest.get("tokenizer")
    if not isinstance(entry, dict) or not _is_count(entry.get("bytes")) or not is_sha256(entry.get("sha256")):
        raise _manifest_error(folder, "tokenizer", f"must name the {token} tokenizer's file with its bytes and "
                              "sha256")
    path = verify_member(folder, entry.get("file"), f"{folder / MANIFEST}: key 'tokenizer.file'", MANIFEST,
                         size=entry["bytes"], sha256=entry["sha256"], error=DataError,
                         advice="prepare the corpus again")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text, so not a tokenizer's JSON") from None
    try:
        subword = SubwordTokenizer.from_json(text, str(path), kind=token)
    except RnnlabError as exc:
        raise DataError(str(exc)) from None
    if set(subword.vocabulary()) - set(vocab.idx_to_token):
        raise DataError(f"{path} makes tokens that the vocabulary in {folder / MANIFEST} lacks; prepare the corpus "
                        "again")
    vocab.subword = subword
    return vocab


def open_prepared(folder: str | os.PathLike, verify: str | bool = "sizes") -> TextDataset:
    """A prepared corpus as a :class:`TextDataset` whose splits are read-only
    ``numpy.memmap`` arrays (``(num_tokens,)``, the manifest's dtype), never loaded whole.

    Every shard the manifest names must lie inside ``folder`` with the recorded size.
    ``verify``: ``"sizes"`` (default, O(1)), ``"first-use"`` (also each shard's SHA-256
    the first time this process uses it) or ``"full"`` / ``True`` (every SHA-256 now,
    reading all the data once); see the module docstring.
    """
    path = Path(os.path.expanduser(os.fspath(folder)))
    manifest = read_manifest(path)
    shards = check_shards(path, manifest, verify)
    try:
        vocab = prepared_vocab(path, manifest)
        dtype = np.dtype(manifest["dtype"])
        parts = {}
        for split in SPLITS:
            shard = shards[split]
            parts[split] = (np.memmap(shard[0], dtype=dtype.newbyteorder("<"), mode="r", shape=(shard[1],))
                            if shard else np.zeros(0, dtype=dtype))
        split = manifest["split"]
        pre = manifest["preprocessing"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path / MANIFEST} is not a valid rnnlab corpus manifest ({exc.__class__.__name__}: "
                        f"{exc})") from None
    info = {"num_tokens": manifest["num_tokens"], **{f"{s}_tokens": len(parts[s]) for s in SPLITS},
            "prepared": os.path.abspath(path)}
    return TextDataset(vocab=vocab, mode=pre["mode"], token=pre["token"], corpus_name=manifest["source"]["name"],
                       split=tuple(split) if isinstance(split, list) else split, info=info, **parts)


def verify_prepared(folder: str | os.PathLike) -> dict:
    """Check every file of a prepared corpus now (``rnnlab corpus verify``): the manifest,
    each shard's place inside the folder, its size and its SHA-256 (reads all the data).

    Returns ``{"folder", "shards", "bytes", "num_tokens", "seconds", "mb_per_s"}``;
    raises :class:`DataError` naming the first file or key that does not match.
    """
    started = time.perf_counter()
    path = Path(os.path.expanduser(os.fspath(folder)))
    manifest = read_manifest(path)
    shards = [shard for shard in check_shards(path, manifest, verify="full").values() if shard]
    open_prepared(path)  # the vocabulary and the other records, as a command reads them
    seconds = time.perf_counter() - started
    total = sum(os.stat(shard[0]).st_size for shard in shards)
    return {"folder": str(path), "shards": len(shards), "bytes": total,
            "num_tokens": sum(shard[1] for shard in shards), "seconds": round(seconds, 3),
            "mb_per_s": round(total / 1e6 / seconds, 1) if seconds > 0 else None}


def dataset_from_prepared(corpus: PreparedCorpus, mode: str, token: str, split, min_freq: int,
                          max_tokens: int | None, vocab: Vocab | None) -> TextDataset:
    """:func:`rnnlab.data.dataset.prepare_text` for a prepared folder: the folder fixes
    the preprocessing, split and vocabulary, so other values are refused, except the
    defaults (split 0.9,0.05,0.05 and min_freq 0 mean "not given"). ``max_tokens`` keeps
    the first ``max_tokens`` training tokens; unlike in memory the vocabulary stays the
    folder's (built from the whole training split)."""
    data = open_prepared(corpus.location, verify="first-use")
    where = corpus.location
    if (mode, token) != (data.mode, data.token):
        raise UsageError(f"{where} was prepared with --mode {data.mode} --token {data.token}; pass those (or "
                         f"prepare it again with --mode {mode} --token {token})")
    if split != DEFAULT_SPLIT and split != data.split:
        shown = lambda s: s if isinstance(s, str) else ",".join(f"{f:g}" for f in s)  # noqa: E731
        raise UsageError(f"{where} was prepared with --split {shown(data.split)}, not {shown(split)}; leave out "
                         "--split or prepare it again")
    manifest_min = read_manifest(where)["settings"]["min_freq"]
    if min_freq and min_freq != manifest_min:
        raise UsageError(f"{where} was prepared with --min-freq {manifest_min}; its vocabulary is fixed")
    if vocab is not None and vocab.idx_to_token != data.vocab.idx_to_token:
        raise DataError(f"{where} was encoded with another vocabulary than the model's ({len(data.vocab)} vs "
                        f"{len(vocab)} tokens); prepare it with --vocab FOLDER of the training corpus")
    if max_tokens is not None:
        data.train = data.train[:max_tokens]
        data.info["train_tokens"] = len(data.train)
    return data
