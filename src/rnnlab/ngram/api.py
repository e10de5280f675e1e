"""Dataset-level n-gram functions: train on a :class:`TextDataset`, score, baseline."""
from __future__ import annotations

import time

import numpy as np

from rnnlab.data.corpus import allowed_roots, is_inside, recorded_location, reload_corpus
from rnnlab.data.dataset import TextDataset, covered_chars, encode_text, prepare_text
from rnnlab.data.text import detokenize, preprocess_prefix, tokenize, word_separator
from rnnlab.errors import DataError, UsageError
from rnnlab.metrics import per_char_fields
from rnnlab.ngram.model import NGramLM


def train(dataset: TextDataset, order: int = 3, smoothing: str = "kn", k: float = 1.0,
          source: dict | None = None) -> NGramLM:
    """Fit an :class:`NGramLM` on ``dataset.train``; it keeps the vocabulary and preprocessing.

    ``source`` (``{"corpus_arg", "data_dir", "encoding_errors"}``, optionally
    ``"val_corpus"``/``"test_corpus"`` files) records how to load the corpus again, so
    ``rnnlab ngram eval DIR --split test`` can rebuild it.
    """
    if len(dataset.train) == 0:
        raise DataError("the training split is empty; use a larger corpus or a larger train fraction")
    model = NGramLM(order, smoothing, k)
    start = time.perf_counter()
    model.fit(dataset.train, len(dataset.vocab))
    model.info["fit_seconds"] = time.perf_counter() - start
    model.vocab = dataset.vocab
    model.preprocessing = {**dataset.preprocessing(), "corpus": dataset.corpus_name, **(source or {}),
                           "split": list(dataset.split) if not isinstance(dataset.split, str) else dataset.split}
    return model


def evaluate_ids(model: NGramLM, ids: np.ndarray, chars: int | None = None) -> dict:
    """``lm_result`` plus ``seconds`` and ``tokens_per_second`` of the scoring, and ``chars``,
    ``nats_per_char`` and ``bits_per_char`` over the characters the scored tokens cover
    (``chars`` when given, else :func:`rnnlab.data.dataset.covered_chars` of ``ids``; None without
    a vocabulary)."""
    start = time.perf_counter()
    result = model.evaluate(ids)
    seconds = time.perf_counter() - start
    token = (getattr(model, "preprocessing", {}) or {}).get("token")
    if chars is None and getattr(model, "vocab", None) is not None and token is not None:
        chars = covered_chars(model.vocab, token, ids)
    per_char = per_char_fields(result["nll_nats"], chars) if chars is not None else \
        {"chars": None, "nats_per_char": None, "bits_per_char": None}
    return {**result, **per_char, "seconds": seconds,
            "tokens_per_second": result["tokens"] / seconds if seconds > 0 else None}


def encode_for(model: NGramLM, text: str) -> np.ndarray:
    """Encode ``text`` with the model's own vocabulary and preprocessing."""
    vocab = getattr(model, "vocab", None)
    pre = getattr(model, "preprocessing", {}) or {}
    if vocab is None or "mode" not in pre:
        raise UsageError("this n-gram model has no vocabulary/preprocessing (imported from ARPA without them?)")
    return encode_text(text, vocab, pre["mode"], pre["token"])


def baseline(dataset: TextDataset, order: int = 3, smoothing: str = "kn", k: float = 1.0,
             split: str = "val") -> dict:
    """The n-gram reference line for any corpus: fit on train, ``lm_result`` on ``split``.

    Same keys as the recurrent models' evaluation, plus ``order``, ``smoothing``
    and ``fit_seconds``.
    """
    model = train(dataset, order, smoothing, k)
    result = model.evaluate(dataset.part(split))
    return {**result, "order": model.order, "smoothing": model.smoothing, "split": split,
            "fit_seconds": model.info["fit_seconds"]}


def source_dataset(model: NGramLM, data_dir=None, encoding_errors: str | None = None) -> TextDataset:
    """Rebuild the dataset the model was trained on (same corpus, split, vocabulary)."""
    pre = getattr(model, "preprocessing", {}) or {}
    if getattr(model, "vocab", None) is None or "corpus_arg" not in pre:
        raise UsageError("this n-gram model does not record its training corpus; score a file with --text")
    # Paths in a model folder are data: read only inside the user's folders (allowed_roots).
    roots = allowed_roots(data_dir, checkpoint=getattr(model, "folder", None))
    hint = "--data-dir FOLDER holding it (or score a file with --text)"
    recorded_dir = pre.get("data_dir")
    if data_dir is None and recorded_dir and is_inside(recorded_dir, roots):
        data_dir = recorded_dir
    corpus = reload_corpus(recorded_location(pre.get("location"), pre["corpus_arg"], roots, hint=hint),
                           pre.get("sources"), data_dir=data_dir,
                           encoding_errors=encoding_errors or pre.get("encoding_errors") or "strict",
                           val=recorded_location(pre.get("val_location"), pre.get("val_corpus"), roots,
                                                 what="validation file", hint=hint),
                           test=recorded_location(pre.get("test_location"), pre.get("test_corpus"), roots,
                                                  what="test file", hint=hint))
    # Scoring other text than the model was trained on would report a meaningless number.
    for role, part in (("", corpus), ("val_", corpus.val), ("test_", corpus.test)):
        old = pre.get(f"{role}sha1")
        if part is not None and old and part.sha1 != old:
            raise DataError(f"the {'corpus' if not role else role[:-1] + ' file'} {part.location or part.sources[0]} "
                            f"changed since the model was trained (SHA-1 {part.sha1} != {old}); score a file "
                            "with --text instead")
    return prepare_text(corpus, mode=pre["mode"], token=pre["token"], split=pre["split"], vocab=model.vocab)



def decode(model: NGramLM, ids) -> str:
    """Text of token ids with the model's vocabulary (word tokens joined with spaces)."""
    return detokenize(model.vocab.to_tokens(list(ids)), model.preprocessing.get("token", "word"))


def prefix_ids(model: NGramLM, prefix: str) -> tuple[list[int], str]:
    """(ids, preprocessed prefix text) of a generation prefix."""
    pre = model.preprocessing
    if model.vocab is None or "mode" not in pre:
        raise UsageError("this n-gram model has no vocabulary/preprocessing to read a text prefix with")
    tokens = tokenize(preprocess_prefix(prefix, pre["mode"]), pre["token"], pre["mode"], subword=model.vocab.subword)
    return [model.vocab[t] for t in tokens], detokenize(tokens, pre["token"])


def generate_text(model: NGramLM, prefix: str, length: int, temperature: float = 1.0, greedy: bool = False,
                  seed: int | None = None) -> str:
    """The preprocessed ``prefix`` followed by ``length`` sampled tokens, as text."""
    ids, shown = prefix_ids(model, prefix)
    out = model.generate(ids, length, temperature=temperature, greedy=greedy, seed=seed)
    if not out:
        return shown
    text = decode(model, out)
    if model.preprocessing.get("token") == "word" and ids:
        first = model.vocab.to_tokens(out[0])
        text = word_separator(model.vocab.to_tokens(ids[-1]), first) + text
    return shown + text
