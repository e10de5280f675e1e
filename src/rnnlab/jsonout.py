"""The one JSON encoder for everything rnnlab prints or logs as JSON.

JSON has no NaN or infinity; Python's ``json`` module writes them as the bare words
``NaN``/``Infinity``, which other JSON readers reject. :func:`dumps` maps every
non-finite float to ``null`` at any depth (dicts, lists, tuples, NumPy and torch
values) and refuses anything else it cannot represent, so its output is always
standard JSON.
"""
from __future__ import annotations

import json
import math


def to_jsonable(value):
    """``value`` with non-finite floats as ``None`` and array-likes as lists, recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key) if not isinstance(key, str) else key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, torch tensors
        return to_jsonable(value.tolist())
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value, **options) -> str:
    """Standard JSON (non-finite floats as ``null``); ``options`` go to :func:`json.dumps`."""
    return json.dumps(to_jsonable(value), ensure_ascii=False, allow_nan=False, **options)
