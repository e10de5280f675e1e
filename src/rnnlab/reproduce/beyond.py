"""Beyond the book: the classic RNN, GRU, LSTM, minGRU and minLSTM for the same CPU time.

The chapter trains each cell for a fixed number of epochs; what a user has is a fixed
number of seconds. Here the five models train on the d2l presets' data (the first
10,000 characters of the Time Machine; validation on the 160,580 after them) with the
book's one-layer sizes and optimiser (256 hidden units, SGD with lr 1, clipping at 1,
batch 32 x 35, float32), each for the same wall-clock budget on the CPU. The classic
cells read one-hot input, as in the book; minGRU and minLSTM (Feng et al. 2024,
:mod:`rnnlab.models.parallel`) are one block of 256 units without the MLP, fed by their
own (vocabulary, 256) embedding, so their parameter counts stay close to the book's cells.

Reported per model: parameters, training tokens/s, epochs the budget bought, training
perplexity, and the held-out perplexity (best and last) beside the 5-gram Kneser-Ney
model. The book prints no numbers for equal time, so no row is compared with it.
"""
from __future__ import annotations

from rnnlab.plots import curves_plot
from rnnlab.reproduce.common import Context, Row, SectionResult
from rnnlab.reproduce.training_runs import train_preset
from rnnlab.training.config import UNLIMITED_EPOCHS

KEY, TITLE = "beyond", "Beyond the book: RNN, GRU, LSTM, minGRU, minLSTM for the same CPU time"
SECONDS, QUICK_SECONDS = 60.0, 6.0
EVAL_EVERY, QUICK_EVAL_EVERY = 20, 5  # epochs of 8 minibatches between validations
MODELS = {"rnn": "nn.RNN (tanh)", "gru": "nn.GRU", "lstm": "nn.LSTM",
          "mingru": "minGRU (1 block, no MLP)", "minlstm": "minLSTM (1 block, no MLP)"}
FIGURE = "beyond.png"


def run(context: Context) -> SectionResult:
    result = SectionResult(KEY, TITLE)
    seconds, every = (QUICK_SECONDS, QUICK_EVAL_EVERY) if context.quick else (SECONDS, EVAL_EVERY)
    runs = {model: train_preset(context, "d2l-concise", model=model, mlp_ratio=0.0, max_time=seconds,
                                epochs=UNLIMITED_EPOCHS, eval_every=every)
            for model in MODELS}
    for model, r in runs.items():
        s = r["summary"]
        if r["diverged"]:
            ours = "diverged: " + r["diverged"]
        else:
            ours = (f"train ppl {s['train_perplexity']:.3f}; {s['parameters']:,} parameters, "
                    f"{s['tokens_per_second']:,.0f} tokens/s, {s['epochs']:.0f} epochs in {s['seconds']:.0f} s")
        held = "" if s.get("val_perplexity") is None else (
            f"val ppl {s['val_perplexity']:.2f} (best {s['best_val_perplexity']:.2f} at epoch {r['best_epoch']:g}); "
            f"5-gram KN {s['ngram_val_perplexity']:.2f}")
        result.rows.append(Row(f"{MODELS[model]}, {seconds:g} s", "not in the book", ours, held_out=held))
    evaluated = {model: [h for h in r["history"] if h.get("val_perplexity") is not None] for model, r in runs.items()}
    curves_plot({model: [h["seconds"] for h in records] for model, records in evaluated.items()},
                {model: [h["val_perplexity"] for h in records] for model, records in evaluated.items()},
                context.figure(FIGURE), xlabel="training seconds", ylabel="validation perplexity",
                title=f"d2l presets' data, {seconds:g} s each", logy=True)
    result.figures.append(FIGURE)
    result.notes.append(
        f"Each model trains for {seconds:g} s of wall-clock time{' (--quick)' if context.quick else ''} on the "
        "CPU with the book's one-layer settings; equal time, not equal epochs, so a faster cell reads more text. "
        "On 10,000 training characters every model ends by memorising them: the held-out perplexity is lowest "
        "early and then rises, which is why the best one is shown beside the last.")
    result.details = {model: {"summary": {k: v for k, v in r["summary"].items() if k != "out"},
                              "history": r["history"], "best_epoch": r["best_epoch"], "diverged": r["diverged"]}
                      for model, r in runs.items()}
    return result
