"""A trained language model bundled with what it needs to read and write text.

:class:`LanguageModel` = network + vocabulary + preprocessing. It is what
``rnnlab.load(DIR)`` returns and what notebooks use::

    lm = rnnlab.load("runs/tm")
    lm.generate("time traveller", length=50, greedy=True)
    lm.generate_batch("time traveller", length=50, num_samples=8, seed=0)
    lm.generate_prompts(["time traveller", "the morlocks"], length=50, greedy=True)  # one batch
    lm.beam_search("time traveller", length=50, beam=8, stop=["."]).text
    lm.score(open("other.txt").read())["perplexity"]
    lm.score_text("the time machine", per_token=True).bits_per_char
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from rnnlab.checkpoint import load_config
from rnnlab.data.dataset import encode_text
from rnnlab.data.subword import BYTE_SYMBOLS, decode_stream
from rnnlab.data.text import SUBWORDS, detokenize, preprocess_prefix, tokenize, word_separator
from rnnlab.data.vocab import Vocab
from rnnlab import checks
from rnnlab.errors import CheckpointError, DataError, UsageError
from rnnlab.evaluation import WARMUP, evaluate
from rnnlab.generation import (MAX_BEAM, MAX_STREAMS, Sampling, beam_search_ids, continuation_log_prob,
                               generate_batch_ids, generate_ids, generate_prompts_ids)
from rnnlab.model_checkpoint import KIND, check_model_config, load_model
from rnnlab.models.base import RecurrentLM
from rnnlab.precision import resolve_device
from rnnlab.progress import logger
from rnnlab.scoring import covered_chars, per_char_fields, score_text, text_chars


@dataclass
class Generated:
    """One generated text: its ``prompt`` as given, the ``text`` (the prompt as the model reads it,
    then the continuation), the natural-log probability of the continuation's tokens under the
    model, and for beam search its length-normalised ``score``."""

    prompt: str
    text: str
    log_prob: float
    score: float | None = None


@dataclass
class LanguageModel:
    model: RecurrentLM
    vocab: Vocab
    mode: str = "raw"
    token: str = "char"

    # ---- text <-> ids ------------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text`` after the model's preprocessing (unknown tokens -> 0)."""
        checks.text(text, "text")
        return encode_text(text, self.vocab, self.mode, self.token)

    def prefix_ids(self, prefix: str) -> list[int]:
        """Ids of a generation prefix; unknown tokens become ``<unk>`` with a warning."""
        tokens = tokenize(preprocess_prefix(prefix, self.mode), self.token, self.mode, subword=self.vocab.subword)
        if not tokens:
            raise UsageError(f"the prefix {prefix!r} has no {self.token} tokens after {self.mode} preprocessing")
        ids = [self.vocab[tok] for tok in tokens]
        unknown = sorted({tok for tok, i in zip(tokens, ids) if i == 0 and tok != "<unk>"})
        if unknown:
            logger.warning("warning: prefix tokens not in the vocabulary were mapped to <unk>: %s",
                           " ".join(repr(t) for t in unknown[:10]))
        return ids

    # ---- scoring -----------------------------------------------------------------
    def score(self, text_or_ids, rows: int = 32, num_steps: int = 256, chars: int | None = None,
              warmup: int = WARMUP) -> dict:
        """Perplexity / bits per token of a text (or an id array), see :func:`rnnlab.evaluation.evaluate`,
        with ``chars``, ``nats_per_char`` and ``bits_per_char``: the total log-loss over the characters
        the scored tokens cover (:func:`rnnlab.scoring.text_chars` of a text, exact;
        ``chars`` when given with ids, else :func:`rnnlab.scoring.covered_chars` of them)."""
        if isinstance(text_or_ids, str):
            ids = self.encode(text_or_ids)
            if len(ids) < 2:
                raise DataError(f"the text has {len(ids)} {self.token} token(s) after {self.mode} preprocessing; "
                                "scoring needs at least 2")
            chars = text_chars(text_or_ids, self.vocab, self.mode, self.token)
        else:
            ids = checks.token_ids(text_or_ids, len(self.vocab), "text_or_ids", min_length=2)
            chars = covered_chars(self.vocab, self.token, ids) if chars is None else checks.integer(chars, "chars", 0)
        result = evaluate(self.model, ids, rows=rows, num_steps=num_steps, warmup=warmup)
        return {**result, **per_char_fields(result["nll_nats"], chars)}

    def score_text(self, text: str, per_token: bool = False, top: int = 5):
        """Exact single-stream score of ``text``: a :class:`rnnlab.scoring.TextScore` (total
        log-probability in nats, nats/char and bits/char over the characters the scored tokens
        cover, per-token perplexity; with ``per_token``, every token's offset, log-probability,
        rank and ``top`` alternatives). See :mod:`rnnlab.scoring`.

        :meth:`score` is the evaluation of ``rnnlab eval`` (32 rows read side by side, each after
        reading the tokens before it, and a dict); this reads the text as one stream from a fresh state."""
        return score_text(self.model, self.vocab, self.mode, self.token, text, per_token=per_token, top=top)

    # ---- generation --------------------------------------------------------------
    def stream(self, prefix: str, length: int = 100, greedy: bool = False, temperature: float = 1.0,
               top_k: int = 0, top_p: float = 1.0, seed: int | None = None,
               stop: Sequence[str] | str = ()) -> Iterator[str]:
        """Yield the generated text piece by piece (one token's text at a time): ``length``
        tokens, or fewer when one of the ``stop`` tokens comes first (it is the last one)."""
        self._check_generation(prefix, length, greedy, temperature, top_k, top_p, seed)
        end_ids = set(self.stop_ids(stop))
        sampling = Sampling(greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        ids = self.prefix_ids(prefix)
        yield from self._pieces(ids[-1], _until_stop(generate_ids(self.model, ids, length, sampling, generator),
                                                      end_ids))

    def generate_batch(self, prefix: str, length: int = 100, num_samples: int = 2, greedy: bool = False,
                       temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                       seed: int | None = None, stop: Sequence[str] | str = ()) -> list[str]:
        """``num_samples`` texts like :meth:`generate`, generated side by side (one warm-up, batched steps).

        With a ``seed``, sample ``i`` is the text ``generate(..., seed=seed + i)`` gives
        (up to float rounding), as ``rnnlab generate --num-samples`` has always printed.
        Each text ends after the first of the ``stop`` tokens it produces.
        """
        self._check_generation(prefix, length, greedy, temperature, top_k, top_p, seed)
        checks.integer(num_samples, "num_samples", 1, MAX_STREAMS)
        if seed is not None:
            checks.seed_value(seed + num_samples - 1, "seed + num_samples - 1")
        sampling = Sampling(greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p)
        generators = None if seed is None else [torch.Generator().manual_seed(seed + i) for i in range(num_samples)]
        end_ids = set(self.stop_ids(stop))
        ids = self.prefix_ids(prefix)
        rows = generate_batch_ids(self.model, ids, length, num_samples, sampling, generators)
        shown = self.prefix_text(prefix)
        return [shown + "".join(self._pieces(ids[-1], _until_stop(row, end_ids))) for row in rows]

    def generate_prompts(self, prompts: Sequence[str], length: int = 100, num_samples: int = 1,
                         greedy: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                         seed: int | None = None, stop: Sequence[str] | str = ()) -> list["Generated"]:
        """Texts for several prompts at once: ``num_samples`` per prompt, prompt by prompt, in one batch.

        Prompts may differ in length (each is read as it would be alone; see
        :func:`rnnlab.generation.warm_up_prompts`). With a ``seed``, sample ``j`` of every
        prompt draws from ``seed + j``, so it is the text ``generate(prompt, ...,
        seed=seed + j)`` gives (up to float rounding); greedy rows are each prompt's text
        alone. A text ends after the first of the ``stop`` tokens it produces (the rows
        are generated side by side to ``length``, then cut). Each result carries the
        log-probability of its generated tokens under the model (one extra forward pass
        per text).
        """
        if isinstance(prompts, str) or not isinstance(prompts, Sequence) or len(prompts) == 0:
            raise UsageError("prompts must be a non-empty list of strings")
        for prompt in prompts:
            self._check_generation(prompt, length, greedy, temperature, top_k, top_p, seed)
        checks.integer(num_samples, "num_samples", 1, MAX_STREAMS)
        if seed is not None:
            checks.seed_value(seed + num_samples - 1, "seed + num_samples - 1")
        sampling = Sampling(greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p)
        generators = None if seed is None else [torch.Generator().manual_seed(seed + j)
                                                for _ in prompts for j in range(num_samples)]
        end_ids = set(self.stop_ids(stop))
        ids = [self.prefix_ids(prompt) for prompt in prompts]
        rows = generate_prompts_ids(self.model, ids, length, num_samples, sampling, generators)
        results = []
        for r, row in enumerate(rows):
            row = list(_until_stop(row, end_ids))
            i = r // num_samples
            text = self.prefix_text(prompts[i]) + "".join(self._pieces(ids[i][-1], row))
            results.append(Generated(prompts[i], text, continuation_log_prob(self.model, ids[i], row)))
        return results

    def beam_search(self, prefix: str, length: int = 100, beam: int = 4, length_penalty: float = 1.0,
                    stop: Sequence[str] = ()) -> "Generated":
        """The continuation of at most ``length`` tokens with the best length-normalised log-probability.

        ``stop``: tokens (each one token of the vocabulary, e.g. ``"."``) after which a
        continuation ends; see :func:`rnnlab.generation.beam_search_ids` for the search and
        the score ``log_prob / tokens ** length_penalty``. ``beam=1`` is greedy decoding.
        """
        self._check_generation(prefix, length, True, 1.0, 0, 1.0, None)
        checks.integer(beam, "beam", 1, MAX_BEAM)
        checks.number(length_penalty, "length_penalty", 0)
        end_ids = self.stop_ids(stop)
        ids = self.prefix_ids(prefix)
        found = beam_search_ids(self.model, ids, length, beam, length_penalty, end_ids)
        text = self.prefix_text(prefix) + "".join(self._pieces(ids[-1], found.ids))
        return Generated(prefix, text, found.log_prob, found.score)

    def stop_ids(self, stop: Sequence[str] | str, name: str = "stop") -> list[int]:
        """The ids of stop tokens (a token or a list), each one token of the vocabulary but ``<unk>``;
        errors call the argument ``name``."""
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, (list, tuple)):
            raise UsageError(f"{name} must be a token or a list of tokens, got {type(stop).__name__}")
        ids = []
        for token in stop:
            checks.text(token, name)
            if token not in self.vocab or self.vocab[token] == 0:
                hint = ""
                if self.token in SUBWORDS:  # its tokens spell bytes with the byte-level symbols
                    spelled = "".join(BYTE_SYMBOLS[b] for b in token.encode("utf-8"))
                    hint = f"; a {self.token} token spells each byte with a symbol: try {spelled!r}" \
                        if spelled != token and spelled in self.vocab else ""
                raise UsageError(f"{name} {token!r} is not one token of the model's vocabulary "
                                 f"({self.token} tokens){hint}")
            ids.append(self.vocab[token])
        return ids

    @staticmethod
    def _check_generation(prefix, length, greedy, temperature, top_k, top_p, seed) -> None:
        """Generation arguments checked before any reaches torch (:mod:`rnnlab.checks`)."""
        checks.text(prefix, "prefix")
        checks.integer(length, "length", 0)
        checks.sampling(temperature, top_k, top_p, greedy)
        checks.seed_value(seed)

    def _pieces(self, previous_id: int, ids: Iterable[int]) -> Iterator[str]:
        """The text of generated ``ids`` piece by piece; ``previous_id`` (the prefix's last) decides word spacing."""
        previous = self.vocab.to_tokens(previous_id)
        if self.token in SUBWORDS:  # a token's bytes may end inside a character: decode as a byte stream
            yield from decode_stream(self.vocab.to_tokens(index) for index in ids)
            return
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace") if self.token == "byte" else None
        for index in ids:
            tok = self.vocab.to_tokens(index)
            if self.token == "char":
                yield tok
            elif decoder is not None:
                piece = decoder.decode(tok.encode("latin-1"))
                if piece:
                    yield piece
            else:
                yield word_separator(previous, tok) + tok
            previous = tok
        if decoder is not None:
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail

    def prefix_text(self, prefix: str) -> str:
        """The prefix as the model reads it (after preprocessing, e.g. lower-cased in d2l mode)."""
        checks.text(prefix, "prefix")
        return detokenize(tokenize(preprocess_prefix(prefix, self.mode), self.token, self.mode,
                                   subword=self.vocab.subword), self.token)

    def generate(self, prefix: str, length: int = 100, **options) -> str:
        """Prefix (as preprocessed) followed by ``length`` generated tokens (fewer when a ``stop``
        token comes first), as text."""
        unknown = sorted(set(options) - {"greedy", "temperature", "top_k", "top_p", "seed", "stop"})
        if unknown:
            raise UsageError(f"generate() got an unknown option {unknown[0]!r}; options: greedy, temperature, "
                             "top_k, top_p, seed, stop")
        return self.prefix_text(prefix) + "".join(self.stream(prefix, length, **options))

    # ---- persistence -------------------------------------------------------------
    @classmethod
    def load(cls, folder, device: str = "cpu") -> "LanguageModel":
        """Load the model of a checkpoint folder written by ``rnnlab train`` (on any device).

        Reads only what inference needs (the model, its vocabulary and preprocessing), each
        value checked first (:mod:`rnnlab.model_checkpoint`); training state is not read."""
        config = load_config(folder, kind=KIND)
        _, vocab = check_model_config(folder, config)
        model = load_model(folder, config, resolve_device(device)).eval()
        pre = config.get("preprocessing", {})
        return cls(model=model, vocab=vocab, mode=pre.get("mode", "raw"), token=pre.get("token", "char"))


