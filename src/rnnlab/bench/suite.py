"""``rnnlab bench``: every performance measurement of the project, side by side in one process.

:func:`run_bench` returns one JSON-ready dict: ``header`` (torch version, threads,
CPU capability, bfloat16 support, load, plan) and ``sections``, each with its
``rows`` and ``notes``. Candidates of a section are timed in interleaved repetitions
(:mod:`rnnlab.bench.timing`); every rate is ``work / median seconds``.

Sections (see :data:`SECTIONS`):

* ``rnn`` -- one training step (:mod:`rnnlab.bench.steps`) of the book's tanh RNN,
  vocabulary 28, hidden 512, 35 steps, at batch 32 (the book's) and 256:
  (a) the book's formulation from its equations, (b) ``torch.nn.RNN`` + ``Linear`` on
  one-hot input, (c) ``torch.nn.RNN`` on an ``nn.Embedding(28, 28)`` (the same function
  class as (b) without building one-hot vectors), (d) rnnlab ``rnn-scratch`` in
  float32, (e) the same under ``rnnlab.precision.autocast(..., "bf16")``; rates are also
  given relative to (a) and (b).
* ``gru-lstm`` -- ``torch.nn.GRU`` / ``torch.nn.LSTM`` (embedding 64, vocabulary 100,
  batch 32, 64 steps, one layer) at hidden 256 and 512 against rnnlab ``gru`` / ``lstm``
  in float32 and bf16; and the default training configuration
  (``rnnlab.training.config.TrainConfig()``: its model, sizes, dropout, batch, steps
  and precision, resolved for this CPU) against the same ``torch.nn`` layers in float32.
* ``parallel`` -- minGRU and minLSTM (3 layers, MLP ratio 2) against rnnlab's ``lstm``
  and ``gru`` and ``torch.nn.LSTM`` (2 layers, embedding 64) at the default LSTM's
  parameter count and at 2x and 4x it (each model's hidden size chosen to come
  closest), batch 32 x 64, float32 and bf16; rates relative to rnnlab's LSTM of the
  same scale and precision.
* ``roofline`` -- each training row's FLOPs (formulas in :mod:`rnnlab.bench.steps`)
  against ``torch.mm`` at the same shapes, measured here (:mod:`rnnlab.bench.roofline`).
* ``generate`` -- generation tokens/s, one stream and 64 streams, greedy, of
  ``rnn-scratch`` (hidden 512) and the default model, in float32 and eval mode.
  Uses ``rnnlab.generation.generation_tokens_per_second`` where it exists; otherwise
  one stream is timed through ``generate_ids`` and 64 streams through a greedy loop
  over ``model(tokens (64, 1), state)`` written here.
  Beside them, end to end on the ``rnn-scratch`` model: the book's ``predict_ch8``
  (:mod:`rnnlab.bench.book_generation`) and ``rnnlab generate``'s path from the prefix
  to the text written out, interleaved, with rnnlab's rate relative to the book's.
* ``memory`` -- one training step of the book's RNN and of the default model:
  measured peak and saved-for-backward bytes (:mod:`rnnlab.bench.memory`) beside the
  kept-activations formula (:meth:`rnnlab.bench.steps.Shape.kept_bytes`). Always at
  the full shapes (it is one step each).
* ``data`` -- corpus encoding MB/s and n-gram fit/evaluation tokens/s
  (:mod:`rnnlab.bench.data`).
* ``export`` -- single-stream generation tokens/s of a hidden-256 LSTM in PyTorch and as
  ONNX float32 and int8 graphs, and int8's bits/char change on held-out text
  (:mod:`rnnlab.bench.export_bench`; skipped without onnxruntime).

``quick`` shrinks everything (3 repetitions, one call each, 16 time steps, short
generations, small texts) so the whole suite runs in well under a minute on two
cores: a smoke test, not a measurement to quote.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import torch

from rnnlab.bench import SECTIONS
from rnnlab.bench import data as data_bench
from rnnlab.bench import memory as memory_bench
from rnnlab.bench import roofline as roofline_bench
from rnnlab.bench.export_bench import section_export
from rnnlab.bench.steps import Shape, TrainingStep, book_rnn, rnnlab_model, torch_model
from rnnlab.bench.timing import Candidate, Measurement, environment, measure
from rnnlab.errors import UsageError
from rnnlab.generation import Sampling, generate_ids, write_stream
from rnnlab.models import build_model
from rnnlab.precision import resolve_precision
from rnnlab.progress import logger
from rnnlab.training.budget import count_parameters
from rnnlab.training.config import TrainConfig
from rnnlab.bench.book_generation import BookScratchRNN, predict_ch8
from rnnlab.data.vocab import Vocab
from rnnlab.lm import LanguageModel

try:  # another engineer is adding it; until then generation is timed here
    from rnnlab.generation import generation_tokens_per_second
except ImportError:
    generation_tokens_per_second = None

BOOK_VOCAB, BOOK_HIDDEN, BOOK_BATCH, BOOK_STEPS = 28, 512, 32, 35
WIDE_BATCH = 256
CELL_VOCAB, CELL_EMBED, CELL_BATCH, CELL_STEPS = 100, 64, 32, 64  # the gru-lstm section's shapes
CELL_HIDDEN = (256, 512)
DEFAULT_VOCAB = 100  # a character-level vocabulary's size
GENERATE_BATCH = 64
BF16_UNSUPPORTED = "skipped: bfloat16 is not supported natively on this CPU"


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full run, or the quick smoke test."""

    repeats: int
    min_seconds: float          # time each candidate at least this long per repetition (more calls)
    warmup: int
    max_steps: int | None       # cap on time steps per training step (None: the shapes as stated)
    generate_length: int
    matmul_min_seconds: float
    encode_megabytes: float
    word_megabytes: float
    ngram_megabytes: float

    def steps(self, steps: int) -> int:
        return steps if self.max_steps is None else min(steps, self.max_steps)


