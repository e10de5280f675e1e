"""Every matplotlib figure rnnlab writes. Uses the non-interactive Agg backend."""
from __future__ import annotations

import os
from typing import Mapping, Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def zipf_plot(counts_by_order: Mapping[int, Sequence[int]], path: str | os.PathLike, title: str = "") -> None:
    """Log-log frequency against rank for each n-gram order (the book's Zipf figure)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    names = {1: "unigram", 2: "bigram", 3: "trigram"}
    for n, counts in sorted(counts_by_order.items()):
        ax.loglog(range(1, len(counts) + 1), counts, label=names.get(n, f"{n}-gram"))
    ax.set_xlabel("token: x (rank)")
    ax.set_ylabel("frequency: n(x)")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="major", alpha=0.3)
    _save(fig, path)


def curves_plot(xs: Sequence[float], series: Mapping[str, Sequence[float]], path: str | os.PathLike,
                xlabel: str, ylabel: str, title: str = "", logy: bool = False) -> None:
    """Several named curves over a shared x axis (perplexity per epoch, error per horizon...)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        ax.plot(list(xs)[:len(ys)], ys, label=name, marker="o" if len(ys) < 30 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, alpha=0.3)
    _save(fig, path)
