"""Numeric series: the book's noisy sine, CSV columns, and statsmodels' datasets.

``--series`` accepts ``sine``, ``FILE.csv:COLUMN``, a one-column file, or the name of
a public-domain dataset shipped inside the statsmodels wheel (``sunspots``, ``nile``,
``co2``; statsmodels is an optional extra: ``pip install rnnlab[forecast]``).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.errors import CorpusNotFoundError, DataError, UsageError
from rnnlab.fileio import check_input_file

DATASETS = {"sunspots": ("sunspots", "SUNACTIVITY"), "nile": ("nile", "volume"), "co2": ("co2", "co2")}
FILLS = ("interpolate", "drop")


@dataclass
class Series:
    """A 1-D float64 series and where it came from."""

    name: str
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


def sine_series(T: int = 1000, seed: int = 0, noise: float = 0.2) -> Series:
    """d2l 8.1: ``x_t = sin(0.01 t) + N(0, noise^2)`` for ``t = 1..T``, seeded."""
    if T < 1:
        raise UsageError(f"series length must be positive, got {T}")
    time = np.arange(1, T + 1, dtype=np.float64)
    values = np.sin(0.01 * time) + np.random.default_rng(seed).normal(0.0, noise, T)
    return Series("sine", values)


def _fill(values: np.ndarray, rows: list, fill: str | None, source: str) -> np.ndarray:
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    if fill is None:
        first = int(np.argmax(bad))
        raise DataError(f"{source}: missing or non-numeric value at row {rows[first]} ({int(bad.sum())} in all); "
                        "fix the data or pass --fill interpolate or --fill drop")
    if fill not in FILLS:
        raise UsageError(f"unknown --fill '{fill}'; choose one of {', '.join(FILLS)}")
    if bad.all():  # nothing to keep or interpolate from
        raise DataError(f"{source}: no numeric value at all ({len(values)} row(s)); it is not a series of numbers")
    if fill == "drop":
        return values[~bad]
    index = np.arange(len(values))
    return np.interp(index, index[~bad], values[~bad])


def _read_csv(path: Path, column: str | None, fill: str | None) -> Series:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a UTF-8 text file") from None
    rows = [r for r in rows if r]
    if not rows:
        raise DataError(f"{path} is empty")
    header = rows[0]
    try:
        float(header[0 if column is None else 0])
        has_header = False
    except ValueError:
        has_header = True
    if column is None:
        if len(header) != 1:
            raise UsageError(f"{path} has {len(header)} columns; name one as {path}:COLUMN")
        index, start = 0, 1 if has_header else 0
    else:
        if has_header and column in header:
            index = header.index(column)
        elif column.isdigit() and int(column) < len(header):
            index = int(column)
        else:
            raise UsageError(f"{path} has no column '{column}' (columns: {', '.join(header)})")
        start = 1 if has_header else 0
    values, row_numbers = [], []
    for number, row in enumerate(rows[start:], start=start + 1):
        cell = row[index].strip() if index < len(row) else ""
        try:
            values.append(float(cell) if cell else math.nan)
        except ValueError:
            values.append(math.nan)  # reported (with its row) by _fill unless --fill is given
        row_numbers.append(number)
    array = _fill(np.asarray(values, dtype=np.float64), row_numbers, fill, str(path))
    return Series(f"{path.name}:{header[index] if has_header else index}", array)


def _statsmodels(name: str, fill: str | None) -> Series:
    try:
        import statsmodels.api as sm  # lazy: optional dependency (the forecast extra)
    except ImportError:
        raise UsageError(f"the '{name}' dataset ships with statsmodels, which is not installed; "
                         "pip install 'rnnlab[forecast]' (or statsmodels)") from None
    module, column = DATASETS[name]
    frame = getattr(sm.datasets, module).load_pandas().data
    values = frame[column].to_numpy(dtype=np.float64)
    return Series(name, _fill(values, list(range(1, len(values) + 1)), fill, f"dataset {name}"))


def load_series(spec: str, fill: str | None = None, seed: int = 0, length: int = 1000) -> Series:
    """Resolve ``--series``: ``sine``, a dataset name, ``FILE.csv:COLUMN`` or a one-column file."""
    if fill is not None and fill not in FILLS:  # checked even when no value is missing
        raise UsageError(f"unknown --fill '{fill}'; choose one of {', '.join(FILLS)}")
    if spec == "sine":
        return sine_series(length, seed)
    if spec in DATASETS:
        return _statsmodels(spec, fill)
    path, column = Path(spec), None
    if not path.is_file() and ":" in spec:
        head, column = spec.rsplit(":", 1)
        path = Path(head)
    if not path.exists():
        raise CorpusNotFoundError(f"series '{spec}' is neither a file nor a known name "
                                  f"(sine, {', '.join(DATASETS)})")
    return _read_csv(check_input_file(path, f"series {path}"), column, fill)
