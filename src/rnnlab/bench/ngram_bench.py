"""Benchmark: n-gram LM fitting and evaluation throughput, beside nltk.lm when installed.

Run ``python -m rnnlab.bench.ngram_bench`` (needs the Time Machine: $RNNLAB_DATA).

* ``--table``: the README table -- Time Machine, d2l mode, 90/5/5 split, char and
  word tokens, orders 1-5, add-1 and Kneser-Ney: validation perplexity, fit time,
  evaluation throughput.
* default: Time Machine words, orders 3 and 5, rnnlab vs ``nltk.lm`` (Laplace and
  KneserNeyInterpolated) on the same training tokens and the same validation
  n-grams, then a generated corpus of ``--big-mb`` MB (default 50).

Times are medians of ``--repeats`` runs (wall clock, ``time.perf_counter``). nltk
scores n-grams one at a time in Python, so it is timed on the first
``--nltk-sample`` validation n-grams and its rate is per scored token; on the big
corpus nltk is fitted on a ``--nltk-max-tokens`` prefix only (its rate in tokens/s
is what is compared). rnnlab's n-gram code is single-threaded NumPy.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import tracemalloc

import numpy as np
import torch

from rnnlab.bench.data import synthetic_ids  # shared with rnnlab bench's data section
from rnnlab.data.corpus import load_corpus
from rnnlab.data.dataset import prepare_text
from rnnlab.ngram import NGramLM


def median_time(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def peak_bytes(fn) -> int:
    """Peak Python/NumPy allocation (tracemalloc) while running ``fn`` once."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def load_tm(token: str):
    corpus = load_corpus("timemachine", data_dir=os.environ.get("RNNLAB_DATA"))
    return prepare_text(corpus, mode="d2l", token=token, split=(0.9, 0.05, 0.05))


def have_nltk() -> bool:
    try:
        # lazy: optional dependency (the bench extra)
        import nltk.lm  # noqa: F401
        return True
    except ImportError:
        return False


def nltk_fit(tokens: list[str], order: int, smoothing: str):
    from nltk.lm import KneserNeyInterpolated, Laplace  # lazy: optional dependency (the bench extra)
    from nltk.lm.preprocessing import padded_everygram_pipeline  # lazy: optional dependency (the bench extra)
    train, vocab = padded_everygram_pipeline(order, [tokens])
    lm = KneserNeyInterpolated(order) if smoothing == "kn" else Laplace(order)
    lm.fit(train, vocab)
    return lm


def nltk_score(lm, tokens: list[str], order: int, count: int) -> tuple[float, int]:
    """Summed natural-log NLL of tokens[1:count+1] with rnnlab's context convention."""
    total = 0.0
    for t in range(1, count + 1):
        logscore = lm.logscore(tokens[t], tokens[max(0, t - order + 1):t])  # log2
        total -= logscore * math.log(2) if math.isfinite(logscore) else -math.inf
    return total, count


def table(args) -> None:
    print("| tokens | order | smoothing | val perplexity | fit (ms) | eval (tokens/s) | n-grams stored |")
    print("|---|---|---|---|---|---|---|")
    for token in ("char", "word"):
        data = load_tm(token)
        V = len(data.vocab)
        for order in range(1, 6):
            for smoothing, label in (("addk", "add-1"), ("kn", "Kneser-Ney")):
                fit_s, lm = median_time(lambda: NGramLM(order, smoothing, 1.0).fit(data.train, V), args.repeats)
                eval_s, result = median_time(lambda: lm.evaluate(data.val), args.repeats)
                print(f"| {token} | {order} | {label} | {result['perplexity']:.2f} | {fit_s * 1e3:.1f} | "
                      f"{result['tokens'] / eval_s:,.0f} | {sum(lm.info['ngrams']):,} |", flush=True)