FULL = Plan(repeats=7, min_seconds=0.5, warmup=2, max_steps=None, generate_length=1000,
            matmul_min_seconds=0.1, encode_megabytes=100.0, word_megabytes=10.0, ngram_megabytes=20.0)
QUICK = Plan(repeats=3, min_seconds=0.0, warmup=1, max_steps=16, generate_length=32,
             matmul_min_seconds=0.02, encode_megabytes=5.0, word_megabytes=0.5, ngram_megabytes=1.0)


@dataclass
class Row:
    """One training-step candidate of the ``rnn`` or ``gru-lstm`` section."""

    section: str
    group: str
    candidate: str
    implementation: str  # book | torch | rnnlab
    precision: str
    shape: Shape
    build: Callable[[], TrainingStep]

    @property
    def key(self) -> str:
        return f"{self.section}|{self.group}|{self.candidate}|{self.precision}"

    def describe(self) -> dict:
        return {"group": self.group, "candidate": self.candidate, "implementation": self.implementation,
                "precision": self.precision, "shape": self.shape.to_dict()}


# ----------------------------------------------------------------------------------
# which rows


def default_config() -> dict:
    """The default training configuration's model and sizes, precision resolved for the CPU."""
    config = TrainConfig()
    requested = getattr(config, "precision", "fp32")  # the field is new; older configs train in float32
    return {"model": config.model, "options": config.model_options(), "hidden_size": config.hidden_size,
            "num_layers": config.num_layers, "embed_size": config.embed_size, "dropout": config.dropout,
            "batch_size": config.batch_size, "num_steps": config.num_steps, "optimizer": config.optimizer,
            "precision_requested": requested, "precision": resolve_precision(requested, "cpu")}


def default_shape(config: dict, steps: int) -> Shape:
    cell = "rnn" if config["model"] == "rnn-scratch" else config["model"]
    embed = 0 if config["model"] == "rnn-scratch" else config["embed_size"]
    layers = 1 if config["model"] == "rnn-scratch" else config["num_layers"]
    dropout = 0.0 if config["model"] == "rnn-scratch" else config["dropout"]
    return Shape(cell, DEFAULT_VOCAB, config["hidden_size"], config["batch_size"], steps, embed=embed,
                 layers=layers, dropout=dropout)


