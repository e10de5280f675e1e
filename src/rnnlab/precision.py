"""The device and the numerical precision of a run: float32, or bfloat16 matrix products.

:func:`resolve_device` turns ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``,
``mps``) into a ``torch.device``; training and inference both go through it.

``bf16`` keeps float32 master weights, optimizer state and loss (the softmax and
cross-entropy run in float32); only the matrix products run in bfloat16, with
float32 accumulation inside the kernels. On a CPU this pays off where the cores
have bfloat16 instructions (AVX-512 BF16 or AMX): there oneDNN's products run
2-8x faster than in float32 (``rnnlab bench`` measures it). On CUDA it needs a GPU
that supports bfloat16 (Ampere or newer).

``auto`` means bf16 where the hardware has bfloat16 instructions
(:func:`bf16_native`) and float32 elsewhere. oneDNN also runs bfloat16 on AVX-512
cores without them, by conversion, but slower than float32 (a 2 x 384 LSTM training
step on 2 threads of an Ice Lake Xeon: 4,700 tokens/s in bf16 against 17,100 in
float32), so ``auto`` does not take it there. An explicit ``bf16`` runs wherever
bfloat16 runs at all (:func:`bf16_supported`), with one log message where it is
not native; where it does not run it falls back to float32 with one log message, so
a command written on one machine runs on another.

Set-up happens in one place: :func:`resolve_precision` decides once per run and
:func:`autocast` is the context every training forward runs in. Models with a
hand-written backward (``rnn-scratch``, the fused GRU layer) read the decision from
:func:`compute_dtype` and run their own bfloat16 products; everything else
(``torch.nn`` layers) follows ``torch.autocast``.
"""
from __future__ import annotations

import contextlib
import platform
import re

import torch

from rnnlab.errors import UsageError
from rnnlab.progress import logger


DEVICES = ("auto", "cpu", "cuda", "mps")


def check_device(device) -> None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` (one GPU per process of a distributed run) or ``mps``."""
    if not isinstance(device, str) or not (device in DEVICES or re.fullmatch(r"cuda:\d{1,3}", device)):
        raise UsageError(f"unknown device {device!r:.40}; choose one of {', '.join(DEVICES)} or cuda:N")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; ``cuda:N`` one GPU; an unavailable explicit choice is an error."""
    check_device(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if (name == "cuda" or re.fullmatch(r"cuda:\d{1,3}", str(name))) and not torch.cuda.is_available():
        raise UsageError(f"--device {name} was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps was asked for but Apple MPS is not available; use --device cpu or auto")
    if name.startswith("cuda:"):
        if int(name[5:]) >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) are visible "
                             f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return torch.device(name)
    return torch.device(name)


PRECISIONS = ("auto", "fp32", "bf16")


def bf16_native(device: torch.device | str = "cpu") -> bool:
    """True when ``device`` has bfloat16 instructions, so bfloat16 products are faster than
    float32 ones: AVX-512 BF16 or AMX on an x86 CPU; elsewhere, where bfloat16 runs at all."""
    device = torch.device(device)
    if not bf16_supported(device):
        return False
    if device.type == "cpu" and platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        try:
            flags = torch._C._cpu._get_cpu_capability()  # the CPU's features, as torch detected them
        except (AttributeError, RuntimeError):
            flags = None
        if isinstance(flags, dict) and "avx512_bf16" in flags:
            return bool(flags.get("avx512_bf16") or flags.get("amx_bf16"))
    return True


def bf16_supported(device: torch.device | str = "cpu") -> bool:
    """True when bfloat16 matrix products run on ``device`` (natively or by conversion)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a build without oneDNN
            return False
    return False


def resolve_precision(precision: str, device: torch.device | str = "cpu", warn: bool = True) -> str:
    """``fp32`` or ``bf16``: what ``precision`` (one of :data:`PRECISIONS`) means on ``device``
    (``warn=False``: without the log message, for the ranks of a distributed run but rank 0)."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return "fp32"
    if bf16_native(device):
        return "bf16"
    if precision == "auto":
        return "fp32"
    if bf16_supported(device):
        if warn:
            logger.warning("%s has no bfloat16 instructions: bf16 runs by conversion, slower than fp32",
                           torch.device(device))
        return "bf16"
    if warn:
        logger.warning("bfloat16 is not supported on %s; training in float32", torch.device(device))
    return "fp32"


def autocast(device: torch.device | str, precision: str):
    """The context a training forward runs in (``precision`` already resolved)."""
    device = torch.device(device)
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def compute_dtype(device: torch.device | str) -> torch.dtype | None:
    """bfloat16 inside a bf16 :func:`autocast` context on ``device``, else None.

    For models that do their own products (and so must not be cast op by op).
    """
    kind = torch.device(device).type
    if kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind) \
            and torch.get_autocast_dtype(kind) == torch.bfloat16:
        return torch.bfloat16
    return None


__all__ = ["DEVICES", "check_device", "resolve_device", "PRECISIONS", "bf16_native", "bf16_supported", "resolve_precision", "autocast", "compute_dtype"]