def compare_tm(args) -> None:
    data = load_tm("word")
    V = len(data.vocab)
    train_tokens = data.vocab.to_tokens(data.train)
    val_tokens = data.vocab.to_tokens(data.val)
    sample = min(args.nltk_sample, len(data.val) - 1)
    print(f"\nTime Machine, words, d2l, 90/5/5: {len(data.train):,} training tokens, {len(data.val):,} validation, "
          f"vocabulary {V:,}")
    print("| order | smoothing | rnnlab fit (s) | nltk fit (s) | fit speed-up | rnnlab eval (tok/s) | "
          "nltk eval (tok/s) | eval speed-up | rnnlab val ppl | nltk ppl on sample |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for order in args.orders:
        for smoothing in ("addk", "kn"):
            fit_s, lm = median_time(lambda: NGramLM(order, smoothing, 1.0).fit(data.train, V), args.repeats)
            eval_s, result = median_time(lambda: lm.evaluate(data.val), args.repeats)
            same_s, _ = median_time(lambda: lm.evaluate(data.val[:sample + 1]), args.repeats)
            ours_rate = result["tokens"] / eval_s
            row = [str(order), smoothing, f"{fit_s:.4f}"]
            if args.no_nltk or not have_nltk():
                row += ["-", "-", f"{ours_rate:,.0f}", "-", "-", f"{result['perplexity']:.2f}", "-"]
            else:
                nfit_s, nlm = median_time(lambda: nltk_fit(train_tokens, order, smoothing), max(1, args.repeats // 2))
                neval_s, (nll, count) = median_time(lambda: nltk_score(nlm, val_tokens, order, sample), 1)
                nrate = count / neval_s
                nppl = math.exp(nll / count) if math.isfinite(nll) else math.inf
                row += [f"{nfit_s:.3f}", f"{nfit_s / fit_s:.0f}x", f"{ours_rate:,.0f}", f"{nrate:,.0f}",
                        f"{ours_rate / nrate:,.0f}x (same {sample} n-grams alone: {sample / same_s / nrate:,.0f}x)",
                        f"{result['perplexity']:.2f}", f"{nppl:.2f}"]
            print("| " + " | ".join(row) + " |", flush=True)


def big(args) -> None:
    V = 50_000
    ids, size = synthetic_ids(args.big_mb, V)
    n_train = int(len(ids) * 0.95)
    train, held = ids[:n_train], ids[n_train:]
    print(f"\ngenerated corpus: {size / 1e6:.1f} MB of text, {len(ids):,} word tokens, vocabulary {V:,}; "
          f"95% train / 5% held out")
    print("| order | smoothing | fit (s) | fit (tokens/s) | peak fit memory (MiB) | model (MiB) | eval (tokens/s) | "
          "held-out ppl | nltk fit (tokens/s, on prefix) | fit speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for order in args.orders:
        for smoothing in ("addk", "kn"):
            repeats = max(1, args.repeats // 2)
            fit_s, lm = median_time(lambda: NGramLM(order, smoothing, 1.0).fit(train, V), repeats)
            peak = peak_bytes(lambda: NGramLM(order, smoothing, 1.0).fit(train, V))
            eval_s, result = median_time(lambda: lm.evaluate(held), repeats)
            row = [str(order), smoothing, f"{fit_s:.2f}", f"{len(train) / fit_s:,.0f}", f"{peak / 2**20:,.0f}",
                   f"{lm.nbytes / 2**20:,.0f}", f"{result['tokens'] / eval_s:,.0f}", f"{result['perplexity']:.1f}"]
            if args.no_nltk or not have_nltk():
                row += ["-", "-"]
            else:
                prefix = [f"w{i}" for i in train[:args.nltk_max_tokens].tolist()]
                nfit_s, _ = median_time(lambda: nltk_fit(prefix, order, smoothing), 1)
                nrate = len(prefix) / nfit_s
                row += [f"{nrate:,.0f} ({len(prefix):,} tokens)", f"{len(train) / fit_s / nrate:.0f}x"]
            print("| " + " | ".join(row) + " |", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="only the README table (no nltk)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--nltk-sample", type=int, default=300, help="validation n-grams nltk scores")
    parser.add_argument("--nltk-max-tokens", type=int, default=200_000)
    parser.add_argument("--big-mb", type=float, default=50.0, help="size of the generated corpus (0: skip)")
    parser.add_argument("--no-nltk", action="store_true")
    args = parser.parse_args(argv)
    torch_threads = torch.get_num_threads()
    print(f"numpy {np.__version__}; rnnlab n-gram code is single-threaded NumPy; torch threads {torch_threads}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; cpus {os.cpu_count()}; "
          f"medians of {args.repeats} repeats")
    if args.table:
        table(args)
        return
    if not have_nltk() and not args.no_nltk:
        print("nltk is not installed: nltk columns are skipped (pip install 'rnnlab[bench]' to compare)")
    compare_tm(args)
    if args.big_mb > 0:
        big(args)


if __name__ == "__main__":
    main()
