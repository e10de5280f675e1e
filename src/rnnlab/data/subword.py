"""Subword tokens: byte-level BPE and unigram vocabularies learnt from the training split.

The library is Hugging Face ``tokenizers``, chosen over ``sentencepiece`` by measurement
(10 MB of the built-in corpus and The Time Machine repeated, one thread, 4,000 tokens):

* exactness: a byte-level pre-tokenizer maps every UTF-8 byte to one of 256 printable
  symbols before merging, so any Unicode text (newlines, runs of spaces, NUL, emoji)
  encodes without ``<unk>`` and decodes to itself. ``sentencepiece`` writes a space as
  U+2581 and decodes a U+2581 of the text as a space, and learns from one line at a time;
* speed: 4.3 s to train BPE on those 10 MB (``sentencepiece``: 1.2 s), 49 s on 100 MB
  (measured); either is small beside training the network;
* size: the wheel installs 12 MB, plus ``huggingface_hub`` and its dependencies (about
  20 MB more; nothing here downloads anything: tokenizers are read with ``from_str``),
  against 5.5 MB for ``sentencepiece``.

Tokens are the library's own token strings (each character stands for one byte, see
:data:`BYTE_SYMBOLS`), so they flow through :class:`rnnlab.data.vocab.Vocab` like word
tokens; the vocabulary is built with every subword of the tokenizer (unseen ones with
count 0), so no byte sequence is ever ``<unk>``. Decoding joins the tokens' bytes and
reads them as UTF-8, which :class:`Utf8Pieces` does incrementally for streaming.

A checkpoint keeps the tokenizer as the library's JSON (``tokenizer.json``), named by
``preprocessing.tokenizer_file`` in ``config.json`` and verified by its SHA-256.
"""
from __future__ import annotations

import codecs
import json
from typing import Iterable, Iterator

from rnnlab.artifacts import TOKENIZER
from rnnlab.errors import CheckpointError, UsageError

SUBWORD_KINDS = ("bpe", "unigram")
TOKENIZER_FILE = TOKENIZER  # the name the artifact kinds own
DEFAULT_VOCAB_SIZE = 1000
MAX_VOCAB_SIZE = 1 << 20
# Text is encoded in pieces of about this many characters (see _pieces_of).
_ENCODE_CHUNK = 1 << 20


def _byte_symbols() -> dict[int, str]:
    """Byte -> the printable character the byte-level pre-tokenizer shows it as: printable
    Latin-1 bytes stand for themselves, the other 68 take the code points from 256 up in order."""
    kept = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in kept:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return symbols


BYTE_SYMBOLS = _byte_symbols()
SYMBOL_BYTES = {symbol: byte for byte, symbol in BYTE_SYMBOLS.items()}


def _library():
    try:
        import tokenizers  # lazy: an optional dependency, loaded only for bpe/unigram tokens
    except ImportError:
        raise UsageError("--token bpe/unigram needs the package 'tokenizers' (pip install 'tokenizers>=0.22.2')") \
            from None
    return tokenizers


def check_vocab_size(vocab_size, token: str, flag: str = "--vocab-size") -> int | None:
    """The subword vocabulary size to use for ``token``: ``None`` for other token kinds,
    where giving one is an error; the default for subwords when none is given."""
    if token not in SUBWORD_KINDS:
        if vocab_size is not None:
            raise UsageError(f"{flag} applies to --token bpe or unigram only (got --token {token})")
        return None
    if vocab_size is None:
        return DEFAULT_VOCAB_SIZE
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise UsageError(f"{flag} must be a positive integer, got {vocab_size!r:.40}")
    if vocab_size < 256:
        raise UsageError(f"{flag} {vocab_size} is too small for the alphabet: a byte-level {token} vocabulary "
                         "holds the 256 byte symbols; give at least 256")
    if vocab_size > MAX_VOCAB_SIZE:
        raise UsageError(f"{flag} must be at most {MAX_VOCAB_SIZE:,}, got {vocab_size:,}")
    return vocab_size


_CUT_BEFORE = frozenset(" \t\n\r\x0b\x0c")  # ASCII white space: every one is white space to the pattern's \\s


def _is_safe_cut(text: str, k: int) -> bool:
    """Whether ``text`` may be cut before position ``k`` (``0 < k < len(text)``), see
    :func:`last_safe_cut`; looks at ``text[k - 1:k + 1]`` only."""
    return text[k] in _CUT_BEFORE and not text[k - 1].isspace()