def rnn_rows(plan: Plan) -> list[Row]:
    rows = []
    for batch in (BOOK_BATCH, WIDE_BATCH):
        shape = Shape("rnn", BOOK_VOCAB, BOOK_HIDDEN, batch, plan.steps(BOOK_STEPS))
        embedded = Shape("rnn", BOOK_VOCAB, BOOK_HIDDEN, batch, shape.steps, embed=BOOK_VOCAB)
        group = shape.label()
        rows += [
            Row("rnn", group, "(a) book: one-hot products, loop, autograd", "book", "fp32", shape,
                lambda s=shape: book_rnn(s)),
            Row("rnn", group, "(b) torch.nn.RNN + Linear, one-hot", "torch", "fp32", shape,
                lambda s=shape: torch_model(s)),
            Row("rnn", group, "(c) torch.nn.RNN + Linear, nn.Embedding(28, 28)", "torch", "fp32", embedded,
                lambda s=embedded: torch_model(s)),
            Row("rnn", group, "(d) rnnlab rnn-scratch", "rnnlab", "fp32", shape,
                lambda s=shape: rnnlab_model("rnn-scratch", s)),
            Row("rnn", group, "(e) rnnlab rnn-scratch", "rnnlab", "bf16", shape,
                lambda s=shape: rnnlab_model("rnn-scratch", s, "bf16")),
        ]
    return rows


def gru_lstm_rows(plan: Plan, config: dict) -> list[Row]:
    rows = []
    for hidden in CELL_HIDDEN:
        for cell in ("gru", "lstm"):
            shape = Shape(cell, CELL_VOCAB, hidden, CELL_BATCH, plan.steps(CELL_STEPS), embed=CELL_EMBED)
            group = shape.label()
            rows += [
                Row("gru-lstm", group, f"torch.nn.{cell.upper()} + Linear", "torch", "fp32", shape,
                    lambda s=shape: torch_model(s)),
                Row("gru-lstm", group, f"rnnlab {cell}", "rnnlab", "fp32", shape,
                    lambda c=cell, s=shape: rnnlab_model(c, s)),
                Row("gru-lstm", group, f"rnnlab {cell}", "rnnlab", "bf16", shape,
                    lambda c=cell, s=shape: rnnlab_model(c, s, "bf16")),
            ]
    shape = default_shape(config, plan.steps(config["num_steps"]))
    group = f"default config: {shape.label()}"
    optimizer = config["optimizer"] if config["optimizer"] in ("sgd", "adam") else "adam"  # adamw costs as adam
    torch_name = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}[shape.cell]
    rows += [
        Row("gru-lstm", group, f"torch.nn.{torch_name} + Linear", "torch", "fp32", shape,
            lambda: torch_model(shape, optimizer=optimizer)),
        Row("gru-lstm", group, f"rnnlab {config['model']} (TrainConfig defaults)", "rnnlab", config["precision"],
            shape, lambda: rnnlab_model(config["model"], shape, config["precision"], options=config["options"],
                                        optimizer=optimizer)),
    ]
    return rows


# ----------------------------------------------------------------------------------
# sections


def _measure_rows(rows: list[Row], plan: Plan, bf16: bool, desc: str) -> tuple[list[dict], dict[str, Measurement]]:
    runnable = [row for row in rows if bf16 or row.precision != "bf16"]
    candidates = [Candidate(row.key, row.build(), row.shape.tokens) for row in runnable]
    logger.info("bench %s: %d candidates x %d repetitions", desc, len(candidates), plan.repeats)
    measured = measure(candidates, plan.repeats, plan.min_seconds, plan.warmup, desc=desc)
    out = []
    for row in rows:
        entry = row.describe()
        if row.key in measured:
            m = measured[row.key]
            entry.update(tokens_per_second=m.rate, seconds_per_step=m.median_seconds,
                         spread=m.spread, repetitions=len(m.seconds), calls_per_repetition=m.calls_per_repetition)
        else:
            entry["skipped"] = BF16_UNSUPPORTED
        out.append(entry)
    return out, measured


