"""Budget-aware defaults: the model a training budget buys on this machine, for this corpus.

When a run does not set the model's size, :func:`choose` picks a rung of the model's
ladder (:data:`LADDERS`: width, depth, embedding, dropout, batch shape, peak learning
rate) from what the budget buys. Options the user gave always win; ``--size NAME``
takes a rung by name instead of by budget.

The rule. For each rung ``k`` the budget buys ``tokens_k`` training tokens:

* ``--max-time S``: ``S x (1 - OVERHEAD_FRACTION) x LOOP_EFFICIENCY x probe_k``, with
  ``probe_k`` rung ``k``'s training tokens/s measured here, at the run's precision, by a
  few timed steps (:func:`probe_rate`, a fraction of a second per rung). Rungs are probed
  from the smallest up and the search stops at the first one the budget cannot afford,
  so a 100-s budget probes two or three small rungs and never the large ones;
* ``--max-steps N``: ``N x batch_k x steps_k``;
* ``--epochs E`` (or the default 20 epochs): ``E x`` the training tokens.

The tightest of those that are given counts. A rung is affordable when its budget gives
at least :data:`TOKENS_PER_PARAMETER` training tokens per parameter *and* at least
:data:`MIN_STEPS` optimizer steps; the rule takes the largest affordable rung, and the
smallest rung when none is. Larger models learn more per token but need more tokens,
and enough updates, before they pay off: with a fixed number of CPU-seconds a model
too large for the budget ends undertrained, one too small for it plateaus.

The evidence (``benchmarks/sweep.py``, 2 threads of the build machine, runs counted in
optimizer steps from each configuration's measured speed; held-out nats/char on the
contiguous last 10% of each corpus, README "How the defaults were chosen"):

* 100 s, float32, built-in corpus: 2 x 192 (6.0 tokens/parameter, 1,530 steps) 1.155;
  2 x 256 (2.5, 1,080 steps) 1.278, but the same 2 x 256 with batch 16 (2.5, 2,180
  steps) 1.155; 2 x 384 (0.7) 1.350. Tokens per parameter alone do not separate these:
  the number of updates does.
* 100 s, bfloat16, built-in corpus: 2 x 256 (4.3, 1,860 steps) 1.139 and 2 x 192 (8.7)
  1.141 tie; 2 x 384 (1.0, 470 steps) 1.269.
* 300 s, bfloat16, Rust release notes and Python source: 2 x 384 (3.0, 1,420 steps)
  1.454 and 1.200; 2 x 512 (1.0, 550 steps) 1.569 and 1.291.
* 1200 s, English fortunes: bfloat16 2 x 384 with dropout 0.1 (12 tokens/parameter,
  5,590 steps) 1.437, 2 x 512 (4.2, 2,200 steps) 1.458, minGRU 3 x 384 with MLP 1.471,
  2 x 768 (0.9) 1.693; float32 2 x 384 (7.8, 3,870 steps) 1.463, 2 x 512 (2.5, 1,360
  steps) 1.616; the plain nn.LSTM script 1.504, 5-gram Kneser-Ney 1.590.
* Dropout of the 2 x 384 rung at 1200 s (bfloat16, Adam beta2 0.95, 26 epochs of the 1 MB
  English fortunes): 0.1 1.4375, 0.2 1.4251, 0.3 1.4350, so "medium" takes 0.2. The same
  rung with 0.1 overfits the 0.8 MB Rust release notes (29 epochs: its validation loss
  rises after step 2,100 of 5,590). The small rungs keep theirs: at 100 s in float32 on
  the Time Machine (2 x 192, 24 epochs) 0.1 1.500, 0.2 1.519, 0.3 1.537, and at 300 s on
  the Rust notes (2 x 256, 15 epochs) 0.1 1.417 against 0.3 1.426.

* Batch of the 2 x 384 rung at 1200 s (float32, an Ice Lake Xeon without bfloat16
  instructions, English fortunes): the real 20-minute run with batch 64 x 64 (4,695
  steps) 1.4308; step-counted with batch 32 x 64, which trains as many tokens per second
  there (probe 16,200 against 16,600) and so twice the steps (9,200): lr 4e-3 1.4112,
  lr 3e-3 1.4195. So "medium" takes batch 32.

Tokens per parameter: at 20 minutes the winner had 7.8-12 and the runners-up at most
4.2; at 100 s the 8.7 and 4.3 rungs tie. Steps: every loser with enough tokens had at
most 1,080 steps, every winner at least 1,420. 5.0 and 1,200 sit inside both gaps. At
300 s the rule takes the 2 x 256 LSTM (12.8 tokens/parameter), which the sweep has not
yet compared with the 2 x 384 (3.0, the winner over 2 x 512 there).
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from rnnlab.errors import UsageError
from rnnlab.models import build_model, detach_state, model_kind, token_loss
from rnnlab.precision import autocast

# The fewest training tokens per parameter, and optimizer steps, a budget must buy for a rung
# (see the module docstring).
TOKENS_PER_PARAMETER = 5.0
MIN_STEPS = 1200
# Seconds of a time budget that evaluation, checkpoints and the probe take, as a fraction.
OVERHEAD_FRACTION = 0.05
RULE_FIELDS = ("model", "hidden_size", "num_layers", "embed_size", "mlp_ratio", "dropout", "batch_size",
               "num_steps", "lr")


@dataclass(frozen=True)
class Rung:
    """One size of one model kind: the options :func:`choose` sets when the user did not."""

    name: str  # one of SIZES
    options: dict = field(default_factory=dict)

    def get(self, key: str):
        return self.options[key]


def _classic(model, name, hidden, dropout, batch, steps, lr):
    return Rung(name, dict(model=model, hidden_size=hidden, num_layers=2, embed_size=64, dropout=dropout,
                           batch_size=batch, num_steps=steps, lr=lr))


def _parallel(model, name, hidden, layers, dropout, batch, steps, lr):
    return Rung(name, dict(model=model, hidden_size=hidden, num_layers=layers, mlp_ratio=2.0,
                           dropout=dropout, batch_size=batch, num_steps=steps, lr=lr))


def _classic_ladder(model):  # "small" is the fixed default rnnlab had before the rule
    return (_classic(model, "tiny", 192, 0.1, 32, 64, 8e-3), _classic(model, "small", 256, 0.2, 32, 64, 6e-3),
            _classic(model, "medium", 384, 0.2, 32, 64, 4e-3), _classic(model, "large", 512, 0.2, 64, 100, 3e-3),
            _classic(model, "xlarge", 768, 0.25, 64, 100, 2e-3))


def _parallel_ladder(model):  # pre-norm residual blocks with an MLP of twice the width
    return (_parallel(model, "tiny", 192, 3, 0.1, 32, 64, 6e-3), _parallel(model, "small", 256, 3, 0.1, 32, 64, 6e-3),
            _parallel(model, "medium", 384, 3, 0.1, 64, 128, 4e-3),
            _parallel(model, "large", 512, 4, 0.15, 64, 128, 3e-3),
            _parallel(model, "xlarge", 768, 4, 0.2, 64, 128, 2e-3))


LADDERS: dict[str, tuple[Rung, ...]] = {"lstm": _classic_ladder("lstm"), "gru": _classic_ladder("gru"),
                                        "mingru": _parallel_ladder("mingru"), "minlstm": _parallel_ladder("minlstm")}
SIZES = ("tiny", "small", "medium", "large", "xlarge")
DEFAULT_MODEL = "lstm"

# The training loop's tokens/s over the probe's, measured on the build machine: data
# batches, the carried state's copies, per-step bookkeeping and the progress bar cost what
# the probe leaves out (the 100-s demo, 2 x 256 LSTM in bfloat16: 34,700 in the loop
# against a probe of 41,500).
LOOP_EFFICIENCY = 0.84


def check_size(model: str, size: str) -> None:
    """Refuse an unknown ``size``, or a named one for a model without a ladder (UsageError)."""
    if size not in ("auto", *SIZES):
        raise UsageError(f"unknown size {size!r:.40}; choose auto or one of {', '.join(SIZES)}")
    if size != "auto" and model not in LADDERS:
        raise _no_ladder(model)


def _no_ladder(model: str) -> UsageError:
    return UsageError(f"--size applies to --model {', '.join(LADDERS)}; give the sizes of --model {model} yourself")


@dataclass
class Choice:
    """What :func:`choose` decided, and why (``reason`` is printed and stored in config.json)."""

    rung: Rung
    options: dict  # the rung's options that the user did not give
    tokens: float  # training tokens the budget buys with this rung
    parameters: int
    reason: str
    predicted_rate: float | None = None  # training tokens/s the time budget was planned with


def count_parameters(options: dict, vocab_size: int) -> int:
    """Parameters of the model ``options`` describe, built on the meta device (no memory)."""
    kind = model_kind(options["model"])
    model_options = {o.name: options[o.name] for o in kind.options if o.name in options}
    with torch.device("meta"):
        return build_model(options["model"], vocab_size, **model_options).num_parameters()


def probe_rate(options: dict, vocab_size: int, precision: str, device, steps: int = 5) -> float:
    """Training tokens/s here of the model and batch shape ``options`` describe: the median
    of ``steps`` timed steps (forward with the state carried, backward, clipping, Adam) after
    two warm-up steps; the median, because one step slowed by another process would move a
    mean."""
    kind = model_kind(options["model"])
    model = build_model(options["model"], vocab_size, seed=0,
                        **{o.name: options[o.name] for o in kind.options if o.name in options}).to(device)
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    batch, length = options["batch_size"], options["num_steps"]
    generator = torch.Generator().manual_seed(0)
    X = torch.randint(0, vocab_size, (batch, length + 1), generator=generator).to(device)
    state = model.begin_state(batch, device)
    seconds = []
    for _ in range(steps + 2):
        started = time.perf_counter()
        with autocast(device, precision):
            logits, state = model(X[:, :-1], state)
            loss = token_loss(logits, X[:, 1:])
        state = detach_state(state)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()  # waits for an accelerator
        seconds.append(time.perf_counter() - started)
    return batch * length / statistics.median(seconds[2:])


def choose(model: str | None, size: str, vocab_size: int, train_tokens: int, precision: str,
           max_time: float | None = None, max_steps: int | None = None, epochs: int | None = None,
           given: dict | None = None, rate_of: Callable[[dict], float] | None = None, device="cpu") -> Choice:
    """The rung for this budget (or the one ``size`` names) and the options it sets.

    ``given``: the options the user set (they win and are not returned). ``rate_of``: the
    probe's tokens/s of the model a rung's options describe (default :func:`probe_rate` on
    ``device``); called only with a time budget, once per rung it needs, smallest first.
    """
    given = given or {}
    model = model or DEFAULT_MODEL
    check_size(model, size)
    if model not in LADDERS:
        raise _no_ladder(model)
    ladder = LADDERS[model]
    if rate_of is None:
        def rate_of(options: dict) -> float:
            return probe_rate(options, vocab_size, precision, device)
    probed: dict[int, float] = {}

    def with_given(rung: Rung) -> dict:
        return {**rung.options, **{k: v for k, v in given.items() if k in rung.options}}

    def rate(index: int) -> float:
        if index not in probed:
            probed[index] = LOOP_EFFICIENCY * rate_of(with_given(ladder[index]))
        return probed[index]

    def budget_steps(index: int) -> float:
        options = with_given(ladder[index])
        return budget_tokens(index) / (options["batch_size"] * options["num_steps"])

    def budget_tokens(index: int) -> float:
        options = with_given(ladder[index])
        budgets = []
        if epochs is not None:
            budgets.append(epochs * train_tokens)
        if max_steps is not None:
            budgets.append(max_steps * options["batch_size"] * options["num_steps"])
        if max_time is not None:
            budgets.append(max_time * (1 - OVERHEAD_FRACTION) * rate(index))
        return min(budgets) if budgets else math.inf

    def affordable(index: int) -> bool:
        return (budget_tokens(index) >= TOKENS_PER_PARAMETER * count_parameters(with_given(ladder[index]), vocab_size)
                and budget_steps(index) >= MIN_STEPS)

    if size != "auto":
        index = SIZES.index(size)
        why = f"--size {size}"
    else:
        index = 0  # the smallest when none is affordable; larger rungs cost more per token, so stop at the first miss
        while index + 1 < len(ladder) and affordable(index + 1):
            index += 1
        why = (f"the largest size with >= {TOKENS_PER_PARAMETER:g} training tokens per parameter and "
               f">= {MIN_STEPS:,} steps")
    rung = ladder[index]
    options = {k: v for k, v in rung.options.items() if k not in given}
    full = with_given(rung)
    tokens, parameters = budget_tokens(index), count_parameters(full, vocab_size)
    budget = ", ".join(part for part in (
        f"{max_time:g} s" if max_time is not None else "", f"{max_steps:,} steps" if max_steps is not None else "",
        f"{epochs:,} epochs" if epochs is not None else "") if part) or "no budget"
    shape = (f"{full['model']} {full['num_layers']} x {full['hidden_size']}"
             + (f" (mlp {full['mlp_ratio']:g})" if "mlp_ratio" in full else "")
             + f", dropout {full['dropout']:g}, batch {full['batch_size']} x {full['num_steps']}, peak lr {full['lr']:g}")
    rate_note = f", {probed[index]:,.0f} tokens/s predicted" if index in probed else ""
    per_parameter = (f"{tokens / parameters:.1f} tokens/parameter, {budget_steps(index):,.0f} steps"
                     if math.isfinite(tokens) else "no token limit")
    reason = (f"budget {budget}, {train_tokens:,} train tokens, {precision}: {rung.name} = {shape}{rate_note}; "
              f"{parameters:,} parameters, {per_parameter} (rule: {why})")
    return Choice(rung, options, tokens, parameters, reason, probed.get(index))


__all__ = ["Choice", "LADDERS", "LOOP_EFFICIENCY", "MIN_STEPS", "RULE_FIELDS", "Rung", "SIZES", "TOKENS_PER_PARAMETER",
           "check_size", "choose", "count_parameters", "probe_rate"]