def last_safe_cut(text: str, start: int = 0) -> int:
    """The largest ``k``, ``max(start, 1) <= k < len(text)``, at which ``text`` may be cut
    into ``text[:k]`` and ``text[k:]`` whose tokens, each part tokenized alone, are the
    tokens of ``text`` (0 when there is none): before an ASCII white-space character that
    follows a non-white-space one.

    Why: no pre-token of the byte-level pre-tokenizer (GPT-2's pattern: contractions,
    `` ?`` + letters, digits or other symbols, white-space runs) holds white space after a
    non-white-space character, so one ends there, and the next is matched from that
    position as it would be in a text starting there (the pattern looks ahead, never
    behind). Merges never cross pre-tokens. (``str.isspace`` holds for every character the
    pattern's ``\\s`` matches, so "not white space" here is not white space there too.)
    ``start``: positions before it are known to hold no cut (a carried text is scanned only
    where it grew)."""
    for k in range(len(text) - 1, max(start, 1) - 1, -1):
        if _is_safe_cut(text, k):
            return k
    return 0


def learning_pieces(texts: Iterable[str], size: int | None = None) -> Iterator[str]:
    """The pieces a tokenizer learns from: the text ``texts`` make when joined, cut at the
    first safe cut (:func:`last_safe_cut`) at or after every ``size`` characters (about
    1 MB). The cuts depend on the joined text alone, not on how it arrives, so a text
    streamed in chunks is learnt from the same pieces as when whole (the unigram trainer's
    floating-point sums depend on them; the pieces' tokens never do)."""
    size = size or _ENCODE_CHUNK
    buffer, scanned = "", size
    for text in texts:
        buffer += text
        while len(buffer) > size:
            cut = next((k for k in range(max(scanned, 1), len(buffer)) if _is_safe_cut(buffer, k)), 0)
            if not cut:
                scanned = max(size, len(buffer))  # nothing before: wait for more text
                break
            yield buffer[:cut]
            buffer, scanned = buffer[cut:], size
    if buffer:
        yield buffer


def check_subword_min_freq(min_freq, token: str) -> None:
    """Refuse ``--min-freq`` for ``bpe``/``unigram`` tokens: their vocabulary is every subword
    of the tokenizer (dropping rare ones would leave tokens the tokenizer makes but the
    model cannot read); ``--vocab-size`` sizes it."""
    if token in SUBWORD_KINDS and min_freq:
        raise UsageError(f"--min-freq applies to char, word and byte tokens; a {token} vocabulary holds every subword "
                         "of its tokenizer: size it with --vocab-size")


def _pieces_of(text: str, size: int | None = None) -> list[str]:
    """``text`` cut as :func:`learning_pieces` cuts it (encoding: the pieces' tokens are the text's)."""
    return list(learning_pieces([text], size))


