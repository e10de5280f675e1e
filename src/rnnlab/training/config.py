"""Everything that defines a training run, with defaults and the book's presets.

A :class:`TrainConfig` is plain data: it is stored in every checkpoint's
``config.json`` and is all ``--resume`` needs besides the tensors.
"""
from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from rnnlab.data.dataset import DEFAULT_SPLIT, check_held_out_options, parse_split
from rnnlab.data.subword import check_subword_min_freq, check_vocab_size
from rnnlab.data.text import check_mode, check_tokenizer
from rnnlab.errors import UsageError
from rnnlab.models import model_kind
from rnnlab.precision import PRECISIONS, check_device
from rnnlab.training.budget import RULE_FIELDS, SIZES, check_size

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("cosine", "plateau", "constant")
BPTT_MODES = ("truncated", "full", "randomized")


class _Section:
    """What every options dataclass shares: type checks and a JSON round trip."""

    def _check_types(self) -> None:
        """Each field of its declared type (an int is a float too; a bool is neither), so a
        value from Python code or a checkpoint never reaches torch as the wrong type (the
        ranges, NaN included, are checked by :meth:`validate`)."""
        hints = typing.get_type_hints(type(self))
        for spec in fields(self):
            value = getattr(self, spec.name)
            allowed = typing.get_args(hints[spec.name]) or (hints[spec.name],)
            if isinstance(value, np.integer):
                value = int(value)
                setattr(self, spec.name, value)
            ok = any(value is None if kind is type(None) else
                     isinstance(value, bool) if kind is bool else
                     (isinstance(value, int) and not isinstance(value, bool)) if kind is int else
                     (isinstance(value, (int, float)) and not isinstance(value, bool)) if kind is float else
                     isinstance(value, kind) for kind in allowed)
            if not ok:
                names = " or ".join("None" if k is type(None) else k.__name__ for k in allowed)
                raise UsageError(f"{self.flag(spec.name)} must be {names}, got {value!r:.60}")

    @classmethod
    def flag(cls, name: str) -> str:
        """The command-line flag of option ``name`` (``--hidden`` for ``hidden_size``): every
        error names an option as the user types it."""
        spec = next((f for f in fields(cls) if f.name == name), None)
        return (spec.metadata.get("flag") if spec is not None else None) or f"--{name.replace('_', '-')}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


UNLIMITED_EPOCHS = 1_000_000
# The most a run may ask for of what resuming, evaluating and sampling allocate or generate:
# checked for a new run and for a config.json a resumed run reads alike.
TRAIN_LIMITS = {"sample_length": 1_000_000, "batch_size": 1 << 20, "num_steps": 1 << 24}
FLOAT32_MAX = 3.4e38


