"""Argument checks of the public Python API.

Every entry point checks what it is given before any of it reaches torch or NumPy, so
a bad argument is a :class:`~rnnlab.errors.UsageError` (also a ``ValueError``) with a
message naming the argument, never an ``IndexError`` or ``RuntimeError`` from deep
inside a library.
"""
from __future__ import annotations

import math

import numpy as np

from rnnlab.errors import DataError, UsageError

# Tokens one generation call may ask for (language and n-gram models): about a minute of a small
# model; more is a typo, not a request.
MAX_LENGTH = 10_000_000


def integer(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int (Python or NumPy integer, never a bool or float) within ``low..high``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{name} must be an integer, got {value!r:.60}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"an integer from {low} to {high}" if low is not None and high is not None
                  else f">= {low}" if low is not None else f"<= {high}")
        raise UsageError(f"{name} must be {bounds}, got {value}")
    return value


def number(value, name: str, low: float | None = None, high: float | None = None, low_open: bool = False) -> float:
    """``value`` as a finite float within ``low..high`` (``low_open``: strictly above ``low``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UsageError(f"{name} must be a number, got {value!r:.60}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    if not math.isfinite(value) or too_low or (high is not None and value > high):
        if low is not None and high is not None:
            rule = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        elif low is not None:
            rule = f"{'>' if low_open else '>='} {low:g} (a finite number)"
        else:
            rule = "a finite number"
        raise UsageError(f"{name} must be {rule}, got {value}")
    return value


def seed_value(value, name: str = "seed") -> int | None:
    return None if value is None else integer(value, name, 0, 2**63 - 1)


def token_ids(ids, vocab_size: int, name: str = "ids", min_length: int = 0, keep_dtype: bool = False) -> np.ndarray:
    """A 1-D int64 array of token ids, each in ``[0, vocab_size)`` (with ``keep_dtype``: in
    its own integer dtype, so a memory-mapped corpus is checked without a converted copy).

    Accepts a list, a NumPy array or a torch tensor of integers; floats, other types and
    more than one dimension are a :class:`UsageError`, out-of-range ids (and fewer than
    ``min_length``) a :class:`DataError`.
    """
    if isinstance(ids, (str, bytes)):
        raise UsageError(f"{name} must be a sequence of integer token ids, got a {type(ids).__name__}")
    if hasattr(ids, "detach") and hasattr(ids, "cpu"):  # a torch tensor
        ids = ids.detach().cpu().numpy()
    try:
        array = np.asarray(ids)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name} must be a sequence of integer token ids ({exc})") from None
    if array.size == 0:
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise UsageError(f"{name} must hold integer token ids, got dtype {array.dtype}")
    if array.ndim != 1:
        raise UsageError(f"{name} must be one-dimensional (one token stream), got shape {list(array.shape)}")
    if len(array) < min_length:
        raise DataError(f"{name} has {len(array)} token(s); at least {min_length} are needed")
    if len(array) and (array.min() < 0 or array.max() >= vocab_size):
        bad = array[(array < 0) | (array >= vocab_size)][0]
        raise DataError(f"{name} holds token id {int(bad)}, outside [0, {vocab_size}) (the vocabulary size)")
    return array if keep_dtype else array.astype(np.int64, copy=False)


def text(value, name: str = "prefix") -> str:
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string, got {type(value).__name__}")
    return value


def sampling(temperature, top_k, top_p, greedy) -> None:
    """The sampling options of generation: finite temperature > 0, top_k >= 0, top_p in (0, 1]."""
    if not isinstance(greedy, (bool, np.bool_)):
        raise UsageError(f"greedy must be True or False, got {greedy!r:.60}")
    number(temperature, "temperature", 0, low_open=True)
    integer(top_k, "top_k", 0)
    number(top_p, "top_p", 0, 1, low_open=True)


def series(values, name: str = "series") -> np.ndarray:
    """A 1-D float64 array of a time series (NaN allowed: missing values)."""
    if isinstance(values, (str, bytes)):
        raise UsageError(f"{name} must be a sequence of numbers, got a {type(values).__name__}")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name} must be a sequence of numbers ({exc})") from None
    if array.ndim != 1:
        raise UsageError(f"{name} must be one-dimensional, got shape {list(array.shape)}")
    return array
