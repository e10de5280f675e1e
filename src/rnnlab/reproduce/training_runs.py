"""Train one of the book's presets inside a reproduction, with a per-step gradient trace.

Shared by sections 8.4-8.6 and 8.7: the Time Machine is read and encoded once per
reproduction, every run uses the CPU (the trace needs it, and the book's numbers are
small enough), and a run whose loss becomes NaN or infinite (no clipping) is reported
as diverged instead of ending the reproduction.
"""
from __future__ import annotations

from rnnlab.errors import TrainingError
from rnnlab.reproduce.common import Context
from rnnlab.training.config import make_config
from rnnlab.tasks.lm import language_model_trainer
from rnnlab.tasks.lm_run import dataset_for
from rnnlab.training.trace import GradNormTrace


def preset_dataset(context: Context, config):
    """The d2l presets' data (first 10,000 characters train, the rest validates), loaded once."""
    if "d2l_char" not in context.cache:
        context.cache["d2l_char"] = dataset_for(config, context.data_dir)[0]
    return context.cache["d2l_char"]


def train_preset(context: Context, preset: str, no_clip: bool = False, **overrides) -> dict:
    """Train ``preset`` with ``overrides``; the summary, history, gradient trace and model.

    ``no_clip`` switches clipping off (``make_config`` reads ``clip=None`` as "not given",
    as the CLI does, so it is set after the preset, like ``rnnlab train --no-clip``).
    """
    config = make_config(preset, device="cpu", sample_length=0, seed=context.seed, **overrides)
    if no_clip:
        config.clip = None
    dataset = preset_dataset(context, config)
    trainer = language_model_trainer(config, dataset, baselines=True)
    trace = GradNormTrace(trainer)
    diverged = None
    try:
        summary = trainer.fit()
    except TrainingError as exc:
        diverged = str(exc)
        summary = trainer.summary()
    finally:
        trace.remove()
    history = trainer.progress.history
    best = min((h for h in history if h.get("val_perplexity") is not None),
               key=lambda h: h["val_perplexity"], default=None)
    return {"config": config, "trainer": trainer, "summary": summary, "history": history,
            "grad_norms": trace.norms, "grad_stats": trace.summary(), "diverged": diverged,
            "best_epoch": best["epoch"] if best else None,
            "seconds_per_epoch": summary["seconds"] / summary["epochs"] if summary.get("epochs") else None}
