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
char path is single-threaded NumPy, so it does not change the result.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time


def median_seconds(fn, repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``fn()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def repeated_text(base: str, megabytes: float) -> str:
    """``base`` repeated (and cut) to about ``megabytes`` MB of UTF-8."""
    target = int(megabytes * 1e6)
    per_copy = len(base.encode("utf-8"))
    copies = max(1, -(-target // per_copy))
    return base * copies


def thread_info() -> str:
    import torch
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()) or "none"
    except ImportError:  # optional; NumPy's own thread count is only visible through it
        blas = "threadpoolctl not installed"
    return (f"torch threads {torch.get_num_threads()}, numpy BLAS threads: {blas}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cpus {os.cpu_count()}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=100.0, help="size of the char-level text in MB")
    parser.add_argument("--word-mb", type=float, default=10.0, help="size of the word-level text in MB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import numpy as np

    from rnnlab.data.corpus import load_corpus
    from rnnlab.data.dataset import encode_text
    from rnnlab.data.encode import encode
    from rnnlab.data.text import preprocess, tokenize
    from rnnlab.data.vocab import Vocab

    base = load_corpus(None).text
    text = repeated_text(base, args.mb)
    size_mb = len(text.encode("utf-8")) / 1e6
    char_vocab = Vocab(list(base))
    word_vocab = Vocab(tokenize(preprocess(base, "raw"), "word", "raw"))
    word_text = repeated_text(base, args.word_mb)
    word_mb = len(word_text.encode("utf-8")) / 1e6

    print(f"numpy {np.__version__}; {thread_info()}")
    print(f"built-in corpus repeated: {size_mb:.1f} MB ({len(text):,} characters) for char, "
          f"{word_mb:.1f} MB for word; char vocab {len(char_vocab)}, word vocab {len(word_vocab)}; "
          f"median of {args.repeats}")
    rows = [
        ("char encode", size_mb, lambda: encode(text, char_vocab, "char")),
        ("char encode_text raw", size_mb, lambda: encode_text(text, char_vocab, "raw", "char")),
        ("char encode_text d2l", size_mb, lambda: encode_text(text, char_vocab, "d2l", "char")),
        ("word encode_text raw", word_mb, lambda: encode_text(word_text, word_vocab, "raw", "word")),
    ]
    # Correctness before speed: the vectorised path must agree with a plain dict lookup.
    sample = base[:20000]
    expected = np.array([char_vocab.token_to_idx.get(ch, 0) for ch in sample])
    assert np.array_equal(encode(sample, char_vocab, "char"), expected), "char encoding disagrees with dict lookup"
    for name, megabytes, fn in rows:
        seconds = median_seconds(fn, args.repeats)
        print(f"{name:<22} {megabytes:7.1f} MB  {seconds:8.3f} s  {megabytes / seconds:8.1f} MB/s")


if __name__ == "__main__":
    main()
