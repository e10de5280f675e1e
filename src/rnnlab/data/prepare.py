"""Prepared corpora: text of any size -> memory-mappable token shards + a JSON manifest.

:func:`prepare_corpus` streams a text file (or a folder or glob of files, resolved as
:func:`rnnlab.data.corpus.load_corpus` resolves them) in chunks of ``chunk_bytes``;
memory stays bounded whatever the input size. :func:`open_prepared` reads the result
back as a :class:`rnnlab.data.dataset.TextDataset` whose splits are ``numpy.memmap``
arrays, so the batch iterators read only the rows they need.

The token ids are exactly those of the in-memory path
(:func:`rnnlab.data.dataset.prepare_text`) on the same text, for every mode and
tokenizer, because the stream is cut only where that path's preprocessing and
tokenization are additive:

* bytes are decoded with an incremental UTF-8 decoder, so a character cut at a chunk
  edge is completed by the next chunk (and ``--encoding-errors`` applies as in memory);
* ``d2l`` works line by line, so each chunk is cut after its last line break (a ``\\r``
  at the very end waits, it may be the first half of ``\\r\\n``); the partial last line
  is carried into the next chunk;
* ``raw`` words (``\\w+``, one symbol, a newline) are cut before the trailing run of word
  characters, which is carried; chars and bytes need no carry;
* several files are joined as :func:`load_corpus` joins them (a newline after a
  file that does not end with one).

Memory is O(``chunk_bytes``) plus the vocabulary counts, plus the longest line (d2l)
or the longest word (raw words): those are carried whole. A text of one multi-gigabyte
line in d2l mode is read whole -- as it is in memory.

Two passes (plus a partial one):

1. count the tokens (``n``) and, unless ``vocab_from`` gives a vocabulary, count each
   token. The vocabulary comes from the training split only, as in memory; its end
   ``int(n * train_fraction)`` is known only after the whole pass, so the counts of the
   tokens after it are taken off by re-reading from the chunk that holds it (the pass
   records where each chunk starts), about a tenth of the input with the default split.
   ``split="d2l"``: the vocabulary is the whole text's, all of it trains (val/test empty).
   A split folder (``train``/``valid``/``test`` files): the train file's vocabulary,
   each file is its own split, as in memory.
2. encode into one shard per split (``train-00000.bin``, ``val-00000.bin``,
   ``test-00000.bin``: the vocabulary's smallest unsigned dtype, native little-endian
   order), hashing each shard (SHA-256) and each source file (SHA-1) while writing.

``bpe``/``unigram`` tokens (the tokenizer is learnt from the training split first, so
three passes): 1. count the preprocessed characters and cut the splits by characters as
in memory (``int(n * f_train)`` characters, then the others); 2. learn the tokenizer from
the training characters (:func:`rnnlab.data.subword.learning_pieces`: the same pieces as
in memory whatever the chunking); 3. encode each split on its own into the tokenizer's
ids (a temporary file per split, 4 bytes a token), counting the training ones; then the
vocabulary is built (every subword of the tokenizer, unseen ones with count 0) and the
ids mapped to it as the shards are written. The text is cut only where the pieces'
tokens are the whole text's (:func:`rnnlab.data.subword.last_safe_cut`: before an ASCII
white-space character that follows a non-white-space one), so the ids are the in-memory
ones (the library's unigram trainer differs from itself in the last digits of its scores
from run to run, so two unigram tokenizers learnt from one text may differ; given the
same tokenizer, the ids are the same). Memory as above, plus the longest stretch with no
such place (it is carried whole). ``--min-freq`` does not apply: the vocabulary is every
subword. The tokenizer is stored as ``tokenizer.json`` (named in the manifest with its
size and SHA-256, checked on every read).

Split boundaries are those of the in-memory path: ``[0, int(n * f_train))``, then
``int(n * f_val)`` and ``int(n * f_test)`` tokens; tokens after the test split (fractions
summing to less than 1, rounding) are not written. A split of 0 tokens has no shard file.

Crash safety is the artifact protocol's (:mod:`rnnlab.artifacts`): the complete folder
is written into a hidden staging folder (``.rnnlab-tmp-...``, a name no command reads)
and committed as a whole, so an interrupted run (exception, Ctrl-C, SIGKILL) leaves the
old complete folder or none; the next prepare of the same ``--out`` deletes what a
killed run left (only staging folders named for that folder, of a process that has
ended). Re-running on an unchanged input (same files, sizes, modification times and
SHA-1 contents, same options, shards matching their SHA-256) reuses the folder; a
changed input rebuilds it; other options than the folder's need ``overwrite``. A
folder that is not a prepared corpus is never written to.

Checks when reading. Every shard named by ``manifest.json`` must be a file inside the
folder (no absolute path, no ``..``, no symlink leading out) of the recorded size.
Shards are large, so their SHA-256 is checked at a stated, cheaper rate:

* :func:`open_prepared` (default ``verify="sizes"``): names and sizes only, O(1);
* the data a command works on (training, evaluation, n-gram counts, ``corpus stats``:
  :func:`dataset_from_prepared`, ``verify="first-use"``): also the SHA-256 of each
  shard the first time this process uses it; a shard verified earlier in the same
  process and unchanged since (same inode, size and modification time) is not hashed
  again. The cost is one read of the corpus per process (about 0.1 s per 50 MB);
* ``rnnlab corpus verify DIR`` (``verify="full"``): every shard hashed again, always.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Iterator

import numpy as np

from rnnlab.artifacts import KINDS, artifact_file, is_temporary, recover, refuse_foreign_files, staged_folder
from rnnlab.data.corpus import (BUILTIN_NAMES, ENCODING_ERRORS, MANIFEST, PREPARED_FORMAT, REMOTE, Corpus,  # noqa: F401
                                PreparedCorpus, fetch_remote, glob_root, is_glob, manifest_sha1, prepared_corpus,
                                read_manifest, resolve_files, split_folder_files)
# The readers of a prepared folder live below this module (data.corpus, data.dataset), which load
# prepared folders without importing the writer; their names are re-exported here.
from rnnlab.data.dataset import (DEFAULT_SPLIT, SPLITS, VERIFY_LEVELS, TextDataset, check_shards,  # noqa: F401
                                 dataset_from_prepared, open_prepared, parse_split, prepared_vocab, verify_prepared)
from rnnlab.data.encode import byte_codes, codepoints
from rnnlab.data.subword import (SUBWORD_KINDS, TOKENIZER_FILE, SubwordTokenizer, check_subword_min_freq,
                                 check_vocab_size, last_safe_cut)
from rnnlab.data.text import check_mode, check_tokenizer, preprocess, tokenize
from rnnlab.data.vocab import Vocab
from rnnlab.errors import DataError, UsageError
from rnnlab.fileio import file_digest, write_synced
from rnnlab.progress import ByteProgress, logger

FORMAT = PREPARED_FORMAT
KIND = "prepared-corpus"
DEFAULT_CHUNK_BYTES = 4 << 20  # 4 MiB of input per chunk: its temporaries (int64 indices) stay under ~100 MB
_CODE_SPACE = 0x110000  # Unicode code points
_WORD_CHAR = re.compile(r"\w")  # the \w of text._RAW_WORD
_ALL_WORD = re.compile(r"\w*")


def shard_name(split: str, index: int = 0) -> str:
    return f"{split}-{index:05d}.bin"


def is_prepared(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a ``manifest.json`` (what ``--corpus DIR`` looks for)."""
    path = Path(os.path.expanduser(os.fspath(folder)))
    return path.is_dir() and artifact_file(path, MANIFEST).is_file()