def _ratio(entry: dict, reference: dict | None) -> float | None:
    if reference is None or "tokens_per_second" not in entry or "tokens_per_second" not in reference:
        return None
    return entry["tokens_per_second"] / reference["tokens_per_second"]


def section_rnn(plan: Plan, bf16: bool) -> tuple[dict, dict[str, Measurement]]:
    rows = rnn_rows(plan)
    entries, measured = _measure_rows(rows, plan, bf16, "rnn")
    for entry in entries:
        group = [e for e in entries if e["group"] == entry["group"]]
        entry["vs_book"] = _ratio(entry, next((e for e in group if e["implementation"] == "book"), None))
        entry["vs_torch_rnn"] = _ratio(entry, next((e for e in group if e["candidate"].startswith("(b)")), None))
    notes = ["one step = forward, float32 cross-entropy, backward, clip to norm 1, SGD (lr 1); state from zeros",
             "vs_book: rate / rate of (a); vs_torch_rnn: rate / rate of (b), in the same group"]
    return {"rows": entries, "notes": notes}, measured


def section_gru_lstm(plan: Plan, bf16: bool, config: dict) -> tuple[dict, dict[str, Measurement]]:
    rows = gru_lstm_rows(plan, config)
    entries, measured = _measure_rows(rows, plan, bf16, "gru-lstm")
    for entry in entries:
        baseline = next((e for e in entries if e["group"] == entry["group"] and e["implementation"] == "torch"), None)
        entry["vs_torch"] = _ratio(entry, baseline)
    public = {k: v for k, v in config.items() if k != "options"}
    notes = ["one step = forward, float32 cross-entropy, backward, clip to norm 1, Adam; state from zeros",
             "vs_torch: rate / rate of the torch.nn row (float32) in the same group",
             f"default config (TrainConfig()): {public}, vocabulary {DEFAULT_VOCAB}"]
    return {"rows": entries, "notes": notes, "default_config": public}, measured


PARALLEL_SCALES = (1, 2, 4)
PARALLEL_OPTIONS = {"lstm": dict(num_layers=2, embed_size=CELL_EMBED), "gru": dict(num_layers=2, embed_size=CELL_EMBED),
                    "mingru": dict(num_layers=3, mlp_ratio=2.0), "minlstm": dict(num_layers=3, mlp_ratio=2.0)}


def sized_options(model: str, parameters: int, options: dict) -> dict:
    """``options`` with the hidden size (a multiple of 8) whose model comes closest to ``parameters``."""
    def count(hidden: int) -> int:
        return count_parameters({"model": model, **options, "hidden_size": hidden}, DEFAULT_VOCAB)
    low, high = 8, 8
    while count(high) < parameters:
        low, high = high, high * 2
    while high - low > 8:
        middle = (low + high) // 16 * 8
        low, high = (middle, high) if count(middle) < parameters else (low, middle)
    best = min((low, high), key=lambda h: abs(count(h) - parameters))
    return {**options, "hidden_size": best}


def default_parameters(config: dict) -> int:
    """Parameters of the default configuration's model at the bench's vocabulary."""
    return count_parameters({"model": config["model"], **config["options"]}, DEFAULT_VOCAB)


def parallel_rows(plan: Plan, config: dict) -> list[Row]:
    reference = default_parameters(config)
    rows = []
    for scale in PARALLEL_SCALES:
        group = f"{scale}x the default LSTM's parameters ({scale * reference:,})"
        for model, base in PARALLEL_OPTIONS.items():
            options = sized_options(model, scale * reference, base)
            shape = Shape("lstm", DEFAULT_VOCAB, options["hidden_size"], CELL_BATCH, plan.steps(CELL_STEPS),
                          embed=CELL_EMBED, layers=2)
            name = f"rnnlab {model} {options['num_layers']} x {options['hidden_size']}"
            if model == "lstm":
                rows.append(Row("parallel", group, f"torch.nn.LSTM 2 x {options['hidden_size']} + Linear", "torch",
                                "fp32", shape, lambda s=shape: torch_model(s, optimizer="adam")))
            for precision in ("fp32", "bf16"):
                rows.append(Row("parallel", group, name, "rnnlab", precision, shape,
                                lambda m=model, s=shape, p=precision, o=options:
                                rnnlab_model(m, s, p, options=o, optimizer="adam")))
    return rows


