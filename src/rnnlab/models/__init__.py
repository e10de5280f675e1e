"""Model registry: every recurrent language model by name, built from a config dict."""
from __future__ import annotations

from rnnlab.errors import UsageError
from rnnlab.models.base import RecurrentLM, State, detach_state, map_state, scale_grad

MODEL_NAMES = ("rnn-scratch", "rnn", "gru", "lstm")


def build_model(model: str, vocab_size: int, seed: int | None = None, **kwargs) -> RecurrentLM:
    """Build ``model`` (one of :data:`MODEL_NAMES`) for ``vocab_size`` tokens.

    ``kwargs`` are the model's own options (``hidden_size``, ``num_layers``, ...),
    exactly the keys its ``config()`` returns besides ``model`` and ``vocab_size``.
    ``seed`` makes the initial weights reproducible without touching torch's global
    random state.
    """
    if seed is not None:
        import torch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_model(model, vocab_size, **kwargs)
    if model == "rnn-scratch":
        from rnnlab.models.scratch import ScratchRNN
        return ScratchRNN(vocab_size, **kwargs)
    if model in ("rnn", "gru", "lstm"):
        from rnnlab.models.recurrent import TorchRecurrentLM
        return TorchRecurrentLM(vocab_size, cell=model, **kwargs)
    raise UsageError(f"unknown model '{model}'; choose one of {', '.join(MODEL_NAMES)}")


def model_from_config(config: dict) -> RecurrentLM:
    config = dict(config)
    return build_model(config.pop("model"), config.pop("vocab_size"), **config)


__all__ = ["MODEL_NAMES", "RecurrentLM", "State", "build_model", "model_from_config",
           "detach_state", "map_state", "scale_grad"]
