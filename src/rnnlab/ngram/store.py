"""Save and load :class:`NGramLM` with the shared checkpoint format (kind ``ngram``).

``model.safetensors`` holds, per order n: ``keys.n`` and ``counts.n`` (int64, see
:mod:`rnnlab.ngram.counts`), and for ``kn``/``mle`` ``logp.n`` / ``logbow.n``
(float64, natural logs). ``config.json`` holds the order, smoothing, k, the
vocabulary (``Vocab.to_dict()``), the preprocessing and the fit report.
Loading needs no recomputation.
"""
from __future__ import annotations

import os

import numpy as np

from rnnlab.checkpoint import load_config, load_tensors, save_checkpoint
from rnnlab.data.vocab import Vocab
from rnnlab.errors import CheckpointError
from rnnlab.ngram.counts import NGramCounts
from rnnlab.ngram.model import NGramLM

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
    save_checkpoint(folder, config, tensors, kind=KIND)


def load(folder: str | os.PathLike) -> NGramLM:
    config = load_config(folder, kind=KIND)
    try:
        spec = config["model"]
        model = NGramLM(spec["order"], spec["smoothing"], spec["k"])
        V = int(spec["vocab_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder}: invalid n-gram config ({exc})") from None
    tensors = {name: t.numpy() for name, t in load_tensors(folder, "model", config).items()}
    try:
        keys = [tensors[f"keys.{n}"] for n in range(1, model.order + 1)]
        counts = [tensors[f"counts.{n}"] for n in range(1, model.order + 1)]
        model.counts = NGramCounts(V, keys, counts)
        if model.smoothing != "addk":
            model.logp = [tensors[f"logp.{n}"] for n in range(1, model.order + 1)]
            model.logbow = [tensors[f"logbow.{n}"] for n in range(1, model.order)]
    except KeyError as exc:
        raise CheckpointError(f"{folder}: model.safetensors lacks tensor {exc}") from None
    model.totals = [np.array([counts[0].sum()], dtype=np.float64)] + [
        np.bincount(model.counts.context_ids(n), weights=counts[n - 1], minlength=len(keys[n - 2]))
        for n in range(2, model.order + 1)]
    model.info = dict(config.get("fit") or {})
    model.vocab = Vocab.from_dict(config["vocab"]) if config.get("vocab") else None
    model.preprocessing = config.get("preprocessing") or {}
    return model
