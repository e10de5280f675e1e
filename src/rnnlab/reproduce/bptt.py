"""Section 8.7, backpropagation through time: full, truncated and randomized.

The book describes the three strategies and trains none of them side by side. Here the
``d2l-scratch`` preset trains with each on the same 10,000 characters for the same
number of epochs and seed: truncated (the book's, gradients stop at each 35-step
minibatch), full (one graph over the whole epoch, one update per epoch) and randomized
(Tallec and Ollivier: each step's gradient crosses to the previous one with
probability 0.9, scaled by 1/0.9). Reported: perplexity, time per epoch, and the mean
and variance of the gradient norm per update.
"""
from __future__ import annotations

from rnnlab.plots import curves_plot
from rnnlab.reproduce.common import Context, Row, SectionResult
from rnnlab.reproduce.training_runs import train_preset

KEY, TITLE = "8.7", "Backpropagation through time"
EPOCHS, QUICK_EPOCHS = 100, 10
FIGURE = "bptt.png"
STRATEGIES = ("truncated", "randomized", "full")


def run(context: Context) -> SectionResult:
    result = SectionResult(KEY, TITLE)
    epochs = QUICK_EPOCHS if context.quick else EPOCHS
    every = max(1, epochs // 10)
    runs = {strategy: train_preset(context, "d2l-scratch", epochs=epochs, eval_every=every, bptt=strategy)
            for strategy in STRATEGIES}
    for strategy, r in runs.items():
        s, g = r["summary"], r["grad_stats"]
        ours = (f"train ppl {s['train_perplexity']:.3f}, {r['seconds_per_epoch']:.3f} s/epoch, {s['steps']} updates; "
                f"grad norm mean {g['mean']:.3g}, variance {g['variance']:.3g}")
        if r["diverged"]:
            ours = "diverged: " + r["diverged"]
        result.rows.append(Row(f"{strategy} BPTT, {epochs} epochs", "described only, no numbers", ours,
                               held_out=f"val ppl {s['val_perplexity']:.2f} (best {s['best_val_perplexity']:.2f})"
                               if s.get("val_perplexity") is not None else ""))
    series = {strategy: [h["train_perplexity"] for h in r["history"]] for strategy, r in runs.items()}
    xs = [h["epoch"] for h in runs["truncated"]["history"]]
    curves_plot(xs, series, context.figure(FIGURE), xlabel="epoch", ylabel="training perplexity",
                title=f"d2l-scratch: BPTT strategies, same data and {epochs} epochs", logy=True)
    result.figures.append(FIGURE)
    result.notes.append(f"Same text (first 10,000 characters), seed and number of epochs ({epochs}"
                        f"{', --quick' if context.quick else ''}); full BPTT makes one update per epoch, the "
                        "others one per minibatch, so equal epochs means equal tokens read, not equal updates.")
    result.details = {strategy: {"summary": {k: v for k, v in r["summary"].items() if k != "out"},
                                 "history": r["history"], "grad_norm": r["grad_stats"],
                                 "grad_norms": r["grad_norms"], "seconds_per_epoch": r["seconds_per_epoch"],
                                 "diverged": r["diverged"]}
                      for strategy, r in runs.items()}
    return result