# ----------------------------------------------------------------------------------
# streaming tokenization


@dataclass(frozen=True)
class _Mark:
    """Where a token stream can restart: just before one chunk is read."""

    file_index: int
    offset: int        # bytes of that file read before the chunk
    pending: bytes     # the decoder's buffered bytes: an incomplete UTF-8 sequence
    carry: str         # decoded text not yet tokenized: a partial line or word
    last_char: str     # last character decoded from this file so far ("" none)
    newlines: int      # b"\n" in the file before ``offset`` (for error messages)


class _TokenStream:
    """The tokens of ``files`` joined as :func:`load_corpus` joins them, chunk by chunk.

    :meth:`chunks` yields ``(mark, tokens, nbytes)``: ``tokens`` is a ``(k,) uint32``
    code-point array (char), ``(k,) uint8`` (byte) or a list of ``k`` words; ``nbytes``
    is how much input the chunk consumed.
    """

    def __init__(self, files: list[Path], mode: str, token: str, chunk_bytes: int, errors: str) -> None:
        self.files, self.mode, self.token = files, mode, token
        self.chunk_bytes, self.errors = chunk_bytes, errors
        self.join = len(files) > 1  # load_corpus adds a newline only between several files
        self.saw_text = False  # any non-whitespace character (load_corpus refuses blank text)

    def chunks(self, start: _Mark | None = None, digests: list | None = None
               ) -> Iterator[tuple[_Mark | None, object, int]]:
        """Tokens chunk by chunk from ``start`` (the beginning by default). ``digests``:
        a list that receives each file's SHA-1 (only meaningful from the beginning).

        A chunk's mark is None while the carried text is longer than a chunk (a very
        long line or word): such marks are not kept, so memory does not grow with them.
        """
        mark = start or _Mark(0, 0, b"", "", "", 0)
        # The carry as a list of pieces: text with no place to cut is appended, not joined
        # again with every chunk (which would copy a very long line quadratically).
        carry, carry_len = ([mark.carry] if mark.carry else []), len(mark.carry)
        for index in range(mark.file_index, len(self.files)):
            resumed = index == mark.file_index
            offset, newlines = (mark.offset, mark.newlines) if resumed else (0, 0)
            last_char = mark.last_char if resumed else ""
            decoder = codecs.getincrementaldecoder("utf-8")(self.errors)
            decoder.setstate((mark.pending if resumed else b"", 0))
            digest = hashlib.sha1() if digests is not None else None
            path = self.files[index]
            try:
                handle = open(path, "rb")
            except OSError as exc:
                raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
            with handle:
                handle.seek(offset)
                while True:
                    pending = decoder.getstate()[0]
                    here = (_Mark(index, offset, pending, "".join(carry), last_char, newlines)
                            if carry_len <= self.chunk_bytes else None)
                    data = handle.read(self.chunk_bytes)
                    end = not data
                    try:
                        text = decoder.decode(data, final=end)
                    except UnicodeDecodeError as exc:
                        raise self._decode_error(path, pending + data, exc, offset - len(pending), newlines) from None
                    if text:
                        last_char = text[-1]
                        if not self.saw_text and not text.isspace():
                            self.saw_text = True
                    if end and self.join and last_char not in ("", "\n"):
                        text += "\n"
                    if digest is not None:
                        digest.update(data)
                    last = end and index == len(self.files) - 1
                    if not last and self._uncuttable(text):
                        carry.append(text)
                        carry_len += len(text)
                        complete = ""
                    else:
                        complete, rest = self._cut("".join(carry) + text, last)
                        carry, carry_len = ([rest] if rest else []), len(rest)
                    yield here, self._tokens(complete), len(data)
                    offset += len(data)
                    newlines += data.count(b"\n")
                    if end:
                        break
            if digests is not None:
                digests.append(digest.hexdigest())

    @staticmethod
    def _decode_error(path: Path, data: bytes, exc: UnicodeDecodeError, base: int, newlines: int) -> DataError:
        line = newlines + data.count(b"\n", 0, exc.start) + 1
        return DataError(f"{path} is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {base + exc.start} "
                         f"(line {line}); re-encode it as UTF-8 or pass --encoding-errors replace")

    def _uncuttable(self, text: str) -> bool:
        """True when ``text`` holds no place to cut (no line break in d2l mode, only word
        characters for raw words): all of it waits, whatever comes before."""
        if self.mode == "d2l":
            return "\n" not in text and "\r" not in text
        return self.token == "word" and _ALL_WORD.fullmatch(text) is not None

    def _cut(self, text: str, last: bool) -> tuple[str, str]:
        """Split ``text`` into what can be tokenized now and what must wait for more text."""
        if last:
            return text, ""
        if self.mode == "d2l":
            k = max(text.rfind("\n"), text.rfind("\r"))
            if k == len(text) - 1 and text.endswith("\r"):  # may be the first half of "\r\n"
                k = max(text.rfind("\n", 0, k), text.rfind("\r", 0, k))
            return text[:k + 1], text[k + 1:]
        if self.token == "word":
            i = len(text)
            while i > 0 and _WORD_CHAR.match(text[i - 1]):
                i -= 1
            return text[:i], text[i:]
        return text, ""

    def _tokens(self, text: str):
        segments = preprocess(text, self.mode) if text else []
        if self.token in SUBWORD_KINDS:  # the preprocessed text: _subword_pieces cuts it where tokens allow
            return "".join(segments)
        if self.token == "char":
            return codepoints("".join(segments))
        if self.token == "byte":
            return byte_codes("".join(segments))
        return tokenize(segments, "word", self.mode)


