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

import math
import os
import typing
from dataclasses import fields
from pathlib import Path

import torch

from rnnlab.checkpoint import (check_tensors, config_error, config_value, is_int, is_number, is_str,
                               is_str_list, load_config, load_tensors, save_checkpoint)
from rnnlab.errors import CheckpointError, RnnlabError
from rnnlab.model_checkpoint import KIND, check_model_config, meta_model
from rnnlab.training.config import TRAIN_LIMITS, TrainConfig
from rnnlab.training.distributed import unwrap
from rnnlab.training.state import Progress



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


def save_training(folder: str | os.PathLike, model: torch.nn.Module, sections: dict, train_config: dict,
                  progress: dict, optimizer: torch.optim.Optimizer, carried_state=None, kind: str = KIND,
                  world_size: int = 1, documents: dict | None = None) -> None:
    """Write a complete, resumable training checkpoint of any task into ``folder``.

    ``sections``: what the task records about its data (a language model's ``vocab``,
    ``preprocessing`` and ``data``; a classifier's ``task``), beside the model's config,
    the options, the counters and the optimizer's hyper-parameters. ``model`` is the
    unwrapped network (a DDP or ``torch.compile`` wrapper is looked through, so no
    ``module.``/``_orig_mod.`` prefix reaches the file); ``world_size``: the number of
    processes that trained it (``distributed.world_size``; resume needs the same);
    ``documents``: other files by name (a subword tokenizer's JSON).
    """
    model = unwrap(model)
    opt_tensors, opt_meta = optimizer_to_tensors(optimizer)
    state = {"torch_rng": torch.get_rng_state(), **_state_tensors(carried_state)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on a GPU draws from these
        state.update({f"cuda_rng.{i}": t for i, t in enumerate(torch.cuda.get_rng_state_all())})
    config = {"model": model.config(), **sections, "train_config": train_config, "progress": progress,
              "optimizer": {"name": train_config.get("optimizer"), **opt_meta},
              "carried_state_parts": len(_state_tensors(carried_state)),
              "distributed": {"world_size": int(world_size)}}
    weights = {name: p for name, p in model.state_dict().items()}
    save_checkpoint(folder, config, weights, extra={"optimizer": opt_tensors, "state": state}, kind=kind,
                    documents=documents)


def load_training_config(folder) -> dict:
    """``config.json`` of a training checkpoint, every value checked (:func:`check_training_config`)."""
    config = load_config(folder, kind=KIND)
    check_training_config(folder, config)
    return config


# Bounds on training options read from a checkpoint: a crafted config.json must not make
# --resume generate 10**12 sample tokens per evaluation or allocate a batch of 10**12 rows.


def _train_config(folder, config: dict):
    """The ``train_config`` record as a validated :class:`TrainConfig`, each field of its type."""
    saved = config_value(config, "train_config", folder, lambda v: isinstance(v, dict), "a JSON object")
    hints = typing.get_type_hints(TrainConfig)
    for field in fields(TrainConfig):
        if field.name not in saved:
            continue
        allowed = typing.get_args(hints[field.name]) or (hints[field.name],)
        value = saved[field.name]
        ok = any(value is None if kind is type(None) else
                 isinstance(value, bool) if kind is bool else
                 (is_int()(value) if kind is int else
                  is_number()(value) if kind is float else isinstance(value, kind))
                 for kind in allowed)
        if not ok:
            names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
            raise config_error(folder, f"train_config.{field.name}", f"must be {names}, got {saved[field.name]!r}")
    for key, limit in TRAIN_LIMITS.items():  # what resume and eval would allocate or generate, unchecked elsewhere
        value = saved.get(key)
        if isinstance(value, int) and value > limit:
            raise config_error(folder, f"train_config.{key}", f"must be at most {limit:,}, got {value:,}")
    try:
        return TrainConfig.from_dict(saved).validate()
    except RnnlabError as exc:
        raise config_error(folder, "train_config", f"is not a valid training configuration ({exc})") from None


_RECORD = {"epoch": is_number(0), "step": is_int(0), "train_perplexity": is_number(optional=True),
           "val_perplexity": is_number(optional=True)}


def _check_progress(folder, config: dict) -> None:
    config_value(config, "progress", folder, lambda v: isinstance(v, dict), "a JSON object")
    progress = Progress.from_dict(config["progress"], str(Path(folder) / "config.json"))
    if progress.loss_sum > 700 * max(progress.loss_weight, 1):  # above 700 nats per token exp() overflows
        raise config_error(folder, "progress.loss_sum", f"is {progress.loss_sum:g} for {progress.loss_weight} "
                           "tokens, above 700 nats per token")
    for index, record in enumerate(progress.history):
        for key, check in _RECORD.items():
            if key not in record or not check(record[key]):
                raise config_error(folder, f"progress.history[{index}]",
                                   f"must be an evaluation record with a numeric '{key}', got {record!r:.60}")


def _check_data(folder, config: dict) -> None:
    config_value(config, "data", folder, lambda v: isinstance(v, dict), "a JSON object", default={})
    config_value(config, "data.sources", folder, is_str_list, "a list of strings", default=None)
    for key in [f"{role}{name}" for role in ("", "val_", "test_") for name in ("sha1", "location")] + [
            "corpus", "val_source", "test_source"]:
        config_value(config, f"data.{key}", folder, is_str(optional=True), "a string or null", default=None)


def check_training_config(folder, config: dict) -> None:
    """Check every value of a training checkpoint's ``config.json`` that rnnlab reads:
    types and ranges key by key, the vocabulary, a model the training configuration
    agrees with; raise one :class:`CheckpointError` naming the file and the key."""
    options, _ = check_model_config(folder, config)  # what inference reads: model, vocabulary, preprocessing
    train_config = _train_config(folder, config)
    _check_progress(folder, config)
    _check_data(folder, config)
    config_value(config, "carried_state_parts", folder, is_int(0, 2), "0, 1 or 2", default=0)
    config_value(config, "distributed.world_size", folder, is_int(1, 1 << 20), "an integer from 1 to 2**20",
                 default=1)
    config_value(config, "optimizer", folder, lambda v: isinstance(v, dict), "a JSON object", default={})
    described = meta_model(folder, options)
    if train_config.model != options["model"]:
        raise config_error(folder, "train_config.model", f"is {train_config.model!r}, but the model is "
                           f"{options['model']!r}")
    built = described.config()
    for key, value in train_config.model_options().items():
        if built.get(key) != value:  # the trainer builds its model from train_config: they must agree
            raise config_error(folder, f"train_config.{key}", f"is {value!r}, but the model has {key} "
                               f"{built.get(key)!r}")


# Per-parameter optimizer state rnnlab's optimizers keep: keys that must come together, optional keys.
_OPTIMIZER_STATE = {torch.optim.SGD: ((), ("momentum_buffer",)),
                    torch.optim.Adam: (("step", "exp_avg", "exp_avg_sq"), ("max_exp_avg_sq",)),
                    torch.optim.AdamW: (("step", "exp_avg", "exp_avg_sq"), ("max_exp_avg_sq",))}


# Ranges of the numeric hyper-parameters (float32 values; betas also below 1).
_HYPER_RANGES = {"lr": (0, 3.4e38), "eps": (0, 1), "weight_decay": (0, 3.4e38), "momentum": (0, 1),
                 "dampening": (0, 1), "betas": (0, 1)}


def _same_kind(saved, current) -> bool:
    """A saved optimizer hyper-parameter of the same kind as the current one's value."""
    if isinstance(current, bool) or current is None:
        return isinstance(saved, bool) or saved is None
    if isinstance(current, (int, float)):
        return isinstance(saved, (int, float)) and not isinstance(saved, bool) and math.isfinite(saved)
    if isinstance(current, (tuple, list)):
        return (isinstance(saved, (tuple, list)) and len(saved) == len(current)
                and all(_same_kind(a, b) for a, b in zip(saved, current)))
    return isinstance(saved, type(current))


def checked_optimizer_state(folder, config: dict, tensors: dict, optimizer: torch.optim.Optimizer) -> dict:
    """A state dict for ``optimizer.load_state_dict`` from a checkpoint's optimizer record
    and tensors, every name, shape, dtype and hyper-parameter checked against ``optimizer``."""
    path = Path(folder) / "optimizer.safetensors"
    current = optimizer.state_dict()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    together, optional = _OPTIMIZER_STATE.get(type(optimizer), ((), ()))
    config_value(config, "optimizer", folder, lambda v: isinstance(v, dict), "a JSON object")
    saved_groups = config_value(config, "optimizer.param_groups", folder,
                                lambda v: isinstance(v, list) and len(v) == len(current["param_groups"])
                                and all(isinstance(g, dict) for g in v),
                                f"a list of {len(current['param_groups'])} parameter group(s)")
    groups = []
    for index, (saved, group) in enumerate(zip(saved_groups, current["param_groups"])):
        if saved.get("params") != group["params"]:
            raise config_error(folder, f"optimizer.param_groups[{index}].params", f"must be {group['params']} "
                               "(the model's parameters)")
        merged = dict(group)
        for key, value in group.items():
            if key == "params" or key not in saved:
                continue
            where = f"optimizer.param_groups[{index}].{key}"
            if not _same_kind(saved[key], value):
                raise config_error(folder, where, f"must be like {value!r}, got {saved[key]!r:.60}")
            if (isinstance(value, bool) or value is None) and saved[key] != value:  # how the optimizer was built
                raise config_error(folder, where, f"must be {value!r} (this run's {type(optimizer).__name__}), "
                                   f"got {saved[key]!r}")
            low, high = _HYPER_RANGES.get(key, (None, None))
            numbers = saved[key] if isinstance(value, (tuple, list)) else [saved[key]]
            if low is not None and not all(low <= x <= high and (key != "betas" or x < 1) for x in numbers):
                raise config_error(folder, where, f"must be from {low:g} to {high:g}"
                                   f"{' (below 1)' if key == 'betas' else ''}, got {saved[key]!r:.60}")
            merged[key] = tuple(saved[key]) if isinstance(value, tuple) else saved[key]
        groups.append(merged)
    state: dict[int, dict] = {}
    for name, tensor in tensors.items():
        index, _, key = name.partition(".")
        if not (index.isdigit() and int(index) < len(params)) or key not in together + optional:
            raise CheckpointError(f"{path} has tensor '{name}', which is no state of the {type(optimizer).__name__} "
                                  f"optimizer of this model's {len(params)} parameters")
        param = params[int(index)]
        shape, dtype = ((), tensor.dtype if tensor.is_floating_point() else None) if key == "step" \
            else (tuple(param.shape), param.dtype)
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise CheckpointError(f"{path}: tensor '{name}' is {str(tensor.dtype).replace('torch.', '')} "
                                  f"{list(tensor.shape)}, but parameter {index} of the model needs "
                                  f"{'a floating-point scalar' if key == 'step' else f'{param.dtype} {list(shape)}'}"
                                  .replace("torch.", ""))
        if not bool(torch.isfinite(tensor).all()) or (key in ("step", "exp_avg_sq") and bool((tensor < 0).any())):
            raise CheckpointError(f"{path}: tensor '{name}' holds NaN, infinite or negative values")
        state.setdefault(int(index), {})[key] = tensor
    scalars = config_value(config, "optimizer.scalars", folder, lambda v: isinstance(v, dict), "a JSON object",
                           default={})
    for index, values in scalars.items():
        key = f"optimizer.scalars.{index}"
        config_value(config, key, folder, lambda v: isinstance(v, dict) and set(v) <= {"step"}
                     and all(is_number(0)(x) for x in v.values()), "an object holding at most a finite 'step' >= 0")
        if not (index.isdigit() and int(index) < len(params)) or "step" not in together:
            raise config_error(folder, key, f"names no parameter state of this {type(optimizer).__name__} optimizer")
        state.setdefault(int(index), {}).update(values)
    for index, values in state.items():
        if together and set(together) - set(values):
            missing = sorted(set(together) - set(values))[0]
            raise CheckpointError(f"{path} has state for parameter {index} but lacks its '{index}.{missing}'")
    return {"state": state, "param_groups": groups}


def load_resume_state(folder, config: dict, optimizer: torch.optim.Optimizer, device, template=None):
    """Restore the optimizer and RNG; return the carried state (or None).

    Every tensor is checked first: optimizer state against the optimizer's parameters
    (:func:`checked_optimizer_state`), the RNG state's size, the carried state against
    ``template`` (the task's carried tensors on the meta device; None: the task carries
    nothing between batches).
    """
    # On the CPU: load_state_dict moves each tensor next to its parameter, except Adam's
    # step counter, which must stay on the CPU.
    tensors = load_tensors(folder, "optimizer", config)
    optimizer_state = checked_optimizer_state(folder, config, tensors, optimizer)
    state = load_tensors(folder, "state", config)
    path = Path(folder) / "state.safetensors"
    parts_count = config_value(config, "carried_state_parts", folder, is_int(0, 2), "0, 1 or 2", default=0)
    carried = () if template is None else template if isinstance(template, tuple) else (template,)
    if parts_count not in (0, len(carried)):
        raise config_error(folder, "carried_state_parts", f"is {parts_count}, but the model's state has "
                           f"{len(carried)} part(s)")
    rng = torch.get_rng_state()
    expected = {"torch_rng": rng, **{f"carried.{i}": carried[i] for i in range(parts_count)}}
    for name in state:
        if name.startswith("cuda_rng.") and name.split(".", 1)[1].isdigit():
            expected[name] = torch.empty(tuple(state[name].shape), dtype=torch.uint8, device="meta") \
                if state[name].dim() == 1 else rng
    check_tensors(path, state, expected)
    for name in expected:
        if name.startswith("carried.") and not bool(torch.isfinite(state[name]).all()):
            raise CheckpointError(f"{path}: tensor '{name}' holds NaN or infinite values")
    try:
        optimizer.load_state_dict(optimizer_state)
        torch.set_rng_state(state["torch_rng"])
    except (KeyError, ValueError, RuntimeError) as exc:  # checked above: a change in torch, not the file
        raise CheckpointError(f"{folder}: optimizer or RNG state cannot be restored ({exc})") from None
    cuda_states = [state[k] for k in sorted((k for k in state if k.startswith("cuda_rng.")),
                                            key=lambda k: int(k.split(".")[1]))]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        try:
            torch.cuda.set_rng_state_all(cuda_states)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: the CUDA RNG state cannot be restored ({exc})") from None
    parts = [state[f"carried.{i}"].to(device) for i in range(parts_count)]
    if not parts:
        return None
    return tuple(parts) if len(parts) > 1 else parts[0]
