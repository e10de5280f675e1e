"""Data-path measurements: corpus encoding (MB/s) and n-gram fitting and scoring (tokens/s).

Everything here is offline and single-threaded NumPy (torch's thread count does not
change it):

* encoding -- the built-in ``pydoc`` corpus repeated to about ``megabytes`` MB of
  UTF-8 (MB = 10**6 bytes of input); the vocabulary is built once from the original
  corpus and is not timed. ``char encode`` is ``encode(text, vocab, "char")`` (a
  code-point lookup table); ``char encode_text raw`` is the whole path a model uses
  for new text (line splitting + encoding); ``char encode_text d2l`` adds the book's
  letters-only preprocessing; ``word encode_text raw`` is the regex tokenizer plus
  one dict lookup per word, on a smaller text because it is much slower;
* n-grams -- a generated word corpus (:func:`synthetic_ids`: Zipfian unigrams with a
  Markov flavour, so long n-grams repeat as in text), 95% fitted, 5% scored:
  fit tokens/s = training tokens / fit seconds, eval tokens/s = scored tokens /
  seconds of ``evaluate``.

Each function returns :class:`rnnlab.bench.timing.Candidate` objects, so the caller
times them side by side (:func:`rnnlab.bench.timing.measure`).
"""
from __future__ import annotations

import numpy as np

from rnnlab.bench.timing import Candidate
from rnnlab.data.corpus import load_corpus
from rnnlab.data.dataset import encode_text
from rnnlab.data.encode import encode
from rnnlab.data.text import preprocess, tokenize
from rnnlab.data.vocab import Vocab
from rnnlab.ngram import NGramLM

NGRAM_VOCAB = 50_000


def repeated_text(base: str, megabytes: float) -> str:
    """``base`` repeated to at least ``megabytes`` MB of UTF-8 (whole copies)."""
    target = int(megabytes * 1e6)
    per_copy = len(base.encode("utf-8"))
    copies = max(1, -(-target // per_copy))
    return base * copies


def encoding_candidates(megabytes: float, word_megabytes: float,
                        kinds: tuple[str, ...] = ("char encode", "char encode_text raw", "char encode_text d2l",
                                                  "word encode_text raw")) -> list[Candidate]:
    """Encoding candidates (module docstring) whose ``work`` is MB of input text."""
    base = load_corpus(None).text
    char_vocab = Vocab(list(base))
    text = repeated_text(base, megabytes)
    size = len(text.encode("utf-8")) / 1e6
    # Correctness before speed: the vectorised path must agree with a plain dict lookup.
    sample = base[:20000]
    expected = np.array([char_vocab.token_to_idx.get(ch, 0) for ch in sample])
    if not np.array_equal(encode(sample, char_vocab, "char"), expected):
        raise AssertionError("char encoding disagrees with a dict lookup")
    makers = {
        "char encode": lambda: Candidate("char encode", lambda: encode(text, char_vocab, "char"), size),
        "char encode_text raw": lambda: Candidate(
            "char encode_text raw", lambda: encode_text(text, char_vocab, "raw", "char"), size),
        "char encode_text d2l": lambda: Candidate(
            "char encode_text d2l", lambda: encode_text(text, char_vocab, "d2l", "char"), size),
    }
    if "word encode_text raw" in kinds:
        word_vocab = Vocab(tokenize(preprocess(base, "raw"), "word", "raw"))
        word_text = repeated_text(base, word_megabytes)
        word_size = len(word_text.encode("utf-8")) / 1e6
        makers["word encode_text raw"] = lambda: Candidate(
            "word encode_text raw", lambda: encode_text(word_text, word_vocab, "raw", "word"), word_size)
    return [makers[kind]() for kind in kinds]


def synthetic_ids(megabytes: float, vocab: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Word ids whose text ("w<id>" words, one space between) is ``megabytes`` MB; and its size in bytes.

    Zipfian unigrams plus a Markov flavour (half the time the next word is a
    fixed function of the previous one) so that long n-grams repeat.
    """
    rng = np.random.default_rng(seed)
    target = int(megabytes * 1e6)
    width = np.array([len(f"w{i} ") for i in range(vocab)])
    estimate = int(target / float(width[np.minimum(rng.zipf(1.15, 10000), vocab - 1)].mean()) * 1.1)
    ids = np.minimum(rng.zipf(1.15, estimate), vocab - 1)
    follow = rng.random(estimate) < 0.5
    successor = rng.permutation(vocab)
    ids[1:][follow[1:]] = successor[ids[:-1][follow[1:]]]  # one vectorised pass: partial chains
    cut = int(np.searchsorted(np.cumsum(width[ids]), target))
    ids = ids[:cut]
    return ids.astype(np.int64), int(width[ids].sum())


def ngram_candidates(megabytes: float, orders: tuple[int, ...] = (3, 5),
                     smoothing: str = "kn") -> list[Candidate]:
    """Fit and evaluation candidates per order (module docstring); ``work`` is tokens."""
    ids, _ = synthetic_ids(megabytes, NGRAM_VOCAB)
    n_train = int(len(ids) * 0.95)
    train, held_out = ids[:n_train], ids[n_train:]
    candidates = []
    for order in orders:
        fitted = NGramLM(order, smoothing).fit(train, NGRAM_VOCAB)  # the model evaluation is timed on
        candidates.append(Candidate(f"{order}-gram {smoothing} fit",
                                    lambda order=order: NGramLM(order, smoothing).fit(train, NGRAM_VOCAB),
                                    len(train)))
        candidates.append(Candidate(f"{order}-gram {smoothing} eval",
                                    lambda fitted=fitted: fitted.evaluate(held_out), len(held_out) - 1))
    return candidates
