"""Side-by-side timing: interleaved repetitions, medians, and what the machine was.

A :class:`Candidate` is one unit of work (one training step, one encoding pass)
together with how much work that is (``work``: tokens, bytes). :func:`measure`
runs a list of candidates like this::

    warm-up:       each candidate ``warmup`` times (first-call costs: allocations, oneDNN
                   kernel creation); the last warm-up call's time t fixes the calls per
                   repetition c = max(1, ceil(min_seconds / t))
    repetition r:  for each candidate in order: time c calls, keep seconds / c

so every repetition runs every candidate once, back to back: a load change on a
shared machine (another job starting) hits all candidates alike instead of
whichever happened to run then. Reported: the median over repetitions of the
seconds per call, ``rate = work / median`` (units per second), and the spread
``(max - min) / median`` of the repetitions, which says how noisy the machine was.
Wall clock (``time.perf_counter``), one process, one thread pool.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from rnnlab import precision  # bf16_supported looked up at call time: tests replace it
from rnnlab.progress import progress


@dataclass
class Candidate:
    """``run()`` does ``work`` units (tokens, bytes) of the thing being measured.

    ``reports_seconds``: ``run()`` times itself and returns its seconds (a library
    function that measures its own rate); those are used instead of the bench's clock.
    """

    key: str
    run: Callable[[], object]
    work: float
    reports_seconds: bool = False


@dataclass
class Measurement:
    """Seconds per call of one candidate, one entry per repetition."""

    key: str
    work: float
    seconds: list[float] = field(default_factory=list)
    calls_per_repetition: int = 1

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        """Units of work per second at the median time."""
        return self.work / self.median_seconds

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median over the repetitions; 0 for one repetition."""
        return (max(self.seconds) - min(self.seconds)) / self.median_seconds

    def to_dict(self) -> dict:
        return {"seconds_per_call": self.median_seconds, "calls_per_repetition": self.calls_per_repetition,
                "repetitions": len(self.seconds), "spread": self.spread}


def seconds_of(fn: Callable[[], object], calls: int = 1, reports_seconds: bool = False) -> float:
    """Wall-clock seconds of ``calls`` back-to-back calls of ``fn()`` (or the sum of what they return)."""
    if reports_seconds:
        return sum(float(fn()) for _ in range(calls))
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - start


def measure(candidates: Sequence[Candidate], repeats: int, min_seconds: float = 0.0, warmup: int = 2,
            desc: str = "") -> dict[str, Measurement]:
    """Time ``candidates`` in interleaved repetitions (see the module docstring)."""
    results: dict[str, Measurement] = {}
    for candidate in candidates:
        for _ in range(max(1, warmup)):
            warm = seconds_of(candidate.run, 1, candidate.reports_seconds)
        calls = max(1, math.ceil(min_seconds / warm)) if warm > 0 else 1
        results[candidate.key] = Measurement(candidate.key, candidate.work, calls_per_repetition=calls)
    for _ in progress(range(repeats), total=repeats, desc=desc):
        for candidate in candidates:
            result = results[candidate.key]
            seconds = seconds_of(candidate.run, result.calls_per_repetition, candidate.reports_seconds)
            result.seconds.append(seconds / result.calls_per_repetition)
    return results


def environment() -> dict:
    """What the numbers depend on: library versions, threads, CPU features, load."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # torch < 2.0 has no such query
        capability = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # not on every platform
        load = None
    return {
        "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_capability": capability, "bf16_supported": precision.bf16_supported("cpu"),
        "bf16_native": precision.bf16_native("cpu"),
        "load_average": load,
    }