def section_parallel(plan: Plan, bf16: bool, config: dict) -> dict:
    rows = parallel_rows(plan, config)
    entries, _ = _measure_rows(rows, plan, bf16, "parallel")
    for entry in entries:
        reference = next((e for e in entries if e["group"] == entry["group"] and e["precision"] == entry["precision"]
                          and e["candidate"].startswith("rnnlab lstm")), None)
        entry["vs_lstm"] = _ratio(entry, reference)
        model = "lstm" if entry["implementation"] == "torch" else entry["candidate"].split()[1]
        entry["parameters"] = count_parameters({"model": model, **PARALLEL_OPTIONS[model],
                                                "hidden_size": entry["shape"]["hidden"]}, DEFAULT_VOCAB)
    notes = ["one step = forward, float32 cross-entropy, backward, clip to norm 1, Adam; state from zeros; no dropout",
             "vs_lstm: rate / rate of rnnlab's LSTM of the same scale and precision"]
    return {"rows": entries, "notes": notes}


def section_roofline(plan: Plan, bf16: bool, config: dict, measured: dict[str, Measurement]) -> dict:
    rows = rnn_rows(plan) + gru_lstm_rows(plan, config)
    precisions = ("fp32", "bf16") if bf16 else ("fp32",)
    candidates = roofline_bench.matmul_candidates([row.shape for row in rows], precisions)
    logger.info("bench roofline: %d torch.mm shapes x %d repetitions", len(candidates), plan.repeats)
    # A product takes ~0.1 ms: its first calls (oneDNN primitive creation) would skew the calibration.
    rates = measure(candidates, plan.repeats, plan.matmul_min_seconds, max(plan.warmup, 3), desc="roofline")
    matmul = []
    for candidate in candidates:
        _, size, precision = candidate.key.split(" ")
        rows_, inner, cols = (int(x) for x in size.split("x"))
        matmul.append({"rows": rows_, "inner": inner, "cols": cols, "precision": precision,
                       "flops_per_second": rates[candidate.key].rate, "spread": rates[candidate.key].spread})
    entries = []
    for row in rows:
        if row.precision not in precisions:
            continue
        flops = row.shape.training_flops()
        roof = roofline_bench.roofline_seconds(row.shape, row.precision, rates)
        entry = {"section": row.section, "group": row.group, "candidate": row.candidate,
                 "precision": row.precision, "flops_per_step": flops, "roofline_seconds": roof,
                 "roofline_flops_per_second": flops / roof}
        if row.key in measured:
            seconds = measured[row.key].median_seconds
            entry.update(seconds_per_step=seconds, achieved_flops_per_second=flops / seconds,
                         percent_of_roofline=100.0 * roof / seconds)
        entries.append(entry)
    notes = ["FLOPs: products only, forward 2MKN each, backward twice that (formulas: rnnlab.bench.steps)",
             "roofline: every product at the torch.mm rate of its forward shape (M = batch), same precision",
             "% of roofline = roofline seconds / measured seconds per step"]
    if not measured:
        notes.append("no training rows were measured in this run (add --only rnn,gru-lstm): % not available")
    return {"rows": entries, "matmul": matmul, "notes": notes}


@torch.no_grad()
def greedy_streams(model, batch_size: int, length: int) -> None:
    """Greedy generation of ``length`` tokens in ``batch_size`` streams through the model interface."""
    state = model.begin_state(batch_size)
    tokens = torch.ones(batch_size, 1, dtype=torch.long)  # any token but <unk> (0) to start from
    for _ in range(length):
        logits, state = model(tokens, state)  # (batch, 1, vocab)
        last = logits[:, -1].float()
        last[:, 0] = -math.inf  # never <unk>, as generate_ids
        tokens = last.argmax(-1, keepdim=True)


