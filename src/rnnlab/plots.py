"""Every matplotlib figure rnnlab writes. Uses the non-interactive Agg backend."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from rnnlab.errors import UsageError
from rnnlab.fileio import temporary_name


def _pyplot():
    import matplotlib  # lazy: matplotlib takes ~0.7 s to import and only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib takes ~0.7 s to import and only plots need it

    return plt


def check_figure_format(path: str | os.PathLike, option: str = "--plot") -> None:
    """Refuse, before any work, a figure path whose extension matplotlib cannot write."""
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    formats = _pyplot().figure().canvas.get_supported_filetypes()
    _pyplot().close("all")
    if suffix not in formats:
        raise UsageError(f"{option} {path}: unknown figure format '.{suffix}'; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")


def _save(fig, path: str | os.PathLike) -> None:
    """Write the figure under a temporary name and rename it into place, so a crash never
    leaves a truncated image (a training run redraws its curves at every evaluation)."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, temporary_name("figure"))
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=fmt)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
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


def curves_plot(xs: Sequence[float] | Mapping[str, Sequence[float]], series: Mapping[str, Sequence[float]],
                path: str | os.PathLike, xlabel: str, ylabel: str, title: str = "", logy: bool = False) -> None:
    """Several named curves over a shared x axis (perplexity per epoch, error per horizon...),
    or over one x axis per curve when ``xs`` maps each name to its own."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        x = xs[name] if isinstance(xs, Mapping) else xs
        ax.plot(list(x)[:len(ys)], ys, label=name, marker="o" if len(ys) < 30 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def forecast_figure(series, train_end: int, one_step: tuple, multi_step: tuple, k_step: dict,
                    mae_by_horizon: dict, path, title: str = "") -> None:
    """The book's three forecasting figures plus the error by horizon, in one PNG.

    ``one_step`` and ``multi_step`` are ``(times, values)``; ``k_step`` maps k to
    ``(times, values)``; ``mae_by_horizon`` maps a method to its MAE for h = 1..H.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(7, 11))
    time = range(1, len(series) + 1)
    axes[0].plot(time, series, label="data", lw=0.8)
    axes[0].plot(one_step[0], one_step[1], label="1-step preds", lw=0.8)
    axes[0].set_title("one-step-ahead predictions")
    axes[1].plot(time, series, label="data", lw=0.8)
    axes[1].plot(one_step[0], one_step[1], label="1-step preds", lw=0.8)
    axes[1].plot(multi_step[0], multi_step[1], label="multistep preds", lw=1.2)
    axes[1].axvline(train_end, color="grey", ls=":", lw=0.8)
    axes[1].set_title(f"multi-step predictions from t = {train_end}")
    for k, (times, values) in sorted(k_step.items()):
        axes[2].plot(times, values, label=f"{k}-step preds", lw=0.8)
    axes[2].set_title("k-step-ahead predictions")
    for name, mae in mae_by_horizon.items():
        axes[3].plot(range(1, len(mae) + 1), mae, label=name)
    axes[3].set_xscale("log")
    axes[3].set_xlabel("horizon h")
    axes[3].set_ylabel("MAE")
    axes[3].set_title("backtest error by horizon (held-out origins)")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
    _to_palette(path)


def _to_palette(path, colors: int = 64) -> None:
    """Re-save a PNG with a 64-colour palette: the noisy series make the RGBA file
    ~4x larger (about 230 KB against 60 KB) with no visible difference."""
    # lazy: comes with matplotlib; only reading a figure back needs it
    from PIL import Image  # a dependency of matplotlib

    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=colors)
    palette.save(path, optimize=True)


def confusion_plot(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | os.PathLike,
                   title: str = "") -> None:
    """A classifier's confusion matrix (rows: true label, columns: predicted), counts written in the cells."""
    plt = _pyplot()
    size = min(12.0, 2.5 + 0.5 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = max((max(row) for row in matrix), default=0)
    if len(labels) <= 20:
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center",
                        color="white" if peak and count > peak / 2 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    _save(fig, path)
