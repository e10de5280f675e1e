"""Language modelling as a task of the one training loop (:mod:`rnnlab.training.loop`).

Batches are :class:`~rnnlab.data.batches.BatchIterator` minibatches ``X, Y: (batch,
num_steps)`` of the training split; the loss is the mean cross-entropy of next-token
prediction (nats per token); the metric is validation perplexity (lower is better).
What is specific to language models lives here:

* the carried hidden state and backpropagation through time: a strategy object of
  :mod:`rnnlab.training.bptt` (truncated, randomized or full) sets the epoch's steps and
  computes each step's loss;
* a greedy sample at every evaluation, the perplexity figure, and (opt-in) the
  unigram and Kneser-Ney baselines in the summary.

Under DDP (``dist``, see :mod:`rnnlab.training.distributed`) the task's only
distributed knowledge is its shard: the iterator yields this rank's rows of every
global batch, and the validation stream's rows are split between the ranks and their
NLL summed (:func:`rnnlab.evaluation.evaluate`'s ``shard``).
"""
from __future__ import annotations

import math

from rnnlab.data.batches import BatchIterator
from rnnlab.data.dataset import TextDataset
from rnnlab.data.text import detokenize
from rnnlab.evaluation import evaluate, unigram_result
from rnnlab.lm import LanguageModel
from rnnlab.metrics import perplexity
from rnnlab.models import RecurrentLM, build_model
from rnnlab.plots import curves_plot
from rnnlab.progress import logger
from rnnlab.training.bptt import Full, make_bptt
from rnnlab.training.checkpoint import KIND, load_training_config
from rnnlab.training.config import TrainConfig
from rnnlab.training.distributed import SINGLE, Distributed
from rnnlab.training.loop import Callback, Trainer


# The summary's n-gram baselines are fitted only on training splits up to this size.
BASELINE_MAX_TOKENS = 20_000_000