def _until_stop(ids: Iterable[int], end_ids: set[int]) -> Iterator[int]:
    """``ids`` up to and including the first one in ``end_ids`` (all of them when none is)."""
    for index in ids:
        yield index
        if index in end_ids:
            return


def load_scorer(folder):
    """``(model, vocab, mode, token, description)`` of a language-model or n-gram folder, for
    :func:`rnnlab.scoring.score_text`."""
    config = load_config(folder)
    kind = config.get("kind")
    if kind == "ngram":
        from rnnlab.ngram import store  # lazy: start-up (rnnlab.ngram is loaded only for an n-gram folder)
        model = store.load(folder)
        pre = getattr(model, "preprocessing", {}) or {}
        if model.vocab is None or "mode" not in pre or "token" not in pre:
            raise CheckpointError(f"{folder} holds an n-gram model without a vocabulary and preprocessing (imported "
                                  "from ARPA without --mode/--token?); it cannot read text")
        return model, model.vocab, pre["mode"], pre["token"], f"{model.order}-gram {model.smoothing}"
    if kind != KIND:
        raise CheckpointError(f"{folder} holds a '{kind}' model; rnnlab score reads language-model and ngram folders")
    lm = LanguageModel.load(folder)
    return lm.model, lm.vocab, lm.mode, lm.token, f"{lm.model.name} ({lm.model.num_parameters():,} parameters)"