class _Counts:
    """Token counts: a dense array over code points / bytes, a Counter for words."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.dense = None if token == "word" else np.zeros(_CODE_SPACE if token == "char" else 256, np.int64)
        self.words: Counter = Counter()

    def add(self, tokens) -> None:
        if self.dense is not None:
            if len(tokens):
                self.dense += np.bincount(tokens, minlength=len(self.dense))
        else:
            self.words.update(tokens)

    def minus(self, other: "_Counts") -> Counter:
        """``self - other`` as a Counter of positive counts (the keys :class:`Vocab` takes)."""
        if self.dense is not None:
            diff = self.dense - other.dense
            return Counter({chr(int(v)): int(diff[v]) for v in np.flatnonzero(diff > 0)})
        counts = self.words.copy()
        counts.subtract(other.words)
        return +counts  # drops zeros: a token seen only after the training split is not in it


def _encoder(vocab: Vocab, token: str):
    """A function tokens -> ids in ``vocab.dtype`` (unknown tokens: 0, ``<unk>``)."""
    if token == "word":
        lookup = vocab.token_to_idx.get
        # map() over dict.get: no Python frame per word (the word path's cost is the tokenizer regex)
        return lambda words: np.fromiter(map(lookup, words, repeat(0, len(words))), dtype=vocab.dtype,
                                         count=len(words))
    table = np.zeros(_CODE_SPACE if token == "char" else 256, dtype=vocab.dtype)
    for index, tok in enumerate(vocab.idx_to_token):
        if len(tok) == 1 and ord(tok) < len(table):
            table[ord(tok)] = index
    return lambda codes: table[codes]


class _ShardWriter:
    """One split's shard: appends ids, hashes them (SHA-256) as they are written."""

    def __init__(self, folder: Path, split: str) -> None:
        self.name = shard_name(split)
        self.path = folder / self.name
        self.handle = open(self.path, "wb")
        self.digest = hashlib.sha256()
        self.num_tokens = 0

    def write(self, ids: np.ndarray) -> None:
        if len(ids):
            # the manifest promises little-endian ids (a no-op copy-free view on x86 and ARM)
            data = np.ascontiguousarray(ids, dtype=ids.dtype.newbyteorder("<")).tobytes()
            self.handle.write(data)
            self.digest.update(data)
            self.num_tokens += len(ids)

    def close(self) -> dict:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        if self.num_tokens == 0:
            self.path.unlink()  # a memmap cannot map an empty file: an empty split has no shard
            return {"num_tokens": 0, "shards": []}
        size = self.path.stat().st_size
        return {"num_tokens": self.num_tokens,
                "shards": [{"file": self.name, "num_tokens": self.num_tokens, "bytes": size,
                            "sha256": self.digest.hexdigest()}]}