def option(default, help: str, flag: str | None = None, choices: tuple = (), metavar: str | None = None):
    """A config field with what the command line needs to offer it: its ``help`` (the
    default is appended by the CLI), an optional ``flag`` when it is not ``--field-name``,
    and ``choices``. The CLI derives its options from these (see ``rnnlab.cli.common``)."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices, "metavar": metavar})


@dataclass
class LoopOptions(_Section):
    """What the one training loop (:mod:`rnnlab.training.loop`) needs, for every task."""

    epochs: int = option(20, "most passes over the training data (rnnlab train: unlimited when only --max-time is "
                                 "given)")
    max_time: float | None = option(None, "wall-clock budget in seconds", metavar="SECONDS")
    max_steps: int | None = option(None, "stop after this many optimizer steps in total")
    lr: float = option(6e-3, "learning rate (the peak of the cosine schedule)")
    optimizer: str = option("adam", "optimizer", choices=OPTIMIZERS)
    weight_decay: float | None = option(None, "weight decay (not given: 0.01 for adamw, 0 for sgd and adam)")
    # 0.95 rather than PyTorch's 0.999: the second-moment estimate then follows the gradients
    # of a short run (benchmarks/sweep.py and the demo's split, 100 s of a 2 x 192 LSTM:
    # built-in corpus bf16 validation perplexity 3.447 -> 3.386, float32 3.554 -> 3.424; Rust
    # release notes, held-out 10%, bf16 1.484 -> 1.469 nats/char).
    adam_beta2: float = option(0.95, "Adam's and AdamW's beta2 (decay of the squared-gradient average)")
    clip: float | None = option(1.0, "global gradient-norm threshold theta (--no-clip: none)")
    lr_schedule: str = option("cosine", "cosine (warm-up, then down to 5%% of --lr over the epochs, --max-steps "
                              "or --max-time budget), plateau (multiply by --lr-decay on a validation plateau) "
                              "or constant", choices=LR_SCHEDULES)
    lr_decay: float | None = option(0.5, "plateau schedule: multiply lr by this on a validation plateau (0 = off)")
    lr_patience: int = option(2, "evaluations without improvement before the plateau decay")
    early_stop: int | None = option(4, "stop after this many evaluations without improvement (0 = off)",
                                    metavar="EVALUATIONS")
    eval_every: int = option(1, "evaluate every N epochs")
    eval_every_steps: int | None = option(None, "also evaluate every N optimizer steps (large corpora)")
    seed: int = option(0, "random seed of the weights, the data order and dropout")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    precision: str = option("auto", "fp32, bf16 (bfloat16 products, float32 weights and loss) or auto: bf16 "
                            "where the CPU or GPU supports it natively", choices=PRECISIONS)

    def validate(self) -> "LoopOptions":
        """Check every field's type and range (UsageError naming the option); 0 switches
        ``early_stop`` and ``lr_decay`` off (None means "not given" on the command line)."""
        self._check_types()
        if self.early_stop == 0:
            self.early_stop = None
        if self.lr_decay in (0, 1):
            self.lr_decay = None
        if self.lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"unknown lr schedule '{self.lr_schedule}'; choose one of {', '.join(LR_SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer '{self.optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision '{self.precision}'; choose one of {', '.join(PRECISIONS)}")
        check_device(self.device)
        for key in ("epochs", "eval_every"):
            value = getattr(self, key)
            if value < 1:
                raise UsageError(f"{self.flag(key)} must be a positive integer, got {value}")
        for key in ("max_steps", "early_stop", "eval_every_steps"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise UsageError(f"{self.flag(key)} must be positive, got {value}")
        if not (self.lr > 0 and math.isfinite(self.lr) and self.lr <= FLOAT32_MAX):  # the float32 range
            raise UsageError(f"{self.flag('lr')} must be a finite number > 0, got {self.lr}")
        if not 0 <= self.seed < 2**63:
            raise UsageError(f"{self.flag('seed')} must be an integer from 0 to 2**63 - 1, got {self.seed}")
        if not 0 <= self.adam_beta2 < 1:
            raise UsageError(f"{self.flag('adam_beta2')} must be in [0, 1), got {self.adam_beta2}")
        if self.lr_patience < 1:
            raise UsageError(f"{self.flag('lr_patience')} must be a positive integer, got {self.lr_patience}")
        if self.clip is not None and not (self.clip > 0 and math.isfinite(self.clip)):
            raise UsageError(f"{self.flag('clip')} must be > 0, got {self.clip}")
        if self.max_time is not None and not (self.max_time > 0 and math.isfinite(self.max_time)):
            raise UsageError(f"{self.flag('max_time')} must be > 0 seconds, got {self.max_time}")
        if self.lr_decay is not None and not 0 < self.lr_decay < 1:
            raise UsageError(f"{self.flag('lr_decay')} must be in (0, 1), got {self.lr_decay}")
        if self.weight_decay is not None and not (0 <= self.weight_decay <= FLOAT32_MAX):
            raise UsageError(f"{self.flag('weight_decay')} must be a finite number >= 0, got {self.weight_decay}")
        return self


@dataclass
class DataOptions(_Section):
    """Which text, how it is preprocessed, tokenized and split (:func:`rnnlab.data.dataset.prepare_text`)."""

    corpus: str | None = None          # name or path; None = the built-in corpus
    # validation text file; then all of `corpus` trains (split "files"); offered by the corpus options
    val_corpus: str | None = field(default=None, metadata={"flag": "--val"})
    test_corpus: str | None = field(default=None, metadata={"flag": "--test"})  # None with val_corpus: no test split
    mode: str = "raw"                  # preprocessing: raw | d2l
    token: str = "char"                # char | word | byte | bpe | unigram
    vocab_size: int | None = option(None, "bpe/unigram tokens: subword vocabulary size, the 256 byte symbols "
                                    "included, learnt from the training split (default 1000)", metavar="N")
    split: str = option("0.9,0.05,0.05", "train,val,test fractions or 'd2l'")
    max_tokens: int | None = option(None, "use at most this many training tokens")
    min_freq: int = option(0, "drop tokens rarer than this from the vocabulary")
    encoding_errors: str = "strict"    # how undecodable bytes in the corpus are handled

    def _validate_data(self) -> None:
        check_tokenizer(self.token)
        self.vocab_size = check_vocab_size(self.vocab_size, self.token)  # so the checkpoint records the size used
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError(f"{self.flag('max_tokens')} must be positive, got {self.max_tokens}")
        # checked here too, not only where the text is read, so a config.json that a resumed run reads is refused
        # as a whole (naming the file) before any work
        check_mode(self.mode)
        parse_split(self.split)
        if self.min_freq < 0:
            raise UsageError(f"{self.flag('min_freq')} must be >= 0, got {self.min_freq}")
        check_subword_min_freq(self.min_freq, self.token)
        if self.val_corpus is not None or self.test_corpus is not None:
            if parse_split(self.split) not in ("files", DEFAULT_SPLIT):
                preset = " (the d2l presets set it)" if self.split == "d2l" else ""
                raise UsageError(f"--val/--test make the whole corpus the training split; they cannot be combined "
                                 f"with --split {self.split}{preset}")
            self.split = "files"  # so the checkpoint says which split was used


@dataclass
class ModelOptions(_Section):
    """The recurrent language model (options of its entry in :data:`rnnlab.models.MODELS`)."""

    model: str = option("lstm", "the model (mingru, minlstm: the parallel recurrences of models.parallel)",
                        choices=("rnn-scratch", "rnn", "gru", "lstm", "mingru", "minlstm"))
    hidden_size: int = option(256, "hidden units", flag="--hidden")
    num_layers: int = option(2, "recurrent layers", flag="--layers")
    dropout: float = option(0.2, "dropout between layers")
    embed_size: int = option(64, "embedding size; 0 = one-hot input (the book's)", flag="--embed")
    tie_weights: bool = option(False, "share embedding and output weights")
    nonlinearity: str = option("tanh", "tanh or relu (--model rnn)", choices=("tanh", "relu"))
    mlp_ratio: float = option(2.0, "mingru/minlstm: width of each block's MLP over the hidden size (0 = no MLP)")
    size: str = option("auto", "the options above (and the batch shape and --lr) that you do not give: auto = "
                       "the largest size the budget (--max-time, --max-steps, --epochs), the corpus and the "
                       "precision pay for (rnnlab.training.budget), or that size of the model",
                       choices=("auto", *SIZES))
    # Set by make_config: the options the size rule may still set (comma-separated; empty once
    # the rule has run, or when the user or a preset chose them), and what the rule decided.
    rule_fields: str = ""
    size_rule: str | None = None

    def _validate_model(self) -> None:
        """The model's options against its registry entry (:mod:`rnnlab.models`: their one
        range), named by their flags."""
        kind = model_kind(self.model)
        check_size(self.model, self.size)
        for spec in kind.options:
            value = getattr(self, spec.name, None)
            if hasattr(self, spec.name) and not spec.accepts(value):
                raise UsageError(f"{self.flag(spec.name)} must be {spec.expected()}, got {value!r:.60}")

    def model_options(self) -> dict:
        """Keyword arguments of :func:`rnnlab.models.build_model`: the registry's options of
        this model that the config sets."""
        return {o.name: getattr(self, o.name) for o in model_kind(self.model).options if hasattr(self, o.name)}


@dataclass
class BatchOptions(_Section):
    """How a language model reads its training text: minibatches, BPTT, the per-evaluation sample."""

    batch_size: int = option(32, "sequences per batch")
    num_steps: int = option(64, "time steps per sequence")
    sampling: str = option("sequential", "minibatches", choices=("random", "sequential"))
    bptt: str = option("truncated", "backpropagation through time", choices=BPTT_MODES)
    bptt_keep_prob: float = option(0.9, "randomized BPTT: P(gradient crosses a step)")
    full_bptt_max_mb: float = option(2048.0, "full BPTT: refuse when the estimated activations exceed this (MB)")
    sample_prefix: str | None = option(None, "prefix of the greedy sample shown at each evaluation")
    sample_length: int = option(50, "tokens in that sample")

    def _validate_batches(self) -> None:
        if self.sampling not in ("random", "sequential"):
            raise UsageError(f"unknown sampling '{self.sampling}'; choose one of random, sequential")
        if self.bptt not in BPTT_MODES:
            raise UsageError(f"unknown BPTT strategy '{self.bptt}'; choose one of {', '.join(BPTT_MODES)}")
        for key in ("batch_size", "num_steps"):
            value = getattr(self, key)
            if not 1 <= value <= TRAIN_LIMITS[key]:
                raise UsageError(f"{self.flag(key)} must be an integer from 1 to {TRAIN_LIMITS[key]:,}, got {value}")
        if not (math.isfinite(self.full_bptt_max_mb) and self.full_bptt_max_mb > 0):
            raise UsageError(f"{self.flag('full_bptt_max_mb')} must be a finite number > 0, "
                             f"got {self.full_bptt_max_mb}")
        if not 0 < self.bptt_keep_prob <= 1:
            raise UsageError(f"{self.flag('bptt_keep_prob')} must be in (0, 1], got {self.bptt_keep_prob}")
        if self.bptt == "full" and self.sampling != "sequential":
            raise UsageError("--bptt full carries gradients along the text, which needs --sampling sequential")
        if not 0 <= self.sample_length <= TRAIN_LIMITS["sample_length"]:
            raise UsageError(f"{self.flag('sample_length')} must be an integer from 0 to "
                             f"{TRAIN_LIMITS['sample_length']:,}, got {self.sample_length}")


@dataclass
class TrainConfig(DataOptions, ModelOptions, BatchOptions, LoopOptions):
    """A language-model run: its data, model, batches and loop sections in one flat record
    (the ``train_config`` of every checkpoint; ``config.lr``, ``config.model``, ...)."""

    def validate(self) -> "TrainConfig":
        LoopOptions.validate(self)  # types of every field first, then each section's ranges
        self._validate_model()
        self._validate_batches()
        self._validate_data()
        return self


# The book's two experiments (d2l 0.17, section 8.5 and 8.6), exactly as printed there.
_D2L_COMMON = dict(corpus="timemachine", mode="d2l", token="char", split="d2l", max_tokens=10_000,
                   batch_size=32, num_steps=35, lr=1.0, optimizer="sgd", clip=1.0, epochs=500,
                   sampling="sequential", bptt="truncated", dropout=0.0, embed_size=0, num_layers=1,
                   eval_every=25, sample_prefix="time traveller", sample_length=50,
                   lr_schedule="constant", lr_decay=None, early_stop=None,
                   precision="fp32")  # the book computes in float32 (bf16 changes which sentence is memorised)
PRESETS: dict[str, dict] = {
    "d2l-scratch": dict(_D2L_COMMON, model="rnn-scratch", hidden_size=512),
    "d2l-concise": dict(_D2L_COMMON, model="rnn", hidden_size=256),
}


def make_config(preset: str | None = None, **overrides) -> TrainConfig:
    """A validated config: defaults, then the preset, then explicit ``overrides`` (None = not given)."""
    values: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    given = {k: v for k, v in overrides.items() if v is not None}
    check_held_out_options(given.get("split"), given.get("val_corpus"), given.get("test_corpus"))
    if "max_time" in given and "epochs" not in given:
        values["epochs"] = UNLIMITED_EPOCHS  # a time budget alone means: train until it is spent
    if preset is None:  # the size rule (rnnlab.training.budget) sets what the user did not
        values["rule_fields"] = ",".join(name for name in RULE_FIELDS if name not in given)
    values.update(given)
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    return TrainConfig(**values).validate()