def _generation_candidate(key: str, model, batch_size: int, length: int) -> tuple[Candidate, str]:
    if generation_tokens_per_second is not None:
        def run() -> float:
            rate = generation_tokens_per_second(model, length, batch_size=batch_size, greedy=True)
            rate = rate["tokens_per_second"] if isinstance(rate, dict) else float(rate)
            return batch_size * length / rate  # seconds, from the library's own timing
        return (Candidate(key, run, batch_size * length, reports_seconds=True),
                "rnnlab.generation.generation_tokens_per_second")
    if batch_size == 1:
        def single() -> None:
            for _ in generate_ids(model, [1], length, Sampling(greedy=True)):
                pass
        return Candidate(key, single, length), "rnnlab.generation.generate_ids, timed by the bench"

    def batched() -> None:
        was_training = model.training
        model.eval()
        try:
            greedy_streams(model, batch_size, length)
        finally:
            model.train(was_training)
    return Candidate(key, batched, batch_size * length), "greedy loop over model(tokens, state) in rnnlab.bench"


BOOK_PREFIX = "time traveller "  # the book's prompt
BOOK_CHARACTERS = "abcdefghijklmnopqrstuvwxyz "  # the book's 28 tokens, with <unk>


def _end_to_end_candidates(model, length: int, out) -> list[Candidate]:
    """The book's ``predict_ch8`` and rnnlab's ``generate`` path, text in to text out, on one model.

    rnnlab's candidate is what ``rnnlab generate --greedy`` does once the checkpoint is
    loaded: the prefix's preprocessing and warm-up, :meth:`LanguageModel.stream` (stepping
    and decoding) and :func:`rnnlab.generation.write_stream` into ``out``; the book's
    candidate builds its string the book's way (:mod:`rnnlab.bench.book_generation`).
    """

    vocab = Vocab(list(BOOK_CHARACTERS))
    lm = LanguageModel(model=model, vocab=vocab, mode="raw", token="char")
    net = BookScratchRNN(model)

    def book() -> None:
        predict_ch8(BOOK_PREFIX, length, net, vocab)

    def rnnlab_generate() -> None:
        out.seek(0)
        out.write(lm.prefix_text(BOOK_PREFIX))
        write_stream(lm.stream(BOOK_PREFIX, length, greedy=True), out)
        out.write("\n")
        out.truncate()

    return [Candidate("book predict_ch8", book, length),
            Candidate("rnnlab generate end to end", rnnlab_generate, length)]