# ----------------------------------------------------------------------------------
# sources and the output folder


def _resolve_source(source, data_dir) -> tuple[str, dict[str, list[Path]], str | None, Path | None]:
    """``(name, {split: files}, location, root)``; ``root`` names multi-file sources as files_sha1 does."""
    spec = str(source)
    if spec in BUILTIN_NAMES:
        raise UsageError(f"the built-in corpus '{spec}' is small enough to use as it is; corpus prepare takes "
                         "a file, a folder or a glob")
    if spec in REMOTE:
        path = fetch_remote(spec, data_dir=data_dir)
        return spec, {"train": [path]}, os.path.abspath(path), None
    if not spec.strip():
        raise UsageError("--corpus is empty; give a file, a folder or a glob")
    expanded = os.path.expanduser(spec)
    folder = Path(expanded)
    if not is_glob(spec) and folder.is_dir():
        if (folder / MANIFEST).is_file():
            raise UsageError(f"{spec} is already a prepared corpus; give the text it was prepared from")
        split_files = split_folder_files(folder)
        if split_files:
            return (folder.resolve().name, {role: [path] for role, path in split_files.items()},
                    os.path.abspath(folder), None)
    files = resolve_files(spec)
    root = (glob_root(expanded) if is_glob(spec) else Path(expanded)) if len(files) > 1 else None
    name = Path(spec).stem if len(files) == 1 else spec
    return name, {"train": files}, os.path.abspath(expanded), root


def _combined_sha1(files: list[Path], digests: list[str], root: Path | None) -> str:
    """The corpus SHA-1 :func:`load_corpus` records (:func:`rnnlab.data.corpus.files_sha1`),
    from per-file SHA-1s computed while streaming."""
    if root is None:
        return digests[0]
    digest = hashlib.sha1()
    named = sorted((p.relative_to(root).as_posix() if p.is_relative_to(root) else p.as_posix(), d)
                   for p, d in zip(files, digests))
    for name, sha1 in named:
        digest.update(name.encode("utf-8") + b"\0" + sha1.encode("ascii") + b"\n")
    return digest.hexdigest()


def _file_records(roles: dict[str, list[Path]]) -> list[dict]:
    records = []
    for role, files in roles.items():
        for path in files:
            stat = path.stat()
            records.append({"split": role, "path": os.path.abspath(path), "bytes": stat.st_size,
                            "mtime_ns": stat.st_mtime_ns})
    return records