class LanguageModelTask:
    """Next-token prediction on ``dataset`` as ``config`` says (its data and batch sections)."""

    kind = KIND
    metric = ("perplexity", "min")
    unit = "tokens"
    selects_best = True

    def __init__(self, config: TrainConfig, dataset: TextDataset, data_info: dict | None = None,
                 baselines: bool = False, dist: Distributed = SINGLE) -> None:
        self.config, self.dataset = config, dataset
        self.data_info = data_info or {"corpus": dataset.corpus_name}
        self.baselines = baselines
        self.shard = dist
        self.loader = BatchIterator(dataset.train, config.batch_size, config.num_steps, sampling=config.sampling,
                                    seed=config.seed, rank=dist.rank, world_size=dist.world_size)
        self.bptt = make_bptt(config)
        self._ngram = None
        self._val_chars: int | None = None  # characters the scored validation tokens cover (computed once)

    # -- what the loop asks ------------------------------------------------------
    def num_batches(self, epoch: int) -> int:
        return self.bptt.num_batches(self.loader)

    def batches(self, epoch: int):
        self.loader.epoch = epoch
        return self.bptt.batches(self.loader)

    def loss(self, model: RecurrentLM, batch, carry, step: int):
        """(mean nats per token, tokens, the state handed to the next batch): the BPTT strategy's."""
        return self.bptt.loss(model, batch, carry, step)

    def evaluate(self, model: RecurrentLM) -> dict | None:
        if len(self.dataset.val) <= 1:
            return None
        result = evaluate(model, self.dataset.val, shard=self.shard if self.shard.enabled else None)
        return {**result, "loss": result["nll_nats"] / max(result["tokens"], 1)}

    def record(self, train_loss: float, scores: dict | None, model: RecurrentLM) -> dict:
        record = {"train_perplexity": perplexity(train_loss, 1) if math.isfinite(train_loss) else None,
                  "val_perplexity": scores["perplexity"] if scores else None,
                  "val_bits_per_token": scores["bits_per_token"] if scores else None,
                  "val_bits_per_char": self.per_character(scores["bits_per_token"] if scores else None)[
                      "val_bits_per_char"]}
        if self.config.sample_length:
            prefix = self.config.sample_prefix or self._default_prefix()
            record["sample"] = self.language_model(model).generate(prefix, self.config.sample_length, greedy=True)
        return record

    def log_line(self, record: dict) -> str:
        def num(value, fmt):
            return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)
        line = (f"epoch {num(record['epoch'], '.4g')} step {record['step']}: train ppl "
                f"{num(record['train_perplexity'], '.3f')} | val ppl {num(record['val_perplexity'], '.3f')} "
                f"({num(record['val_bits_per_token'], '.3f')} bits/token, {num(record.get('val_bits_per_char'), '.4f')} "
                f"bits/char) | {num(record['tokens_per_second'], ',.0f')}"
                f" tok/s | grad norm {num(record['grad_norm_mean'], '.3g')} (max {num(record['grad_norm_max'], '.3g')})"
                f" | lr {num(record['lr'], '.3g')}")
        if record.get("sample") is not None:
            line += f"\n  sample: {record['sample']!r}"
        return line

    def figure(self, history: list, out_dir) -> None:
        if len(history) < 2:
            return
        series = {"train": [h["train_perplexity"] for h in history]}
        if history[-1]["val_perplexity"] is not None:
            series["validation"] = [h["val_perplexity"] for h in history]
        curves_plot([h["epoch"] for h in history], series, out_dir / "perplexity.png",
                    xlabel="epoch", ylabel="perplexity", title=f"{self.config.model} on {self.data_info.get('corpus')}")

    def checkpoint_sections(self) -> dict:
        return {"vocab": self.dataset.vocab.to_dict(), "preprocessing": self.dataset.preprocessing(),
                "data": self.data_info}

    def checkpoint_documents(self) -> dict:
        return self.dataset.checkpoint_documents()

    def check_checkpoint(self, folder) -> dict:
        return load_training_config(folder)

    def carry_template(self, model: RecurrentLM):
        return model.begin_state(self.config.batch_size, device="meta")

    def summary(self, trainer: Trainer) -> dict:
        p = trainer.progress
        last = p.history[-1] if p.history else {}
        fields = {
            "model": self.config.model, "train_perplexity": last.get("train_perplexity"),
            "val_perplexity": last.get("val_perplexity"), "val_bits_per_token": last.get("val_bits_per_token"),
            "best_val_perplexity": p.best_value, "sample": last.get("sample"),
            "train_tokens": len(self.dataset.train), "val_tokens": len(self.dataset.val),
            "vocab_size": len(self.dataset.vocab), "size_rule": self.config.size_rule,
            **self.per_character(last.get("val_bits_per_token")),
        }
        if self.baselines:
            fields.update(self.baseline_fields())
        return fields

    # -- language-model extras ---------------------------------------------------
    def per_character(self, bits_per_token: float | None) -> dict:
        """Validation bits and nats per character of text: comparable across token kinds.

        The scored tokens are the validation split's but its first; the characters they
        cover are :meth:`rnnlab.data.dataset.TextDataset.covered_chars`'s (counted from the text)."""
        scored = len(self.dataset.val) - 1
        if bits_per_token is None or scored < 1:
            return {"val_bits_per_char": None, "val_nats_per_char": None}
        if self._val_chars is None:
            self._val_chars = max(1, self.dataset.covered_chars("val"))
        bits = bits_per_token * scored / self._val_chars
        return {"val_bits_per_char": bits, "val_nats_per_char": bits * math.log(2)}

    def language_model(self, model: RecurrentLM) -> LanguageModel:
        return LanguageModel(model, self.dataset.vocab, self.dataset.mode, self.dataset.token)

    def _default_prefix(self) -> str:
        tokens = self.dataset.vocab.to_tokens(self.dataset.train[:8].tolist())
        return detokenize(tokens, self.dataset.token)

    def baseline_fields(self) -> dict:
        """Add-one unigrams and interpolated Kneser-Ney on the same split: the references the
        RNN should beat (order 5 for characters and bytes, 3 for words)."""
        if len(self.dataset.val) <= 1:
            return {"unigram_val_perplexity": None, "ngram_val_perplexity": None, "ngram_order": None}
        if len(self.dataset.train) > BASELINE_MAX_TOKENS:
            logger.info("n-gram baselines skipped: %s training tokens, above %s (their tables would take minutes "
                        "and gigabytes; rnnlab ngram train fits one)", f"{len(self.dataset.train):,}",
                        f"{BASELINE_MAX_TOKENS:,}")
            return {"unigram_val_perplexity": None, "ngram_val_perplexity": None, "ngram_order": None}
        if self._ngram is None:
            from rnnlab.ngram import baseline  # lazy: keeps rnnlab --help from loading rnnlab.ngram
            order = 3 if self.dataset.token == "word" else 5
            self._ngram = baseline(self.dataset, order=order, smoothing="kn")
        unigram = unigram_result(self.dataset.train, self.dataset.val, len(self.dataset.vocab))
        return {"unigram_val_perplexity": unigram["perplexity"], "ngram_val_perplexity": self._ngram["perplexity"],
                "ngram_order": self._ngram["order"]}


def language_model_trainer(config: TrainConfig, dataset: TextDataset, model: RecurrentLM | None = None,
                           out_dir=None, callbacks: list[Callback] | tuple = (), data_info: dict | None = None,
                           baselines: bool = False, dist: Distributed = SINGLE) -> Trainer:
    """The loop's :class:`~rnnlab.training.loop.Trainer` for a language model (built from
    ``config`` when not given); ``baselines`` adds the n-gram references to the summary;
    ``dist``: this process's place in a distributed run (:func:`rnnlab.training.distributed.launch`)."""
    config.validate()
    if model is None:
        model = build_model(config.model, len(dataset.vocab), seed=config.seed, **config.model_options())
    task = LanguageModelTask(config, dataset, data_info, baselines=baselines, dist=dist)
    if isinstance(task.bptt, Full):
        task.bptt.check_memory(len(dataset.train), model)
    return Trainer(task, model, config, out_dir=out_dir, callbacks=callbacks, dist=dist)


__all__ = ["LanguageModelTask", "language_model_trainer"]
