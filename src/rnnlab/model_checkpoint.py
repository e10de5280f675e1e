"""Reading a language model's checkpoint for inference: the model, its vocabulary, its preprocessing.

Inference needs only these sections of ``config.json`` and ``model.safetensors``; every
value it reads is checked first (one :class:`CheckpointError` naming the file and the
key). Training state (optimizer, counters, carried state, the training options) is
:mod:`rnnlab.training.checkpoint`'s, which checks these sections through this module too.
"""
from __future__ import annotations

from pathlib import Path

import torch

from rnnlab.checkpoint import (attach_subword, check_tensors, config_error, config_value, is_int, is_str_list, load_config,
                               load_tensors)
from rnnlab.data.text import MODES, TOKENIZERS
from rnnlab.data.vocab import Vocab
from rnnlab.errors import CheckpointError, RnnlabError
from rnnlab.models import MODEL_NAMES, RecurrentLM, model_from_config, model_kind

KIND = "language-model"


def model_options_of(folder, config: dict) -> dict:
    """The ``model`` record checked key by key against the registry: ``{"model": ..., "vocab_size": ..., options}``."""
    spec = config_value(config, "model", folder, lambda v: isinstance(v, dict), "a JSON object")
    name = config_value(config, "model.model", folder, lambda v: v in MODEL_NAMES, f"one of {', '.join(MODEL_NAMES)}")
    kind = model_kind(name)
    unknown = sorted(set(spec) - {"model", "vocab_size", *(o.name for o in kind.options)})
    if unknown:
        raise config_error(folder, f"model.{unknown[0]}", f"is not an option of the {name} model")
    options = {"model": name, "vocab_size": config_value(config, "model.vocab_size", folder, is_int(1, 2**31 - 1),
                                                         "an integer from 1 to 2**31 - 1")}
    return {**options, **checked_options(folder, config, kind.options)}


def checked_options(folder, config: dict, options, section: str = "model", required: bool = False,
                    what: str | None = None) -> dict:
    """The values of ``options`` (:class:`rnnlab.models.ModelOption`) in ``config[section]``,
    each checked against its kind and range (one :class:`CheckpointError` naming the file
    and the key). ``required``: every option must be there; ``what``: also refuse a key that
    is no option, naming ``what`` (the network the section describes). The one reader of
    network options for every artifact kind: language models, classifiers, taggers."""
    spec = config_value(config, section, folder, lambda v: isinstance(v, dict), "a JSON object")
    if what is not None:
        unknown = sorted(set(spec) - {o.name for o in options})
        if unknown:
            raise config_error(folder, f"{section}.{unknown[0]}", f"is not an option of the {what}")
    values = {}
    for option in options:
        value = config_value(config, f"{section}.{option.name}", folder, option.accepts, option.expected(),
                             **({} if required else {"default": None}))
        if value is not None:
            values[option.name] = value
    return values


def meta_model(folder, options: dict, key: str = "model") -> RecurrentLM:
    """The model ``options`` describe, built without memory (``meta`` tensors: shapes only)."""
    try:
        with torch.device("meta"):
            return model_from_config(options)
    except RnnlabError as exc:
        raise config_error(folder, key, f"describes no valid model ({exc})") from None


def _check_vocab(folder, config: dict) -> Vocab:
    data = config_value(config, "vocab", folder, lambda v: isinstance(v, dict), "a JSON object")
    config_value(config, "vocab.token_freqs", folder,
                 lambda v: isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                                       and is_int(0)(p[1]) for p in v),
                 "a list of [token, count] pairs")
    config_value(config, "vocab.min_freq", folder, is_int(0), "an integer >= 0")
    config_value(config, "vocab.reserved_tokens", folder, is_str_list, "a list of strings")
    config_value(config, "vocab.idx_to_token", folder, is_str_list, "a list of strings")
    try:
        return Vocab.from_dict(data)
    except RnnlabError as exc:
        raise config_error(folder, "vocab", f"is not a valid vocabulary ({exc})") from None


def check_model_config(folder, config: dict) -> tuple[dict, Vocab]:
    """The model options and the vocabulary of ``config``, with the preprocessing, checked key by key."""
    options = model_options_of(folder, config)
    vocab = _check_vocab(folder, config)
    if len(vocab) != options["vocab_size"]:
        raise config_error(folder, "model.vocab_size", f"is {options['vocab_size']}, but the vocabulary has "
                           f"{len(vocab)} tokens")
    config_value(config, "preprocessing", folder, lambda v: isinstance(v, dict), "a JSON object", default={})
    config_value(config, "preprocessing.mode", folder, lambda v: v in MODES, f"one of {', '.join(MODES)}",
                 default=None)
    config_value(config, "preprocessing.token", folder, lambda v: v in TOKENIZERS, f"one of {', '.join(TOKENIZERS)}",
                 default=None)
    attach_subword(folder, config, vocab)
    return options, vocab


def load_checked_weights(folder, config: dict, model: torch.nn.Module) -> dict:
    """The weights of ``folder`` for ``model`` (a real or a ``meta`` one): names, shapes, dtypes
    and finite values checked before any is used."""
    path = Path(folder) / "model.safetensors"
    weights = load_tensors(folder, "model", config)
    check_tensors(path, weights, model.state_dict())
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor '{name}' holds NaN or infinite values")
    return weights


def load_model(folder, config: dict | None = None, device: str | torch.device = "cpu") -> RecurrentLM:
    """The network of a language-model checkpoint, its config and tensors checked (against a
    ``meta`` model first, so a hostile size allocates nothing)."""
    config = config if config is not None else load_config(folder, kind=KIND)
    options = model_options_of(folder, config)
    weights = load_checked_weights(folder, config, meta_model(folder, options))
    model = model_from_config(options)
    model.load_state_dict(weights)
    return model.to(device)
