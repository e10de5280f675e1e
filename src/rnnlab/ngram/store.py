"""Save and load :class:`NGramLM` with the shared checkpoint format (kind ``ngram``).

``model.safetensors`` holds, per order n: ``keys.n`` and ``counts.n`` (int64, see
:mod:`rnnlab.ngram.counts`), and for ``kn``/``mle`` ``logp.n`` / ``logbow.n``
(float64, natural logs). ``config.json`` holds the order, smoothing, k, the
vocabulary (``Vocab.to_dict()``), the preprocessing and the fit report.
Loading needs no recomputation.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnnlab.checkpoint import (attach_subword, config_error, config_value, is_int, is_number, is_str, is_str_list, load_config,
                               load_tensors, save_checkpoint)
from rnnlab.data.dataset import parse_split
from rnnlab.data.subword import TOKENIZER_FILE
from rnnlab.data.text import MODES, TOKENIZERS
from rnnlab.data.vocab import Vocab
from rnnlab.errors import CheckpointError, RnnlabError, UsageError
from rnnlab.ngram.counts import NGramCounts
from rnnlab.ngram.model import LOADABLE, MAX_ORDER, NGramLM

KIND = "ngram"


def save(model: NGramLM, folder: str | os.PathLike) -> None:
    model._check_fitted()
    tensors = {}
    for n in range(1, model.order + 1):
        tensors[f"keys.{n}"] = model.counts.keys[n - 1]
        tensors[f"counts.{n}"] = model.counts.counts[n - 1]
        if model.logp:
            tensors[f"logp.{n}"] = model.logp[n - 1]
        if n < model.order and model.logbow:
            tensors[f"logbow.{n}"] = model.logbow[n - 1]
    vocab = getattr(model, "vocab", None)
    config = {"model": {"order": model.order, "smoothing": model.smoothing, "k": model.k,
                        "vocab_size": model.vocab_size},
              "vocab": vocab.to_dict() if vocab is not None else None,
              "preprocessing": getattr(model, "preprocessing", {}) or {},
              "fit": model.info}
    documents = {}
    if vocab is not None and getattr(vocab, "subword", None) is not None:
        config["preprocessing"] = {**config["preprocessing"], "tokenizer_file": TOKENIZER_FILE}
        documents[TOKENIZER_FILE] = vocab.subword.to_json().encode("utf-8")
    save_checkpoint(folder, config, tensors, kind=KIND, documents=documents)




def _check_config(folder, config: dict) -> tuple[NGramLM, int]:
    """The model record of ``config.json`` checked key by key: an empty model and V."""
    order = config_value(config, "model.order", folder, is_int(1, MAX_ORDER), f"an integer from 1 to {MAX_ORDER}")
    smoothing = config_value(config, "model.smoothing", folder, lambda v: v in LOADABLE,
                             f"one of {', '.join(LOADABLE)}")
    k = config_value(config, "model.k", folder, is_number(0), "a finite number >= 0")
    size = config_value(config, "model.vocab_size", folder, is_int(1, 2**31 - 1), "an integer from 1 to 2**31 - 1")
    try:
        model = NGramLM(order, smoothing, k)
    except RnnlabError as exc:
        raise config_error(folder, "model", f"describes no valid n-gram model ({exc})") from None
    if config_value(config, "vocab", folder, lambda v: v is None or isinstance(v, dict), "a JSON object or null",
                    default=None) is not None:
        try:
            model.vocab = Vocab.from_dict(config["vocab"])
        except RnnlabError as exc:
            raise config_error(folder, "vocab", f"is not a valid vocabulary ({exc})") from None
        if not all(isinstance(token, str) for token in model.vocab.idx_to_token) or len(model.vocab) != size:
            raise config_error(folder, "model.vocab_size", f"is {size}, but the vocabulary has {len(model.vocab)} "
                               "tokens")
    config_value(config, "preprocessing", folder, lambda v: v is None or isinstance(v, dict), "a JSON object",
                 default=None)
    config_value(config, "preprocessing.mode", folder, lambda v: v in MODES, f"one of {', '.join(MODES)}",
                 default=None)
    config_value(config, "preprocessing.token", folder, lambda v: v in TOKENIZERS,
                 f"one of {', '.join(TOKENIZERS)}", default=None)
    config_value(config, "preprocessing.split", folder, lambda v: v is None or _is_split(v),
                 "'d2l', 'files' or three fractions", default=None)
    for key in ("corpus_arg", "location", "val_location", "test_location", "val_corpus", "test_corpus",
                "sha1", "val_sha1", "test_sha1", "data_dir", "encoding_errors"):
        config_value(config, f"preprocessing.{key}", folder, is_str(optional=True), "a string or null", default=None)
    config_value(config, "preprocessing.sources", folder, is_str_list, "a list of strings", default=None)
    pre = config.get("preprocessing") or {}
    needed = [key for key in ("mode", "token") if "mode" in pre or "token" in pre] + (["split"] if "corpus_arg" in pre
                                                                                       else [])
    for key in needed:  # what reads one of them reads the others too
        config_value(config, f"preprocessing.{key}", folder, lambda v: v is not None, "given")
    config_value(config, "fit", folder, lambda v: v is None or isinstance(v, dict), "a JSON object", default=None)
    if model.vocab is not None:
        attach_subword(folder, config, model.vocab)
    elif pre.get("token") in ("bpe", "unigram"):
        raise config_error(folder, "vocab", f"is null, but --token {pre['token']} needs the vocabulary")
    return model, size


def _is_split(value) -> bool:
    """A split that :func:`rnnlab.data.dataset.parse_split` (the one reader of --split) accepts."""
    if not isinstance(value, (str, list)):
        return False
    try:
        parse_split(value)
    except UsageError:
        return False
    return True


def _check_tables(path, tensors: dict, model: NGramLM, size: int) -> None:
    """Names, dtypes, lengths and values of the count and backoff tables."""
    names = {f"keys.{n}" for n in range(1, model.order + 1)} | {f"counts.{n}" for n in range(1, model.order + 1)}
    if model.smoothing != "addk":
        names |= {f"logp.{n}" for n in range(1, model.order + 1)} | {f"logbow.{n}" for n in range(1, model.order)}
    missing, extra = sorted(names - set(tensors)), sorted(set(tensors) - names)
    if missing or extra:
        which = f"lacks tensor '{missing[0]}'" if missing else f"has tensor '{extra[0]}'"
        raise CheckpointError(f"{path} {which}, unlike an order-{model.order} {model.smoothing} model")
    previous = size
    for n in range(1, model.order + 1):
        keys, counts = tensors[f"keys.{n}"], tensors[f"counts.{n}"]
        for name, array in ((f"keys.{n}", keys), (f"counts.{n}", counts)):
            if array.dtype != np.int64 or array.ndim != 1 or len(array) != len(keys):
                raise CheckpointError(f"{path}: tensor '{name}' must be int64 of one dimension, as long as "
                                      f"'keys.{n}' ({len(keys)}), got {array.dtype} {list(array.shape)}")
        if n == 1 and not np.array_equal(keys, np.arange(size)):
            raise CheckpointError(f"{path}: tensor 'keys.1' must be 0..{size - 1} (the vocabulary)")
        if len(keys) and (keys[0] < 0 or keys[-1] >= previous * size or (np.diff(keys) <= 0).any()):
            raise CheckpointError(f"{path}: tensor 'keys.{n}' must be strictly increasing keys below "
                                  f"{previous * size} (contexts of order {n - 1} times the vocabulary size)")
        if (counts < 0).any():
            raise CheckpointError(f"{path}: tensor 'counts.{n}' holds negative counts")
        for name in (f"logp.{n}", f"logbow.{n}"):
            if name in tensors:
                table = tensors[name]
                if table.dtype != np.float64 or table.shape != keys.shape:
                    raise CheckpointError(f"{path}: tensor '{name}' must be float64 {list(keys.shape)}, got "
                                          f"{table.dtype} {list(table.shape)}")
                if np.isnan(table).any() or (table == np.inf).any() or (name[3] == "p" and (table > 1e-9).any()):
                    raise CheckpointError(f"{path}: tensor '{name}' holds NaN, +inf or positive log-probabilities")
        previous = max(len(keys), 1)


def load(folder: str | os.PathLike) -> NGramLM:
    """An n-gram model saved by :func:`save`; every value of ``config.json`` and every
    table is checked before use (:class:`CheckpointError` naming the file and the key)."""
    config = load_config(folder, kind=KIND)
    model, size = _check_config(folder, config)
    tensors = {name: t.numpy() for name, t in load_tensors(folder, "model", config).items()}
    _check_tables(Path(folder) / "model.safetensors", tensors, model, size)
    keys = [tensors[f"keys.{n}"] for n in range(1, model.order + 1)]
    counts = [tensors[f"counts.{n}"] for n in range(1, model.order + 1)]
    model.counts = NGramCounts(size, keys, counts)
    if model.smoothing != "addk":
        model.logp = [tensors[f"logp.{n}"] for n in range(1, model.order + 1)]
        model.logbow = [tensors[f"logbow.{n}"] for n in range(1, model.order)]
    model.totals = [np.array([counts[0].sum()], dtype=np.float64)] + [
        np.bincount(model.counts.context_ids(n), weights=counts[n - 1], minlength=len(keys[n - 2]))
        for n in range(2, model.order + 1)]
    model.info = dict(config.get("fit") or {})
    model.preprocessing = config.get("preprocessing") or {}
    model.folder = str(folder)  # recorded corpus paths are read only inside the user's folders, this one's included
    return model
