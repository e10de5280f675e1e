"""The explorer's model side: everything read at start-up, and one method per API route.

:class:`Explorer` loads the model folder once (weights, vocabulary, training config,
the validation split when its corpus can be found, the n-gram model of ``--ngram``);
no request names a file. Each route method checks its JSON parameters
(:func:`parameters`, every bad value a :class:`~rnnlab.errors.UsageError`) and returns
a JSON-ready dict, or (``generate``) yields events.

Concurrency: requests run on threads. Model computations hold :attr:`Explorer.lock`
(first come, first served), so only one runs at a time; every request builds its own
stepper (its own hidden state), so two users never share a state. A generation holds
the lock only while it computes a slice of tokens, so several generations and scoring
requests interleave.
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from rnnlab import checks, ngram
from rnnlab.data.corpus import REMOTE, allowed_roots, cache_dir, is_inside
from rnnlab.errors import DataError, RnnlabError, UsageError
from rnnlab.evaluation import unigram_result
from rnnlab.explore import analysis
from rnnlab.generation import NO_TOKEN_MESSAGE, Sampling, TokenChooser, warm_up
from rnnlab.lm import LanguageModel
from rnnlab.ngram import baseline
from rnnlab.tasks.lm import BASELINE_MAX_TOKENS
from rnnlab.tasks.lm_run import dataset_for
from rnnlab.training.checkpoint import load_training_config
from rnnlab.training.config import TrainConfig


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for (sizes in bytes, characters or tokens; times in seconds)."""

    body_bytes: int = 64 * 1024
    text_chars: int = 20_000  # surprisal
    unit_chars: int = 5_000  # hidden units: (tokens x units) floats are kept while ranking
    prefix_chars: int = 2_000
    generate_tokens: int = 2_000
    generation_seconds: float = 60.0
    generations: int = 4  # at once; the next is refused (429) rather than queued
    connections: int = 64  # open connections; more are refused (503)
    read_seconds: float = 15.0  # to send a request's line, headers and body (slow clients are cut)
    socket_timeout: float = 10.0  # per socket read or write
    validation_tokens: int = 20_000  # of the validation split kept for the panels
    metrics_bytes: int = 8 << 20


# A generation holds the model lock for its first token (shown at once), then for slices of up to
# this many seconds (and GENERATION_CHUNK tokens): every hold waits behind the requests queued before
# it, so short slices made a 100-token generation wait 13 times behind 16 clients' scoring requests
# (p50 4.8 s in benchmarks/explore_load.py, 8-token slices), while a slice this long still lets a
# scoring request in within a few tens of milliseconds.
GENERATION_SLICE_SECONDS = 0.04
GENERATION_CHUNK = 512
# The Training panel's metric chart of a language model (the loop's record keys).
PERPLEXITY_CHARTS = [{"title": "Perplexity (log scale)", "log": True,
                      "series": [["val_perplexity", "validation perplexity"],
                                 ["train_perplexity", "training perplexity"]]}]


