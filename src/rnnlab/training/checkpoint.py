"""Training checkpoints on top of :mod:`rnnlab.checkpoint` (safetensors + JSON).

A training folder holds::

    config.json            model config, vocabulary, preprocessing, data source,
                           TrainConfig, counters, history, optimizer hyper-parameters
    model.safetensors      the network's weights
    optimizer.safetensors  the optimizer's tensors (momentum, Adam moments, steps)
    state.safetensors      RNG state and, mid-epoch, the hidden state carried between batches

Together they resume training exactly where it stopped.
"""
from __future__ import annotations

import os

import torch

from rnnlab.checkpoint import load_config, load_tensors, save_checkpoint
from rnnlab.data.vocab import Vocab
from rnnlab.errors import CheckpointError
from rnnlab.models import RecurrentLM, model_from_config

KIND = "language-model"


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split ``optimizer.state_dict()`` into named tensors and JSON metadata."""
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value
            elif value is not None:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_from_tensors(tensors: dict, meta: dict) -> dict:
    """Inverse of :func:`optimizer_to_tensors`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def _state_tensors(carried) -> dict:
    if carried is None:
        return {}
    parts = carried if isinstance(carried, tuple) else (carried,)
    return {f"carried.{i}": t for i, t in enumerate(parts)}


def save_training(folder: str | os.PathLike, model: RecurrentLM, vocab: Vocab, preprocessing: dict,
                  data: dict, train_config: dict, progress: dict, optimizer: torch.optim.Optimizer,
                  carried_state=None) -> None:
    """Write a complete, resumable training checkpoint into ``folder``."""
    opt_tensors, opt_meta = optimizer_to_tensors(optimizer)
    state = {"torch_rng": torch.get_rng_state(), **_state_tensors(carried_state)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on a GPU draws from these
        state.update({f"cuda_rng.{i}": t for i, t in enumerate(torch.cuda.get_rng_state_all())})
    config = {"model": model.config(), "vocab": vocab.to_dict(), "preprocessing": preprocessing,
              "data": data, "train_config": train_config, "progress": progress,
              "optimizer": {"name": train_config.get("optimizer"), **opt_meta},
              "carried_state_parts": len(_state_tensors(carried_state))}
    weights = {name: p for name, p in model.state_dict().items()}
    save_checkpoint(folder, config, weights, extra={"optimizer": opt_tensors, "state": state}, kind=KIND)


def load_training_config(folder) -> dict:
    return load_config(folder, kind=KIND)


def load_model(folder, config: dict | None = None, device: str | torch.device = "cpu") -> RecurrentLM:
    config = config if config is not None else load_training_config(folder)
    try:
        model = model_from_config(config["model"])
        weights = load_tensors(folder, "model", config)
        model.load_state_dict(weights)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{folder}: model weights do not match its config ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0]})") from None
    return model.to(device)


def load_language_model(folder, device: str | torch.device = "cpu"):
    """The trained model of ``folder`` as a :class:`rnnlab.lm.LanguageModel`."""
    from rnnlab.lm import LanguageModel
    config = load_training_config(folder)
    model = load_model(folder, config, device)
    model.eval()
    pre = config.get("preprocessing", {})
    return LanguageModel(model=model, vocab=Vocab.from_dict(config["vocab"]),
                         mode=pre.get("mode", "raw"), token=pre.get("token", "char"))


def load_resume_state(folder, config: dict, optimizer: torch.optim.Optimizer, device) -> tuple:
    """Restore the optimizer and RNG; return the carried hidden state (or None)."""
    # On the CPU: load_state_dict moves each tensor next to its parameter, except Adam's
    # step counter, which must stay on the CPU.
    tensors = load_tensors(folder, "optimizer", config)
    try:
        optimizer.load_state_dict(optimizer_from_tensors(tensors, config["optimizer"]))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: optimizer state does not match the model ({exc})") from None
    state = load_tensors(folder, "state", config)
    torch.set_rng_state(state["torch_rng"])
    cuda_states = [state[k] for k in sorted((k for k in state if k.startswith("cuda_rng.")),
                                            key=lambda k: int(k.split(".")[1]))]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    parts = [state[f"carried.{i}"].to(device) for i in range(config.get("carried_state_parts", 0))]
    if not parts:
        return None
    return tuple(parts) if len(parts) > 1 else parts[0]
