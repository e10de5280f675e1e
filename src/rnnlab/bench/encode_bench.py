"""Benchmark: text -> vocabulary indices throughput (MB of UTF-8 text per second).

Run ``python -m rnnlab.bench.encode_bench`` (offline: it uses the built-in corpus).

The built-in ``pydoc`` corpus is repeated until the text is about ``--mb`` MB
(default 100). The vocabulary is built once from the original corpus (building it is
not what is timed). Timed, each as the median of ``--repeats`` runs
(``time.perf_counter``, wall clock):

* ``char encode``: ``encode(text, vocab, "char")`` -- code points through a lookup
  table; the figure the issue's >= 20 MB/s target refers to;
* ``char encode_text raw``: the whole path a model uses for new text
  (``encode_text(text, vocab, "raw", "char")``: line splitting + encoding);
* ``char encode_text d2l``: the same with the book's letters-only preprocessing;
* ``word encode_text raw`` (for information): regex tokenizer + one dict lookup per
  word, on a ``--word-mb`` MB prefix (default 10) because it is much slower.

MB is 10**6 bytes of the UTF-8 input. The NumPy/torch thread count is printed: the
char path is single-threaded NumPy, so it does not change the result. The measuring
code lives in :mod:`rnnlab.bench.data` (also run by ``rnnlab bench --only data``).
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from rnnlab.bench.data import encoding_candidates
from rnnlab.bench.timing import measure


def thread_info() -> str:
    try:
        from threadpoolctl import threadpool_info  # lazy: optional dependency, reported when installed
        blas = ", ".join(f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()) or "none"
    except ImportError:  # optional; NumPy's own thread count is only visible through it
        blas = "threadpoolctl not installed"
    return (f"torch threads {torch.get_num_threads()}, numpy BLAS threads: {blas}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cpus {os.cpu_count()}")


def main(argv=None) -> None:
    """A thin script over :mod:`rnnlab.bench.data` (``rnnlab bench --only data`` runs the same measurements)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=100.0, help="size of the char-level text in MB")
    parser.add_argument("--word-mb", type=float, default=10.0, help="size of the word-level text in MB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    candidates = encoding_candidates(args.mb, args.word_mb)
    print(f"numpy {np.__version__}; {thread_info()}")
    print(f"built-in corpus repeated: {candidates[0].work:.1f} MB for char, {candidates[-1].work:.1f} MB for word; "
          f"median of {args.repeats}, interleaved")
    results = measure(candidates, args.repeats, warmup=1)
    for candidate in candidates:
        seconds = results[candidate.key].median_seconds
        print(f"{candidate.key:<22} {candidate.work:7.1f} MB  {seconds:8.3f} s  {candidate.work / seconds:8.1f} MB/s")


if __name__ == "__main__":
    main()
