"""Everything that defines a training run, with defaults and the book's presets.

A :class:`TrainConfig` is plain data: it is stored in every checkpoint's
``config.json`` and is all ``--resume`` needs besides the tensors.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from rnnlab.errors import UsageError
from rnnlab.precision import PRECISIONS

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("cosine", "plateau", "constant")
BPTT_MODES = ("truncated", "full", "randomized")
DEVICES = ("auto", "cpu", "cuda", "mps")
UNLIMITED_EPOCHS = 1_000_000


@dataclass
class TrainConfig:
    # data
    corpus: str | None = None          # name or path; None = the built-in corpus
    val_corpus: str | None = None      # validation text file; then all of `corpus` trains (split "files")
    test_corpus: str | None = None     # test text file; None with val_corpus = an empty test split
    mode: str = "raw"                  # preprocessing: raw | d2l
    token: str = "char"                # char | word | byte
    split: str = "0.9,0.05,0.05"       # fractions, or "d2l" (first max_tokens for training, rest held out)
    max_tokens: int | None = None      # cap on training tokens (the book uses 10,000)
    min_freq: int = 0
    encoding_errors: str = "strict"    # how undecodable bytes in the corpus are handled
    # model (defaults: a sensible model for a user's own text)
    model: str = "lstm"                # rnn-scratch | rnn | gru | lstm
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.2
    embed_size: int = 64               # 0 = one-hot input (the book's)
    tie_weights: bool = False
    nonlinearity: str = "tanh"
    # optimisation
    batch_size: int = 32
    num_steps: int = 64
    epochs: int = 20
    max_time: float | None = None      # wall-clock budget in seconds
    max_steps: int | None = None       # stop after this many optimizer steps in total
    lr: float = 6e-3                   # peak of the cosine schedule (a sweep in the README, Performance)
    optimizer: str = "adam"
    weight_decay: float | None = None  # None: 0.01 for adamw, 0 for sgd and adam; 0 means 0
    clip: float | None = 1.0           # global gradient-norm threshold theta; None = off
    sampling: str = "sequential"       # random | sequential
    bptt: str = "truncated"            # truncated | full | randomized
    bptt_keep_prob: float = 0.9        # randomized: P(gradient crosses a time step), xi in {0, 1/p}
    full_bptt_max_mb: float = 2048.0   # full BPTT: refuse when the estimated activations exceed this
    lr_schedule: str = "cosine"        # cosine (warm-up, then down to 5% over the budget) | plateau | constant
    lr_decay: float | None = 0.5       # plateau: multiply lr by this when val perplexity plateaus; None = off
    lr_patience: int = 2               # evaluations without improvement before decaying
    early_stop: int | None = 4         # stop after this many evaluations without improvement; None = off
    eval_every: int = 1                # evaluate every this many epochs
    eval_every_steps: int | None = None  # also evaluate every this many optimizer steps (large corpora)
    sample_prefix: str | None = None   # prefix of the per-evaluation greedy sample; None = start of the text
    sample_length: int = 50
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"            # fp32 | bf16 | auto (bf16 where the hardware has it; see rnnlab.precision)

    def validate(self) -> "TrainConfig":
        from rnnlab.models import MODEL_NAMES
        self._check_types()
        # 0 switches an optional feature off (None means "not given" on the command line).
        if self.early_stop == 0:
            self.early_stop = None
        if self.lr_decay in (0, 1):
            self.lr_decay = None
        if self.model not in MODEL_NAMES:
            raise UsageError(f"unknown model '{self.model}'; choose one of {', '.join(MODEL_NAMES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"unknown lr schedule '{self.lr_schedule}'; choose one of {', '.join(LR_SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer '{self.optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
        if self.bptt not in BPTT_MODES:
            raise UsageError(f"unknown BPTT strategy '{self.bptt}'; choose one of {', '.join(BPTT_MODES)}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision '{self.precision}'; choose one of {', '.join(PRECISIONS)}")
        if self.device not in DEVICES:
            raise UsageError(f"unknown device '{self.device}'; choose one of {', '.join(DEVICES)}")
        for key in ("hidden_size", "num_layers", "batch_size", "num_steps", "epochs", "eval_every"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{key.replace('_', '-')} must be a positive integer, got {value}")
        for key in ("max_tokens", "max_steps", "early_stop", "eval_every_steps"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise UsageError(f"{key.replace('_', '-')} must be positive, got {value}")
        if not (self.lr > 0 and math.isfinite(self.lr) and self.lr <= 3.4e38):  # the float32 range
            raise UsageError(f"lr must be a finite number > 0, got {self.lr}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise UsageError(f"seed must be an integer from 0 to 2**63 - 1, got {self.seed}")
        if not isinstance(self.lr_patience, int) or self.lr_patience < 1:
            raise UsageError(f"lr-patience must be a positive integer, got {self.lr_patience}")
        if not (math.isfinite(self.full_bptt_max_mb) and self.full_bptt_max_mb > 0):
            raise UsageError(f"full-bptt-max-mb must be a finite number > 0, got {self.full_bptt_max_mb}")
        if self.clip is not None and not self.clip > 0:
            raise UsageError(f"clip must be > 0, got {self.clip}")
        if self.max_time is not None and not self.max_time > 0:
            raise UsageError(f"max-time must be > 0 seconds, got {self.max_time}")
        if not 0 < self.bptt_keep_prob <= 1:
            raise UsageError(f"bptt-keep-prob must be in (0, 1], got {self.bptt_keep_prob}")
        if self.lr_decay is not None and not 0 < self.lr_decay < 1:
            raise UsageError(f"lr-decay must be in (0, 1), got {self.lr_decay}")
        if self.bptt == "full" and self.sampling != "sequential":
            raise UsageError("--bptt full carries gradients along the text, which needs --sampling sequential")
        if self.sample_length < 0:
            raise UsageError(f"sample-length must be >= 0, got {self.sample_length}")
        if self.val_corpus is not None or self.test_corpus is not None:
            from rnnlab.data.dataset import DEFAULT_SPLIT, parse_split
            if parse_split(self.split) not in ("files", DEFAULT_SPLIT):
                preset = " (the d2l presets set it)" if self.split == "d2l" else ""
                raise UsageError(f"--val/--test make the whole corpus the training split; they cannot be combined "
                                 f"with --split {self.split}{preset}")
            self.split = "files"  # so the checkpoint says which split was used
        return self

    def _check_types(self) -> None:
        """Each field of its declared type (an int is a float too; a bool is neither), so a
        value from Python code or a checkpoint never reaches torch as the wrong type (the
        ranges, NaN included, are checked by :meth:`validate`)."""
        import typing

        import numpy as np

        hints = typing.get_type_hints(type(self))
        for field in fields(self):
            value = getattr(self, field.name)
            allowed = typing.get_args(hints[field.name]) or (hints[field.name],)
            if isinstance(value, np.integer):
                value = int(value)
                setattr(self, field.name, value)
            ok = any(value is None if kind is type(None) else
                     isinstance(value, bool) if kind is bool else
                     (isinstance(value, int) and not isinstance(value, bool)) if kind is int else
                     (isinstance(value, (int, float)) and not isinstance(value, bool)) if kind is float else
                     isinstance(value, kind) for kind in allowed)
            if not ok:
                names = " or ".join("None" if k is type(None) else k.__name__ for k in allowed)
                raise UsageError(f"{field.name.replace('_', '-')} must be {names}, got {value!r:.60}")

    def model_options(self) -> dict:
        """Keyword arguments of :func:`rnnlab.models.build_model` for this config."""
        if self.model == "rnn-scratch":
            return {"hidden_size": self.hidden_size}
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "dropout": self.dropout,
                "embed_size": self.embed_size, "tie_weights": self.tie_weights,
                "nonlinearity": self.nonlinearity}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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
    from rnnlab.data.dataset import check_held_out_options
    check_held_out_options(given.get("split"), given.get("val_corpus"), given.get("test_corpus"))
    if "max_time" in given and "epochs" not in given:
        values["epochs"] = UNLIMITED_EPOCHS  # a time budget alone means: train until it is spent
    values.update(given)
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    return TrainConfig(**values).validate()