class FairLock:
    """A lock granted in the order it was asked for (``threading.Lock`` lets a releasing thread
    take it again before those already waiting, which starves a generation that releases it
    between slices)."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> "FairLock":
        with self._condition:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._condition.wait()
        return self

    def __exit__(self, *exc) -> None:
        with self._condition:
            self._serving += 1
            self._condition.notify_all()


def parameters(body, spec: dict) -> dict:
    """``body`` (a decoded JSON object) restricted to the names of ``spec`` (name -> default).

    Unknown names are an error (a typo must not be silently ignored); missing ones take
    their default."""
    if not isinstance(body, dict):
        raise UsageError(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise UsageError(f"unknown parameter {unknown[0][:40]!r}; this route takes: {', '.join(spec)}")
    return {name: body.get(name, default) for name, default in spec.items()}


def string_parameter(value, name: str, limit: int, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise UsageError(f"{name} is {len(value):,} characters; at most {limit:,} are accepted")
    return value


def _boolean(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false, got {value!r:.40}")
    return value


def _rounded(values, digits: int = 4) -> list:
    """Floats for JSON: rounded, None for NaN and infinities (JSON has neither)."""
    return [round(float(v), digits) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def _remote_corpus_missing(name, sources, data_dir) -> str | None:
    """Why a named download (``timemachine``) is not on this machine, or None.

    Loading it would download it; a page that starts offline in a second should not
    wait on the network, so the validation text is then just unavailable."""
    if name not in REMOTE:
        return None
    filename = REMOTE[name].filename
    if sources and isinstance(sources[0], str) and is_inside(sources[0], allowed_roots()) and Path(sources[0]).is_file():
        return None
    folders = [Path(d) for d in (data_dir, os.environ.get("RNNLAB_DATA")) if d] + [cache_dir()]
    if any((folder / filename).is_file() for folder in folders):
        return None
    return (f"corpus '{name}' is not on this machine ({filename} is in none of "
            f"{', '.join(str(f) for f in folders)}; rnnlab explore does not download it): "
            "pass --data-dir FOLDER holding it or --corpus PATH")


class Explorer:
    """One model folder, loaded once; see the module docstring.

    ``folder``: a language-model checkpoint folder (``rnnlab train --out``);
    ``ngram_folder``: an ``rnnlab ngram train --out`` folder with the same tokenizer
    and preprocessing, for the comparison colouring; ``data_dir`` / ``corpus``: where the
    training corpus is, for the validation text (as for ``rnnlab eval``; without them a
    corpus outside the current folder and ``$RNNLAB_DATA`` is not read).
    """

    kind = "language-model"
    routes = frozenset({"/api/info", "/api/training", "/api/surprisal", "/api/units", "/api/generate"})

    def __init__(self, folder, ngram_folder=None, limits: Limits | None = None, data_dir=None,
                 corpus=None) -> None:
        self.folder = Path(folder)
        self.limits = limits or Limits()
        self.lm = LanguageModel.load(folder)
        self.config = load_training_config(folder)
        self.lock = FairLock()
        self.generations = threading.BoundedSemaphore(self.limits.generations)
        self.stopping = threading.Event()
        self.metrics_path = analysis.metrics_file(self.folder)
        self.ngram, self.ngram_name = None, None
        if ngram_folder is not None:
            self._load_ngram(ngram_folder)
        self.validation, self.validation_problem = None, None
        self.baselines: dict = {}
        self._load_validation(data_dir, corpus)

    # ---- start-up --------------------------------------------------------------------
    def _load_ngram(self, folder) -> None:
        model = ngram.load(folder)
        pre = model.preprocessing or {}
        mine = (self.lm.mode, self.lm.token)
        theirs = (pre.get("mode"), pre.get("token"))
        if getattr(model, "vocab", None) is None or theirs != mine:
            raise UsageError(f"--ngram {folder}: the n-gram model reads {theirs[1]} tokens in {theirs[0]} mode, the "
                             f"language model {mine[1]} tokens in {mine[0]} mode; token by token comparison needs the "
                             f"same (rnnlab ngram train --token {mine[1]} --mode {mine[0]})")
        ours, other = getattr(self.lm.vocab, "subword", None), getattr(model.vocab, "subword", None)
        if ours is not None and (other is None or other.to_json() != ours.to_json()):
            raise UsageError(f"--ngram {folder}: its {mine[1]} tokenizer is not the language model's (they were learnt "
                             "from different texts or sizes), so their tokens do not line up; fit the n-gram model "
                             "on the same prepared corpus (rnnlab corpus prepare --token "
                             f"{mine[1]}, then --corpus DIR for both)")
        self.ngram = model
        self.ngram_name = f"{model.order}-gram {model.smoothing} ({Path(folder).name})"

    def _load_validation(self, data_dir, corpus) -> None:
        """The start of the validation split and the count-model baselines, when the corpus is found."""
        saved = self.config
        try:
            config = TrainConfig.from_dict(saved["train_config"])
            if corpus is None:
                missing = _remote_corpus_missing(config.corpus, saved.get("data", {}).get("sources"), data_dir)
                if missing:
                    self.validation_problem = missing
                    return
            data = saved.get("data", {})
            held_out = config.split == "files" or bool(data.get("val_source") or data.get("test_source"))
            dataset, _ = dataset_for(config, data_dir, vocab=self.lm.vocab, saved_sources=data.get("sources"),
                                     saved_data=data, corpus=corpus, roles=("val_",) if held_out else ("",),
                                     doing="showing its validation text", checkpoint=self.folder)
        except RnnlabError as exc:
            self.validation_problem = str(exc)
            return
        val = dataset.part("val")
        if len(val) < 2:
            self.validation_problem = "the validation split is empty"
            return
        self.validation = np.asarray(val[:self.limits.validation_tokens], dtype=np.int64)
        self.baselines = self._baselines(dataset)

    def _baselines(self, dataset) -> dict:
        """Add-one unigrams and Kneser-Ney (order 5 for characters, 3 for words) on the validation
        split: the lines ``rnnlab train`` reports, recomputed (the folder does not store them)."""
        if len(dataset.train) > BASELINE_MAX_TOKENS:
            return {}
        order = 3 if dataset.token == "word" else 5
        out = {"unigram add-one": unigram_result(dataset.train, dataset.val, len(dataset.vocab))["perplexity"],
               f"{order}-gram Kneser-Ney": baseline(dataset, order=order, smoothing="kn")["perplexity"]}
        if self.ngram is not None:
            out[self.ngram_name] = self.ngram.evaluate(self._ngram_ids(dataset.vocab.to_tokens(
                np.asarray(dataset.val).tolist())))["perplexity"]
        return out

    # ---- shared helpers ----------------------------------------------------------------
    def _ngram_ids(self, tokens: list[str]) -> np.ndarray:
        vocab = self.ngram.vocab
        return np.array([vocab[t] for t in tokens], dtype=np.int64)

    def _text(self, body: dict, limit: int, validation_limit: int) -> tuple[list[str], np.ndarray, str]:
        """(tokens, ids, source) of a request's ``text`` or ``source: "validation"``."""
        source = body.get("source") or "text"
        if source not in ("text", "validation"):
            raise UsageError(f"source must be 'text' or 'validation', got {str(source)[:40]!r}")
        if source == "validation":
            if self.validation is None:
                raise DataError(f"the validation text is not available: {self.validation_problem}")
            ids = self.validation[:validation_limit]
            return self.lm.vocab.to_tokens(ids.tolist()), ids, "validation"
        text = string_parameter(body.get("text"), "text", limit)
        tokens = analysis.text_tokens(text, self.lm.mode, self.lm.token, subword=self.lm.vocab.subword)
        if len(tokens) < 2:
            raise DataError(f"the text has {len(tokens)} {self.lm.token} token(s) after {self.lm.mode} "
                            "preprocessing; at least 2 are needed")
        ids = self.lm.encode(text)
        if len(ids) != len(tokens):  # one tokenizer behind both: a mismatch is a bug, not a user error
            raise RuntimeError(f"{len(tokens)} tokens but {len(ids)} ids")
        return tokens, np.asarray(ids, dtype=np.int64), "text"

    # ---- routes ------------------------------------------------------------------------
    def info(self) -> dict:
        model = self.lm.model
        return {"kind": self.kind, "folder": str(self.folder), "model": self.config.get("model", {}),
                "parameters": model.num_parameters(), "vocab_size": len(self.lm.vocab),
                "token": self.lm.token, "mode": self.lm.mode, "ngram": self.ngram_name,
                "validation": self.validation is not None, "validation_problem": self.validation_problem,
                "validation_tokens": 0 if self.validation is None else int(len(self.validation)),
                "features": analysis.FEATURES, "limits": asdict(self.limits)}

    def training(self) -> dict:
        return analysis.training_report(self.metrics_path, self.config, self.limits.metrics_bytes, PERPLEXITY_CHARTS,
                                        self.baselines)

    def surprisal(self, body) -> dict:
        """Bits per token of a text (or the validation split), and the n-gram's where one is loaded."""
        body = parameters(body, {"text": None, "source": "text"})
        tokens, ids, source = self._text(body, self.limits.text_chars, self.limits.validation_tokens)
        with self.lock:
            bits = analysis.surprisal_bits(self.lm.model, ids)
        shown = analysis.pieces(tokens, self.lm.token)
        out = {"source": source, "pieces": shown, "bits": [None] + _rounded(bits),
               "summary": analysis.summary(bits, shown)}
        if self.ngram is not None:
            other = analysis.ngram_bits(self.ngram, self._ngram_ids(tokens))
            out["ngram"] = {"name": self.ngram_name, "bits": [None] + _rounded(other),
                            "summary": analysis.summary(other, shown),
                            "gain": [None] + _rounded(other - bits)}  # > 0: the RNN needs fewer bits
        return out

    def units(self, body) -> dict:
        """Units ranked by |correlation| with the text features, and one unit's values per token."""
        body = parameters(body, {"text": None, "source": "text", "unit": None, "feature": None})
        limit = self.limits.unit_chars
        tokens, ids, source = self._text(body, limit, limit)
        feature = body["feature"]
        if feature is not None and feature not in analysis.FEATURES:
            raise UsageError(f"unknown feature {str(feature)[:40]!r}; choose one of {', '.join(analysis.FEATURES)}")
        with self.lock:
            run = analysis.trace(self.lm.model, ids, keep_states=True)
        shown = analysis.pieces(tokens, self.lm.token)
        features = analysis.text_features(shown)
        R = analysis.correlations(run.states, features)
        names = list(features)
        ranking = analysis.rank_units(R, run.units, names, feature)
        unit = ranking[0]["unit"] if body["unit"] is None else checks.integer(body["unit"], "unit", 0,
                                                                              len(run.units) - 1)
        values = run.states[:, unit]
        return {"source": source, "pieces": shown, "ranking": ranking, "units": len(run.units),
                "unit": unit, "name": run.units[unit], "values": _rounded(values),
                "correlations": dict(zip(names, _rounded(R[unit]))),
                "range": [float(values.min()), float(values.max())]}

    def check_generation(self, body) -> dict:
        """The checked options of a generation request (before any response is sent)."""
        p = parameters(body, {"prefix": "The ", "length": 200, "greedy": False, "temperature": 1.0,
                              "top_k": 0, "top_p": 1.0, "seed": None})
        p["prefix"] = string_parameter(p["prefix"], "prefix", self.limits.prefix_chars)
        p["length"] = checks.integer(p["length"], "length", 1, self.limits.generate_tokens)
        p["greedy"] = _boolean(p["greedy"], "greedy")
        p["temperature"] = checks.number(p["temperature"], "temperature", 0.0, 100.0, low_open=True)
        p["top_k"] = checks.integer(p["top_k"], "top_k", 0, len(self.lm.vocab))
        p["top_p"] = checks.number(p["top_p"], "top_p", 0.0, 1.0, low_open=True)
        if p["seed"] is not None:
            p["seed"] = checks.integer(p["seed"], "seed", 0, 2**63 - 1)
        p["ids"] = self.lm.prefix_ids(p["prefix"])
        return p

    def generate(self, p: dict) -> Iterator[dict]:
        """Events of one generation with the options of :meth:`check_generation`: ``start`` (the
        prefix as the model read it), one ``token`` per piece of text with ``p``, the model's
        probability of it at temperature 1 (``<unk>`` excluded), then ``done``.

        Same tokens as ``LanguageModel.generate`` with these options (the same warm-up,
        chooser and random stream)."""
        model, ids, length = self.lm.model, p["ids"], p["length"]
        sampling = Sampling(greedy=p["greedy"], temperature=p["temperature"], top_k=p["top_k"], top_p=p["top_p"])
        generator = torch.Generator().manual_seed(p["seed"]) if p["seed"] is not None else None
        with self.lock, torch.no_grad():
            stepper, first = warm_up(model, ids, 1)
            chooser = TokenChooser(sampling, 1, model.vocab_size, stepper.device, generator, stepper.dtype)
        logits = [first]
        probabilities: list[float] = []
        deadline = time.monotonic() + self.limits.generation_seconds
        stopped = {"why": "length"}

        def tokens() -> Iterator[int]:
            produced = 0
            while produced < length:
                if self.stopping.is_set() or time.monotonic() > deadline:
                    stopped["why"] = "server stopping" if self.stopping.is_set() else "time limit"
                    return
                chunk = []
                with self.lock, torch.inference_mode():
                    slice_end = time.monotonic() + GENERATION_SLICE_SECONDS
                    for _ in range(1 if produced == 0 else min(GENERATION_CHUNK, length - produced)):
                        if chunk and time.monotonic() > slice_end:
                            break
                        token = chooser.choose(logits[0])
                        index = int(token[0])
                        if index == 0:  # only when nothing but the masked <unk> is finite
                            raise UsageError(NO_TOKEN_MESSAGE)
                        chunk.append((index, float(torch.softmax(logits[0][0].float(), dim=0)[index])))
                        logits[0] = stepper.step(token)
                for index, probability in chunk:
                    probabilities.append(probability)
                    yield index
                produced += len(chunk)

        yield {"type": "start", "prefix": self.lm.prefix_text(p["prefix"])}
        count, start = 0, time.perf_counter()
        for piece in self.lm._pieces(ids[-1], tokens()):
            # A piece may span several tokens (a UTF-8 character of byte tokens): its probability is their product.
            yield {"type": "token", "piece": piece, "p": round(math.prod(probabilities), 6)}
            count += len(probabilities)
            probabilities.clear()
        yield {"type": "done", "tokens": count + len(probabilities), "stopped": stopped["why"],
               "seconds": round(time.perf_counter() - start, 3)}