class SubwordTokenizer:
    """A byte-level ``bpe`` or ``unigram`` tokenizer (``tokenizers.Tokenizer``) and its kind."""

    def __init__(self, tokenizer, kind: str) -> None:
        if kind not in SUBWORD_KINDS:
            raise UsageError(f"unknown subword kind '{kind}'; choose one of {', '.join(SUBWORD_KINDS)}")
        self.tokenizer = tokenizer
        self.kind = kind

    @classmethod
    def train(cls, texts: Iterable[str] | str, vocab_size: int = DEFAULT_VOCAB_SIZE,
              kind: str = "bpe") -> "SubwordTokenizer":
        """Learn a ``vocab_size``-token vocabulary (the 256 byte symbols included) from ``texts``
        (one text, or its parts in order: they are learnt from as joined)."""
        vocab_size = check_vocab_size(vocab_size, kind)
        lib = _library()
        from tokenizers import decoders, models, pre_tokenizers, trainers  # lazy: as in _library
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        if kind == "bpe":
            tokenizer = lib.Tokenizer(models.BPE())
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False,
                                          special_tokens=[])
        else:
            tokenizer = lib.Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False,
                                              special_tokens=[])
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tokenizer.decoder = decoders.ByteLevel()
        if isinstance(texts, str):
            texts = [texts]
        tokenizer.train_from_iterator(learning_pieces(texts), trainer)
        return cls(tokenizer, kind)

    # ---- text <-> tokens ----------------------------------------------------------
    def tokens(self, text: str) -> list[str]:
        """The token strings of ``text`` (each character one byte, :data:`BYTE_SYMBOLS`)."""
        pieces = _pieces_of(text)
        if len(pieces) == 1:
            return self.tokenizer.encode(pieces[0], add_special_tokens=False).tokens
        encodings = self.tokenizer.encode_batch(pieces, add_special_tokens=False)
        return [tok for encoding in encodings for tok in encoding.tokens]

    def ids(self, text: str) -> list[int]:
        """The tokenizer's own ids of ``text``'s tokens (``vocabulary()[i]`` is token ``i``)."""
        encodings = self.tokenizer.encode_batch(_pieces_of(text), add_special_tokens=False)
        return [index for encoding in encodings for index in encoding.ids]

    def vocabulary(self) -> list[str]:
        """Every token string of the tokenizer, in its id order."""
        vocab = self.tokenizer.get_vocab(with_added_tokens=False)
        return sorted(vocab, key=vocab.get)

    # ---- persistence --------------------------------------------------------------
    def to_json(self) -> str:
        return self.tokenizer.to_str()

    @classmethod
    def from_json(cls, text: str, where: str, kind: str | None = None) -> "SubwordTokenizer":
        """Read the library's JSON (never a pickle); ``where`` names it in errors.

        Refuses a file that is not a tokenizer, a model other than ``kind``, and one that is
        not byte-level or lacks a byte symbol (text would not round-trip)."""
        lib = _library()
        try:
            data = json.loads(text)
            model_type = data["model"]["type"]
            pre, dec = data["pre_tokenizer"] or {}, data["decoder"] or {}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{where} is not a tokenizers JSON file ({type(exc).__name__}: "
                                  f"{str(exc)[:120]})") from None
        found = {"BPE": "bpe", "Unigram": "unigram"}.get(model_type)
        if found is None or (kind is not None and found != kind):
            raise CheckpointError(f"{where} holds a {model_type!r:.40} tokenizer, not {kind or 'bpe or unigram'}")
        if data.get("added_tokens") or data.get("normalizer") is not None or data.get("post_processor") is not None:
            raise CheckpointError(f"{where} has added tokens, a normalizer or a post-processor: rnnlab's tokenizers "
                                  "have none (the text would not round-trip, or ids would leave the vocabulary)")
        if pre.get("type") != "ByteLevel" or dec.get("type") != "ByteLevel":
            raise CheckpointError(f"{where} is not a byte-level tokenizer (pre-tokenizer and decoder must be "
                                  "ByteLevel), so text would not round-trip")
        try:
            tokenizer = lib.Tokenizer.from_str(text)
        except Exception as exc:  # the library's own error type: a file it cannot read
            raise CheckpointError(f"{where} is not a valid tokenizer ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})") from None
        result = cls(tokenizer, found)
        missing = set(BYTE_SYMBOLS.values()) - set(tokenizer.get_vocab(with_added_tokens=False))
        if missing:
            raise CheckpointError(f"{where} lacks {len(missing)} of the 256 byte symbols, so some text could not "
                                  "be encoded")
        return result

    def __repr__(self) -> str:
        return f"SubwordTokenizer(kind={self.kind!r}, size={self.tokenizer.get_vocab_size()})"


def token_bytes(token: str) -> bytes:
    """The bytes one subword token stands for (``<unk>`` and other non-symbols as UTF-8)."""
    try:
        return bytes(SYMBOL_BYTES[ch] for ch in token)
    except KeyError:
        return token.encode("utf-8")


def decode_tokens(tokens: Iterable[str]) -> str:
    """The text of subword tokens: their bytes joined and read as UTF-8 (an incomplete or
    invalid sequence becomes U+FFFD, as for byte tokens)."""
    return b"".join(token_bytes(tok) for tok in tokens).decode("utf-8", errors="replace")


def decode_stream(tokens: Iterable[str]) -> Iterator[str]:
    """:func:`decode_tokens` piece by piece: each yielded string is text complete so far."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for tok in tokens:
        piece = decoder.decode(token_bytes(tok))
        if piece:
            yield piece
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


__all__ = ["SubwordTokenizer", "SUBWORD_KINDS", "TOKENIZER_FILE", "check_vocab_size", "decode_tokens",
           "check_subword_min_freq", "decode_stream", "last_safe_cut", "learning_pieces", "token_bytes"]