def section_generate(plan: Plan, config: dict) -> dict:
    models = {
        f"rnn-scratch H={BOOK_HIDDEN} V={BOOK_VOCAB}": build_model("rnn-scratch", BOOK_VOCAB, seed=0,
                                                                   hidden_size=BOOK_HIDDEN),
        f"default {config['model']} V={DEFAULT_VOCAB}": build_model(config["model"], DEFAULT_VOCAB, seed=0,
                                                                    **config["options"]),
    }
    reference = default_parameters(config)
    for name in ("mingru", "minlstm"):
        options = sized_options(name, reference, PARALLEL_OPTIONS[name])
        models[f"{name} {options['num_layers']} x {options['hidden_size']} V={DEFAULT_VOCAB}"] = \
            build_model(name, DEFAULT_VOCAB, seed=0, **options)
    candidates, methods = [], {}
    for name, model in models.items():
        model.eval()
        for batch_size in (1, GENERATE_BATCH):
            candidate, method = _generation_candidate(f"{name}|{batch_size}", model, batch_size,
                                                      plan.generate_length)
            candidates.append(candidate)
            methods[candidate.key] = method
    scratch = models[f"rnn-scratch H={BOOK_HIDDEN} V={BOOK_VOCAB}"]
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        end_to_end = _end_to_end_candidates(scratch, plan.generate_length, out)
        logger.info("bench generate: %d candidates x %d repetitions", len(candidates) + 2, plan.repeats)
        measured = measure(candidates + end_to_end, plan.repeats, plan.min_seconds, plan.warmup, desc="generate")
    book_rate = measured[end_to_end[0].key].rate
    comparison = [{"candidate": c.key, "model": f"rnn-scratch H={BOOK_HIDDEN} V={BOOK_VOCAB}",
                   "length": plan.generate_length, "tokens_per_second": measured[c.key].rate,
                   "spread": measured[c.key].spread, "vs_book": measured[c.key].rate / book_rate}
                  for c in end_to_end]
    rows = []
    for candidate in candidates:
        name, batch_size = candidate.key.split("|")
        m = measured[candidate.key]
        rows.append({"model": name, "streams": int(batch_size), "length": plan.generate_length,
                     "tokens_per_second": m.rate, "spread": m.spread, "method": methods[candidate.key]})
    notes = ["greedy, float32, eval mode; tokens/s counts generated tokens over all streams",
             f"default model options: {config['options']}",
             f"end to end: prefix {BOOK_PREFIX!r} to text, the book's predict_ch8 (autograd on, as in the book) "
             "against rnnlab generate's path after loading (stream, decode, write to a file), "
             "interleaved in one process"]
    return {"rows": rows, "end_to_end": comparison, "notes": notes}


def section_memory(config: dict) -> dict:
    book = Shape("rnn", BOOK_VOCAB, BOOK_HIDDEN, BOOK_BATCH, BOOK_STEPS)
    shape = default_shape(config, config["num_steps"])
    optimizer = config["optimizer"] if config["optimizer"] in ("sgd", "adam") else "adam"
    cases = [
        ("book RNN", "(a) book formulation", "fp32", book, lambda: book_rnn(book)),
        ("book RNN", "rnnlab rnn-scratch", "fp32", book, lambda: rnnlab_model("rnn-scratch", book)),
        ("default config", f"torch.nn.{shape.cell.upper()} + Linear", "fp32", shape,
         lambda: torch_model(shape, optimizer=optimizer)),
        ("default config", f"rnnlab {config['model']}", config["precision"], shape,
         lambda: rnnlab_model(config["model"], shape, config["precision"], options=config["options"],
                              optimizer=optimizer)),
    ]
    rows = []
    for model, implementation, precision, case_shape, build in cases:
        logger.info("bench memory: %s, %s", model, implementation)
        step = build()
        rows.append({"model": model, "implementation": implementation, "precision": precision,
                     "shape": case_shape.to_dict(), "label": case_shape.label(),
                     "peak_bytes": memory_bench.peak_bytes(step), "saved_bytes": memory_bench.saved_bytes(step),
                     "formula_bytes": case_shape.kept_bytes(),
                     "formula_floats_per_token": case_shape.kept_floats_per_token()})
    notes = ["peak: torch.profiler(profile_memory=True) allocation records of one step, running sum from the "
             "step's start (gradients included, parameters and optimizer state excluded)",
             "saved: distinct non-parameter storages the forward keeps for backward (saved_tensors_hooks)",
             "formula: 4 B T (V + L k H + E [+ E + L H with dropout]) bytes, k = 1 tanh RNN, 5 GRU, 7 LSTM "
             "(rnnlab.bench.steps)"]
    return {"rows": rows, "notes": notes}