def _check_out(out: Path, overwrite: bool) -> dict | None:
    """The existing manifest of ``out`` (None for a missing or empty folder); refuse
    anything that is not a prepared corpus."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; give a folder path")
    recover(out)  # finish an interrupted commit, drop what an interrupted prepare left
    if not out.is_dir():
        return None
    entries = sorted(e.name for e in out.iterdir() if not is_temporary(e.name))
    if not entries:
        return None
    try:
        manifest = read_manifest(out) if MANIFEST in entries else None
    except DataError:
        manifest = None
    if manifest is None:
        raise UsageError(f"--out {out} is not empty and is not an rnnlab prepared corpus (it holds {entries[0]!r}"
                         f"{f' and {len(entries) - 1} more' if len(entries) > 1 else ''}); rnnlab never writes "
                         "into a folder of other files: choose a new or empty folder")
    refuse_foreign_files(out, KIND)
    return manifest


def _settings(mode, token, split, min_freq, encoding_errors, vocab_source) -> dict:
    return {"mode": mode, "token": token, "split": list(split) if isinstance(split, tuple) else split,
            "min_freq": min_freq, "encoding_errors": encoding_errors, "vocab_from": vocab_source}


def _unchanged(manifest: dict, settings: dict, records: list[dict], out: Path) -> str | None:
    """Why ``manifest`` cannot be reused for this request (None: it can). Hashes the
    source files only when their names, sizes and modification times all match."""
    def options(kept: dict) -> dict:  # the options, without the --vocab folder's checksum
        vocab = kept.get("vocab_from")
        return {**kept, "vocab_from": {**vocab, "manifest_sha1": None} if isinstance(vocab, dict) else vocab}

    old_settings = manifest.get("settings")
    if not isinstance(old_settings, dict) or options(old_settings) != options(settings):
        return "settings"
    if old_settings != settings:  # same options, but the --vocab folder was prepared again
        return f"the --vocab folder {settings['vocab_from']['location']} changed"
    saved = manifest.get("source", {}).get("files") if isinstance(manifest.get("source"), dict) else None
    if not isinstance(saved, list) or not all(isinstance(r, dict) for r in saved):
        return "its manifest records no source files"
    old = [{k: r.get(k) for k in ("split", "path", "bytes", "mtime_ns")} for r in saved]
    if old != records:
        return "the source files changed (names, sizes or modification times)"
    for record, kept in zip(records, saved):
        if file_digest(record["path"], "sha1") != kept.get("sha1"):
            return f"the content of {record['path']} changed"
    try:
        check_shards(out, manifest, verify="first-use")
        prepared_vocab(out, manifest)  # and its tokenizer, for subwords
    except (DataError, KeyError, TypeError, ValueError) as exc:
        return f"its shards or its tokenizer do not match the manifest ({exc})"
    return None


def _vocab_from(folder, mode: str, token: str) -> tuple[Vocab, dict]:
    manifest = read_manifest(folder)
    pre = manifest["preprocessing"]
    if (pre["mode"], pre["token"]) != (mode, token):
        raise UsageError(f"--vocab {folder} was prepared with --mode {pre['mode']} --token {pre['token']}, not "
                         f"--mode {mode} --token {token}; its vocabulary cannot encode this text")
    path = Path(os.path.expanduser(os.fspath(folder)))
    return prepared_vocab(path, manifest), {"location": os.path.abspath(path), "manifest_sha1": manifest_sha1(folder)}


# ----------------------------------------------------------------------------------
# preparing


def prepare_corpus(source, out_dir, mode: str = "raw", token: str = "char", vocab_from=None,
                   split=DEFAULT_SPLIT, min_freq: int = 0, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                   encoding_errors: str = "strict", overwrite: bool = False, data_dir=None,
                   show_progress: bool = True, vocab_size: int | None = None) -> dict:
    """Stream ``source`` into a prepared corpus folder ``out_dir`` (see the module docstring).

    ``source``: a text file, a folder (a split folder gives the ``files`` split), a glob,
    or ``timemachine``. ``vocab_from``: a prepared folder whose vocabulary (same mode and
    tokenizer) encodes this text; otherwise one is built from the training split with
    ``min_freq``. ``split``: fractions (default 0.9,0.05,0.05) or ``"d2l"``.
    ``chunk_bytes``: input bytes read at a time (memory is about 10x that at most).
    ``vocab_size``: the subword vocabulary size of ``bpe``/``unigram`` tokens (their
    tokenizer is learnt from the training split, see the module docstring).

    Returns a summary dict: ``out``, ``reused`` (an up-to-date folder was kept),
    ``rebuilt`` (why an existing folder was replaced, or None), ``num_tokens``, per-split
    token counts, ``vocab_size``, ``dtype``, ``input_bytes``, ``seconds``, ``mb_per_s``.
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise UsageError(f"out_dir must be a folder path, got {type(out_dir).__name__}")
    check_mode(mode)
    check_tokenizer(token)
    vocab_size_given = vocab_size is not None
    vocab_size = check_vocab_size(vocab_size, token)
    split = parse_split(split)
    if encoding_errors not in ENCODING_ERRORS:
        raise UsageError(f"unknown --encoding-errors '{encoding_errors}'; choose one of {', '.join(ENCODING_ERRORS)}")
    if int(chunk_bytes) != chunk_bytes or chunk_bytes < 1:
        raise UsageError(f"chunk_bytes must be a positive integer, got {chunk_bytes}")
    if int(min_freq) != min_freq or min_freq < 0:
        raise UsageError(f"--min-freq must be an integer >= 0, got {min_freq}")
    if vocab_from is not None and min_freq:
        raise UsageError("--min-freq builds a vocabulary; --vocab reuses one: give one of them")
    check_subword_min_freq(min_freq, token)
    if vocab_from is not None and vocab_size_given:
        raise UsageError("--vocab-size learns a tokenizer; --vocab reuses one: give one of them")
    started = time.perf_counter()
    out = Path(os.path.expanduser(os.fspath(out_dir)))
    name, roles, location, root = _resolve_source(source, data_dir)
    if "val" in roles or "test" in roles:
        if split not in (DEFAULT_SPLIT, "files"):
            raise UsageError(f"{source} holds its own train/valid/test files; they cannot be combined with --split")
        split = "files"
    elif split == "files":
        raise UsageError("split 'files' needs a folder holding train/valid/test files")
    vocab, vocab_source = _vocab_from(vocab_from, mode, token) if vocab_from is not None else (None, None)
    settings = _settings(mode, token, split, int(min_freq), encoding_errors, vocab_source)
    if token in SUBWORD_KINDS:
        settings["vocab_size"] = None if vocab_from is not None else vocab_size
    records = _file_records(roles)
    input_bytes = sum(r["bytes"] for r in records)
    existing = _check_out(out, overwrite)
    rebuilt = None
    if existing is not None:
        why = _unchanged(existing, settings, records, out)
        if why == "settings" and not overwrite:
            old = existing.get("settings", {})
            shown = ", ".join(f"{k} {old.get(k)!r}, now {settings[k]!r}" for k in settings if old.get(k) != settings[k])
            raise UsageError(f"--out {out} holds a corpus prepared with other options ({shown}); pass --overwrite "
                             "to replace it, or choose another folder")
        if why is None and not overwrite:
            logger.info("%s is up to date with %s; reusing it", out, source)
            return _summary(out, existing, reused=True, rebuilt=None, input_bytes=input_bytes,
                            seconds=time.perf_counter() - started)
        rebuilt = "--overwrite" if why in (None, "settings") else why
        logger.info("rebuilding %s: %s", out, rebuilt)

    streams = {role: _TokenStream(files, mode, token, int(chunk_bytes), encoding_errors)
               for role, files in roles.items()}
    if token in SUBWORD_KINDS:  # characters, the tokenizer (the training part), then the shards
        passes = 2 + (split[0] if vocab is None and isinstance(split, tuple) else 1 if vocab is None else 0)
    else:  # two full passes, plus the re-read of the text after the training split (its share, roughly)
        passes = 2 + (1 - split[0] if vocab is None and isinstance(split, tuple) else 0)
    with ByteProgress(int(input_bytes * passes), desc=f"preparing {name}", enabled=show_progress) as bar:
        if token in SUBWORD_KINDS:
            subword, ends = (vocab.subword, _subword_ends(streams, split, token, bar)) if vocab is not None else \
                _learn_tokenizer(streams, split, token, vocab_size, bar)
        else:
            vocab, bounds, n = _vocabulary(streams, split, token, min_freq, vocab, bar)
        owns = KINDS[KIND].owns
        old_shards = {name for name in os.listdir(out) if owns(name) and name != MANIFEST} if out.is_dir() else set()
        with staged_folder(out, stale=lambda staging: old_shards - set(os.listdir(staging))) as tmp:
            extra = {}
            if token in SUBWORD_KINDS:
                vocab, splits, digests = _encode_subword(streams, tmp, subword, vocab, int(min_freq), ends, bar)
                n = sum(part["num_tokens"] for part in splits.values())
                bounds = None if split == "files" else tuple(
                    sum(splits[s]["num_tokens"] for s in SPLITS[:i + 1]) for i in range(len(SPLITS)))
                document = vocab.subword.to_json().encode("utf-8")
                write_synced(tmp / TOKENIZER_FILE, document)
                extra["tokenizer"] = {"file": TOKENIZER_FILE, "bytes": len(document),
                                      "sha256": hashlib.sha256(document).hexdigest()}
            else:
                splits, digests = _encode_all(streams, tmp, vocab, token, bounds, bar)
            for record, digest in zip(records, digests):
                record["sha1"] = digest
            manifest = {
                "format": FORMAT, "kind": "prepared-corpus", "settings": settings,
                "preprocessing": {"mode": mode, "token": token},
                "split": settings["split"], "boundaries": list(bounds) if bounds else None,
                "num_tokens": n, "dtype": vocab.dtype.name, "byte_order": "little",
                "splits": splits, "vocab": vocab.to_dict(), **extra,
                "source": {"name": name, "spec": str(source), "location": location,
                           "sha1": _combined_sha1(roles["train"], digests[:len(roles["train"])], root),
                           "files": records},
            }
            write_synced(tmp / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
    return _summary(out, manifest, reused=False, rebuilt=rebuilt, input_bytes=input_bytes,
                    seconds=time.perf_counter() - started)


def _vocabulary(streams: dict, split, token: str, min_freq: int, vocab: Vocab | None, bar):
    """Pass 1: ``(vocab, bounds, n)``; ``bounds`` the split ends in the stream (None for 'files')."""
    train = streams["train"]
    counts = _Counts(token) if vocab is None else None
    marks: list[tuple[_Mark | None, int]] = []  # (where each chunk starts, tokens before it)
    n = 0
    for mark, tokens, nbytes in train.chunks():
        marks.append((mark, n))
        if counts is not None:
            counts.add(tokens)
        n += len(tokens)
        bar.update(nbytes)
    if n == 0 or not train.saw_text:
        raise DataError(f"{' '.join(str(f) for f in train.files[:1])}{' ...' if len(train.files) > 1 else ''} "
                        f"has no {token} tokens after {train.mode} preprocessing")
    if split == "files":
        bounds = None
    elif split == "d2l":
        bounds = (n, n, n)
    else:
        n_train = int(n * split[0])
        n_val, n_test = int(n * split[1]), int(n * split[2])
        bounds = (n_train, n_train + n_val, n_train + n_val + n_test)
    if vocab is not None:
        return vocab, bounds, n
    after = _Counts(token)  # tokens after the training split: counted again, then taken off
    if bounds is not None and bounds[0] < n:
        # the first mark (the beginning) is never None, so one is always found
        start, before = next((m, b) for m, b in reversed(marks) if m is not None and b <= bounds[0])
        for _, tokens, nbytes in train.chunks(start):
            skip = max(0, bounds[0] - before)
            after.add(tokens[skip:])
            before += len(tokens)
            bar.update(nbytes)
    return Vocab(counts=counts.minus(after), min_freq=min_freq), bounds, n


def _subword_pieces(chunks, ends: tuple, bar=None) -> Iterator[tuple[int, str]]:
    """``(part, text)`` from a stream's chunks of preprocessed text: part ``i`` holds its
    characters ``[ends[i - 1], ends[i])`` (``ends[-1]`` may be ``math.inf``; characters after
    the last end are read and dropped), cut only where tokenizing the pieces one by one
    gives the tokens of the whole part (:func:`rnnlab.data.subword.last_safe_cut`); the
    uncut rest is carried to the next chunk."""
    part, position, carry = 0, 0, ""
    for _, text, nbytes in chunks:
        if bar is not None:
            bar.update(nbytes)
        while text and part < len(ends):
            take = min(len(text), ends[part] - position)
            scanned = max(0, len(carry) - 1)  # the carry holds no cut: look only where it grows
            carry, text, position = carry + text[:take], text[take:], position + take
            if position == ends[part]:  # the part is complete: all of it, whatever follows
                if carry:
                    yield part, carry
                part, carry = part + 1, ""
            else:
                cut = last_safe_cut(carry, scanned)
                if cut:
                    yield part, carry[:cut]
                    carry = carry[cut:]
    if carry and part < len(ends):
        yield part, carry


def _subword_ends(streams: dict, split, token: str, bar) -> dict[str, tuple]:
    """Pass 1: each stream's part ends, in characters of the preprocessed text, cut as the
    in-memory path cuts it (:func:`rnnlab.data.dataset.prepare_text`)."""
    train = streams["train"]
    n = 0
    for _, text, nbytes in train.chunks():
        n += len(text)
        bar.update(nbytes)
    if n == 0 or not train.saw_text:
        raise DataError(f"{' '.join(str(f) for f in train.files[:1])}{' ...' if len(train.files) > 1 else ''} "
                        f"has no {token} tokens after {train.mode} preprocessing")
    if split in ("files", "d2l"):  # d2l: the tokenizer and the vocabulary from all of it, all of it trains
        return {role: (math.inf,) for role in streams}
    a = int(n * split[0])
    b = a + int(n * split[1])
    if a == 0:
        raise DataError(f"the training split of {train.files[0]} is empty after {train.mode} preprocessing")
    return {"train": (a, b, b + int(n * split[2]))}


def _learn_tokenizer(streams: dict, split, token: str, vocab_size: int, bar) -> tuple[SubwordTokenizer, dict]:
    """Passes 1-2 for ``bpe``/``unigram``: ``(tokenizer, ends)``, the tokenizer learnt from
    the training part's characters only."""
    ends = _subword_ends(streams, split, token, bar)

    def training_text():
        for part, text in _subword_pieces(streams["train"].chunks(), ends["train"], bar):
            if part > 0:
                return  # the held-out text is not learnt from, nor read in this pass
            yield text

    return SubwordTokenizer.train(training_text(), vocab_size, token), ends


def _encode_subword(streams: dict, folder: Path, subword: SubwordTokenizer, vocab: Vocab | None, min_freq: int,
                    ends: dict, bar) -> tuple[Vocab, dict, list[str]]:
    """The last pass for ``bpe``/``unigram``: ``(vocab, splits, digests)`` as :func:`_encode_all`'s.

    The text is encoded once, into the tokenizer's own ids (a temporary file per split),
    counting the training part's; the vocabulary (unless given) is then built from those
    counts with every subword of the tokenizer, as in memory, and the ids mapped to its
    ids while the shards are written."""
    size = len(subword.vocabulary())
    counts = np.zeros(size, np.int64)
    raw = {split: folder / f".{split}.tokenizer-ids" for split in SPLITS}
    handles = {split: open(path, "wb") for split, path in raw.items()}
    digests: list[str] = []
    try:
        for role, stream in streams.items():
            written = 0
            for part, text in _subword_pieces(stream.chunks(digests=digests), ends[role], bar):
                split = role if len(ends[role]) == 1 else SPLITS[part]
                ids = np.asarray(subword.ids(text), dtype="<u4")
                handles[split].write(ids.tobytes())
                if split == "train":
                    counts += np.bincount(ids, minlength=size)
                written += len(ids)
            if role != "train" and (written == 0 or not stream.saw_text):
                raise DataError(f"the {'validation' if role == 'val' else 'test'} file {stream.files[0]} has no "
                                f"{subword.kind} tokens after {stream.mode} preprocessing")
        for handle in handles.values():
            handle.close()
        tokens = subword.vocabulary()
        if vocab is None:
            vocab = Vocab(counts=Counter(dict(zip(tokens, counts.tolist()))), min_freq=min_freq, subword=subword)
        table = np.array([vocab.token_to_idx.get(token, 0) for token in tokens], dtype=vocab.dtype)
        splits = {}
        for split, path in raw.items():
            writer = _ShardWriter(folder, split)
            count = path.stat().st_size // 4
            ids = np.memmap(path, dtype="<u4", mode="r", shape=(count,)) if count else np.zeros(0, "<u4")
            for start in range(0, count, 1 << 22):  # 4 Mi tokens at a time: memory stays bounded
                writer.write(table[ids[start:start + (1 << 22)]])
            del ids
            splits[split] = writer.close()
            path.unlink()
        return vocab, splits, digests
    finally:
        for split, handle in handles.items():
            handle.close()
            raw[split].unlink(missing_ok=True)


def _encode_all(streams: dict, folder: Path, vocab: Vocab, token: str, bounds, bar) -> tuple[dict, list[str]]:
    """Pass 2: write the shards; return the manifest's ``splits`` and each source file's SHA-1."""
    encode = _encoder(vocab, token)
    writers = {split: _ShardWriter(folder, split) for split in SPLITS}
    digests: list[str] = []
    try:
        for role, stream in streams.items():
            pos = 0
            for _, tokens, nbytes in stream.chunks(digests=digests):
                ids = encode(tokens)
                if bounds is None:
                    writers[role].write(ids)
                else:
                    for split, lo, hi in zip(SPLITS, (0,) + bounds[:2], bounds):
                        a, b = max(lo - pos, 0), min(hi - pos, len(ids))
                        if a < b:
                            writers[split].write(ids[a:b])
                pos += len(ids)
                bar.update(nbytes)
            if role != "train" and (pos == 0 or not stream.saw_text):  # as read_held_out: blank is empty
                raise DataError(f"the {'validation' if role == 'val' else 'test'} file {stream.files[0]} has no "
                                f"{token} tokens after {stream.mode} preprocessing")
        return {split: writer.close() for split, writer in writers.items()}, digests
    finally:
        for writer in writers.values():
            if not writer.handle.closed:
                writer.handle.close()


def _summary(out: Path, manifest: dict, reused: bool, rebuilt, input_bytes: int, seconds: float) -> dict:
    splits = {f"{s}_tokens": manifest["splits"][s]["num_tokens"] for s in SPLITS}
    return {"out": str(out), "reused": reused, "rebuilt": rebuilt, "num_tokens": manifest["num_tokens"], **splits,
            "vocab_size": len(manifest["vocab"]["idx_to_token"]), "dtype": manifest["dtype"],
            "mode": manifest["preprocessing"]["mode"], "token": manifest["preprocessing"]["token"],
            "split": manifest["split"], "input_bytes": input_bytes, "seconds": round(seconds, 3),
            "mb_per_s": None if reused or seconds <= 0 else round(input_bytes / 1e6 / seconds, 1)}