def section_data(plan: Plan) -> dict:
    encode = data_bench.encoding_candidates(plan.encode_megabytes, plan.word_megabytes)
    ngram = data_bench.ngram_candidates(plan.ngram_megabytes)
    logger.info("bench data: %d candidates x %d repetitions", len(encode) + len(ngram), plan.repeats)
    measured = measure(encode + ngram, plan.repeats, plan.min_seconds, min(plan.warmup, 1), desc="data")
    rows = []
    for candidate in encode:
        m = measured[candidate.key]
        rows.append({"measure": candidate.key, "megabytes": candidate.work, "megabytes_per_second": m.rate,
                     "spread": m.spread})
    for candidate in ngram:
        m = measured[candidate.key]
        rows.append({"measure": candidate.key, "tokens": int(candidate.work), "tokens_per_second": m.rate,
                     "spread": m.spread})
    notes = ["encoding: the built-in corpus repeated; MB = 10^6 bytes of UTF-8 input",
             f"n-grams: generated Zipf-Markov word corpus of {plan.ngram_megabytes:g} MB, vocabulary "
             f"{data_bench.NGRAM_VOCAB:,}, 95% fitted, 5% evaluated; single-threaded NumPy"]
    return {"rows": rows, "notes": notes}


# ----------------------------------------------------------------------------------


def parse_sections(only: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"rnn,memory"`` (or a list) -> the sections in run order; None -> all."""
    if only is None:
        return SECTIONS
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only) if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise UsageError(f"unknown bench section(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(SECTIONS)}")
    return tuple(s for s in SECTIONS if s in names)


def load_warnings(header: dict) -> list[str]:
    """Say so when other processes competed for the cores the bench's threads need.

    A heuristic on the 1-minute load average, which lags: at the end it includes the
    bench's own threads, which are taken off.
    """
    cpus, threads = header.get("cpus") or 0, header["threads"]
    start, end = header.get("load_average"), header.get("load_average_after")
    if not (cpus and start and end):
        return []
    others = max(start[0], end[0] - threads)
    if others <= cpus - threads + 0.5:
        return []
    return [f"load average {start[0]} at the start, {end[0]} at the end, on {cpus} cpus with {threads} bench "
            "threads: other processes competed for the cores, so rates are low and noisy (rerun on an idle "
            "machine, or with fewer --threads)"]


def run_bench(quick: bool = False, repeats: int | None = None, only: str | Iterable[str] | None = None) -> dict:
    """Run the chosen sections (module docstring); returns ``{"header": ..., "sections": ...}``."""
    sections = parse_sections(only)
    plan = QUICK if quick else FULL
    if repeats is not None:
        if not 1 <= repeats <= 1000:
            raise UsageError(f"--repeats must be an integer from 1 to 1000, got {repeats}")
        plan = Plan(**{**asdict(plan), "repeats": repeats})
    header = environment()
    bf16 = bool(header["bf16_supported"])
    config = default_config()
    header.update(quick=quick, sections=list(sections), plan=asdict(plan),
                  default_precision=config["precision"],
                  generation_function="generation_tokens_per_second" if generation_tokens_per_second
                  else "generate_ids (timed by the bench)")
    results: dict[str, dict] = {}
    measured: dict[str, Measurement] = {}
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], object]):
        start = time.perf_counter()
        value = fn()
        seconds[name] = time.perf_counter() - start
        return value

    if "rnn" in sections:
        results["rnn"], rnn_measured = timed("rnn", lambda: section_rnn(plan, bf16))
        measured.update(rnn_measured)
    if "gru-lstm" in sections:
        results["gru-lstm"], cell_measured = timed("gru-lstm", lambda: section_gru_lstm(plan, bf16, config))
        measured.update(cell_measured)
    if "parallel" in sections:
        results["parallel"] = timed("parallel", lambda: section_parallel(plan, bf16, config))
    if "roofline" in sections:
        results["roofline"] = timed("roofline", lambda: section_roofline(plan, bf16, config, measured))
    if "generate" in sections:
        results["generate"] = timed("generate", lambda: section_generate(plan, config))
    if "memory" in sections:
        results["memory"] = timed("memory", lambda: section_memory(config))
    if "data" in sections:
        results["data"] = timed("data", lambda: section_data(plan))
    if "export" in sections:
        results["export"] = timed("export", lambda: section_export(plan, quick))
    header["section_seconds"] = seconds
    header["seconds"] = sum(seconds.values())
    header["load_average_after"] = environment()["load_average"]
    header["warnings"] = load_warnings(header)
    return {"header": header, "sections": results}
