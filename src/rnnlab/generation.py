"""Text generation from a recurrent language model: warm-up, then sampling.

The prefix is fed through the model first (the *warm-up period*: it only updates
the state, nothing is predicted); then each new token is chosen from the
distribution at the last position and fed back in. ``<unk>`` (index 0) is never
emitted.

Warm-up runs the model's own ``forward`` over ``prefix[:-1]`` once (batch 1); the
state is then copied to every stream of a :class:`~rnnlab.models.stepping.Stepper`,
which feeds the last prefix token and every generated token one step at a time
without allocating (see :mod:`rnnlab.models.stepping`). The stepper's output bias
has ``-inf`` at ``<unk>``, so its logits ``z`` ``(B, V)`` already exclude it.

Choosing the next token of every row at once (:class:`Sampling`):

* greedy: ``argmax_v z_v``;
* otherwise ``z / temperature``; keep the ``top_k`` largest (the others become
  ``-inf``); then, with ``p = softmax(z)``, drop (``-inf``) the tokens outside the
  nucleus, those whose strictly more likely tokens already reach ``top_p``; then
  draw with the exponential race::

      token = argmax_v  p_v / q_v  =  argmax_v  z_v - log q_v,      q_v ~ Exp(1)

  which picks ``v`` with probability ``p_v`` (``-log q`` is Gumbel noise). It is
  the draw ``torch.multinomial`` makes for one sample, from the same random
  numbers in the same order, so a seed gives the tokens it gave before this module
  stepped (up to float rounding), and no softmax is needed without top-k/top-p.

Reproducibility: one ``torch.Generator`` draws the noise of all rows; a list of
``B`` generators draws row ``i`` from generator ``i``, so row ``i`` of a batch is
the single-stream run with that generator (up to float rounding of the batched
products).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, TextIO, Union

import torch

from rnnlab.checks import MAX_LENGTH  # noqa: F401  (also rnnlab.generation's)
from rnnlab.errors import UsageError
from rnnlab.models.base import RecurrentLM, State, map_state
from rnnlab.models.stepping import Stepper, make_stepper

Generators = Union[torch.Generator, Sequence[torch.Generator], None]

MAX_CHUNK = 64  # tokens generated between two hand-overs to Python in generate_ids

NO_TOKEN_MESSAGE = "the model gives no token but <unk> a finite score; nothing can be generated"


@dataclass
class Sampling:
    """How the next token is chosen from ``logits`` ``(vocab,)``.

    ``greedy`` takes the argmax; otherwise logits are divided by ``temperature``,
    restricted to the ``top_k`` most likely tokens and then to the smallest set whose
    probability reaches ``top_p`` (nucleus sampling), and sampled.
    """

    greedy: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise UsageError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise UsageError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1], got {self.top_p}")

    def choose(self, logits: torch.Tensor, generator: torch.Generator | None) -> int:
        """One token from ``logits`` ``(vocab,)``, never ``<unk>``."""
        logits = logits.float().clone().unsqueeze(0)
        logits[0, 0] = -float("inf")  # never emit <unk>
        if not torch.isfinite(logits).any():
            raise UsageError(NO_TOKEN_MESSAGE)
        chooser = TokenChooser(self, 1, logits.shape[1], logits.device, generator, block=1)
        return int(chooser.choose(logits)[0])


class TokenChooser:
    """Chooses one token per row of ``(B, V)`` logits whose ``<unk>`` column is already ``-inf``.

    Sampling draws the race noise ``-log q`` for ``block`` steps at once (one
    generator call instead of one per step) and moves it to the logits' device in
    the same go, so a sampling step is an ``add`` and an ``argmax`` on the device.
    """

    NOISE_BUDGET = 1 << 20  # numbers per noise block: caps the memory of wide vocabularies x batches

    def __init__(self, sampling: Sampling, batch_size: int, vocab_size: int, device: torch.device,
                 generator: Generators = None, dtype: torch.dtype = torch.float32, block: int = 64) -> None:
        self.sampling = sampling
        if isinstance(generator, torch.Generator) or generator is None:
            self.generators = [generator]
        else:
            self.generators = list(generator)
            if len(self.generators) != batch_size:
                raise UsageError(f"{len(self.generators)} generators were given for {batch_size} rows; "
                                 "give one generator, or one per row")
        self.tokens = torch.empty(batch_size, dtype=torch.long, device=device)
        if sampling.greedy:
            return
        self.block = max(1, min(block, self.NOISE_BUDGET // (batch_size * vocab_size)))
        # q is drawn where its generator lives (a CPU generator may serve a GPU model), in
        # float32 and row by row, (B, block, V): row i's numbers come from its own generator
        # in step order, the same stream a batch-of-one run with that generator draws.
        first = self.generators[0]
        draw_device = first.device if first is not None else torch.device(device)
        self.q = torch.empty(batch_size, self.block, vocab_size, dtype=torch.float32, device=draw_device)
        self.gumbel = torch.empty(batch_size, self.block, vocab_size, dtype=dtype, device=device)
        self.steps = list(self.gumbel.unbind(1))  # (B, V) views, one per step of the block
        self.work = torch.empty(batch_size, vocab_size, dtype=dtype, device=device)
        self.used = self.block  # nothing drawn yet

    def _draw(self) -> None:
        if len(self.generators) == 1:
            self.q.exponential_(generator=self.generators[0])
        else:
            for rows, generator in zip(self.q, self.generators):
                rows.exponential_(generator=generator)
        # q == 0 has probability ~2^-24 but would make -log q infinite: keep it finite.
        self.q.clamp_min_(torch.finfo(torch.float32).tiny)
        self.gumbel.copy_(self.q.log_().neg_())
        self.used = 0

    def choose(self, logits: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``(B,)`` int64 for ``logits`` ``(B, V)``, written to ``out`` (default: an internal buffer)."""
        out = self.tokens if out is None else out
        s = self.sampling
        if s.greedy:
            return torch.argmax(logits, dim=1, out=out)
        if self.used == self.block:
            self._draw()
        gumbel = self.steps[self.used]
        self.used += 1
        if not s.top_k and s.top_p >= 1.0:
            torch.add(gumbel, logits, alpha=1.0 / s.temperature, out=self.work)  # z / T - log q
            return torch.argmax(self.work, dim=1, out=out)
        z = logits / s.temperature  # a new tensor: the stepper's logits stay as they are
        vocab = z.shape[1]
        if s.top_k and s.top_k < vocab:
            kth = torch.topk(z, s.top_k, dim=1).values[:, -1:]
            z.masked_fill_(z < kth, -float("inf"))
        if s.top_p < 1.0:
            sorted_probs, order = torch.sort(torch.softmax(z, dim=1), dim=1, descending=True)
            before = torch.cumsum(sorted_probs, dim=1) - sorted_probs  # mass of strictly more likely tokens
            outside = before >= s.top_p
            z.masked_fill_(torch.empty_like(outside).scatter_(1, order, outside), -float("inf"))
        return torch.argmax(z.add_(gumbel), dim=1, out=out)


# Up to this many bytes of weights, one stream steps faster on one thread (see below).
ONE_THREAD_MAX_WEIGHT_BYTES = 2 * 2**20


@contextlib.contextmanager
def _one_thread_on_cpu(device: torch.device, weight_bytes: int):
    """One intra-op thread while a single stream of a small model steps on a CPU.

    A stream's per-token products (one row times the weights) are too small to
    split while the weights fit one core's cache: with 2 threads the hand-off
    costs more than it saves (greedy, the hidden-512 scratch RNN, 1.1 MB of
    weights: about 36,000 tokens/s on 2 threads, 44,000 on 1, on the build
    machine). Larger weights are read from memory and two cores read faster
    (the default 2x256 LSTM, 3.5 MB: 9,300 tokens/s on 2 threads, 6,300 on 1).
    Set only while a chunk is computed, never while the caller holds a token.
    """
    previous = torch.get_num_threads()
    if device.type != "cpu" or previous == 1 or weight_bytes > ONE_THREAD_MAX_WEIGHT_BYTES:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


MAX_STREAMS = 100_000  # samples generated side by side


def _check_request(prefix_ids: Sequence[int], length: int) -> None:
    if len(prefix_ids) == 0:
        raise UsageError("generation needs a prefix of at least one token")
    if length < 0:
        raise UsageError(f"length must be >= 0, got {length}")
    if length > MAX_LENGTH:
        raise UsageError(f"length must be at most {MAX_LENGTH:,} tokens per call, got {length}")


def warm_up(model: RecurrentLM, prefix_ids: Sequence[int], batch_size: int) -> tuple[Stepper, torch.Tensor]:
    """A stepper whose ``batch_size`` streams have all read ``prefix_ids``, and its logits ``(B, V)``.

    The model's forward reads ``prefix[:-1]`` once; the stepper then feeds the last
    prefix token, so every logit generation chooses from comes from the stepper (with
    ``<unk>`` masked). ``model`` must be in eval mode.
    """
    device = model.device
    stepper = make_stepper(model, batch_size, mask_unk=True)
    if len(prefix_ids) > 1:
        prefix = torch.tensor([list(prefix_ids[:-1])], dtype=torch.long, device=device)
        _, state = model(prefix, model.begin_state(1, device))
        stepper.load_state(state)
    last = torch.full((batch_size,), int(prefix_ids[-1]), dtype=torch.long, device=device)
    return stepper, stepper.step(last)


def generate_ids(model: RecurrentLM, prefix_ids: list[int], length: int, sampling: Sampling | None = None,
                 generator: torch.Generator | None = None) -> Iterator[int]:
    """Yield ``length`` new token ids after warming up on ``prefix_ids`` (at least one id).

    Tokens are made in chunks of 1, 2, 4, ... up to :data:`MAX_CHUNK` and then
    yielded: the first token comes at once, and a long run pays the per-token
    Python costs (a device-to-host read, a generator resumption, the inference-mode
    switch) once per chunk instead of once per token.
    """
    _check_request(prefix_ids, length)
    sampling = sampling or Sampling()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            stepper, logits = warm_up(model, prefix_ids, 1)
        choose = TokenChooser(sampling, 1, model.vocab_size, stepper.device, generator, stepper.dtype).choose
        chunk = torch.empty(MAX_CHUNK, 1, dtype=torch.long, device=stepper.device)
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        rows = list(chunk)  # (1,) views made once; each receives one token and feeds it back
        produced, size = 0, 1
        while produced < length:
            count = min(size, length - produced)
            last = produced + count == length
            with torch.inference_mode(), _one_thread_on_cpu(stepper.device, weight_bytes):  # inference_mode: ~1 us/token
                for t in range(count):
                    tokens = choose(logits, out=rows[t])
                    if not (last and t == count - 1):  # the very last token needs no step
                        logits = stepper.step(tokens)
            for token in chunk[:count, 0].tolist():
                if token == 0:  # the argmax only lands on the masked <unk> when nothing else is finite
                    raise UsageError(NO_TOKEN_MESSAGE)
                yield token
            produced += count
            size = min(2 * size, MAX_CHUNK)
    finally:
        model.train(was_training)


def generate_batch_ids(model: RecurrentLM, prefix_ids: list[int], length: int, num_samples: int,
                       sampling: Sampling | None = None, generator: Generators = None) -> list[list[int]]:
    """``num_samples`` continuations of ``length`` ids each, generated side by side after one warm-up.

    ``generator`` is one generator for the whole batch or one per sample (then sample
    ``i`` equals ``generate_ids`` with generator ``i``, up to float rounding).
    """
    return generate_prompts_ids(model, [prefix_ids], length, num_samples, sampling, generator)


def _merge_state(fn, whole: State, part: State) -> State:
    """``fn(w, p)`` on matching tensors of two states in a model's format (a tensor or a tuple)."""
    if isinstance(whole, tuple):
        return tuple(fn(w, p) for w, p in zip(whole, part))
    return fn(whole, part)


def warm_up_prompts(model: RecurrentLM, prompts: Sequence[Sequence[int]], rows_per_prompt: int = 1,
                    mask_unk: bool = True) -> tuple[Stepper, torch.Tensor]:
    """A stepper of ``len(prompts) * rows_per_prompt`` rows and its logits ``(B, V)``.

    Row ``i * rows_per_prompt + j`` has read ``prompts[i]`` (at least one id each). Each
    prompt's state is the one it has alone: prompts of one length are read by one
    ``forward`` over ``prompt[:-1]`` from the zero state (prompts of other lengths in
    other calls, so no row ever reads padding); the states are stacked into
    ``(layers, prompts, hidden)``, repeated ``rows_per_prompt`` times, and the stepper
    then feeds every row's last prompt token, so all rows step together from there.
    ``model`` must be in eval mode.
    """
    device = model.device
    count = len(prompts)
    stepper = make_stepper(model, count * rows_per_prompt, mask_unk=mask_unk)
    by_length: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        by_length.setdefault(len(prompt), []).append(i)
    if any(n > 1 for n in by_length):
        state = model.begin_state(count, device)
        for n, members in by_length.items():
            if n < 2:
                continue  # nothing before the last token: the zero state
            X = torch.tensor([list(prompts[i][:-1]) for i in members], dtype=torch.long, device=device)
            _, read = model(X, model.begin_state(len(members), device))
            rows = torch.tensor(members, device=device)
            state = _merge_state(lambda w, p: w.index_copy(1, rows, p.to(w.dtype)), state, read)
        stepper.load_state(map_state(lambda s: s.repeat_interleave(rows_per_prompt, dim=1), state))
    last = torch.tensor([int(p[-1]) for p in prompts for _ in range(rows_per_prompt)], dtype=torch.long,
                        device=device)
    return stepper, stepper.step(last)


@torch.no_grad()
def generate_prompts_ids(model: RecurrentLM, prompts: Sequence[Sequence[int]], length: int,
                         samples_per_prompt: int = 1, sampling: Sampling | None = None,
                         generator: Generators = None) -> list[list[int]]:
    """``length`` new ids for each of ``samples_per_prompt`` rows per prompt, all in one batch.

    Returns ``len(prompts) * samples_per_prompt`` lists, prompt by prompt (row
    ``i * samples_per_prompt + j`` continues ``prompts[i]``). The rows step together with
    a state of shape ``(layers, rows, hidden)`` after :func:`warm_up_prompts`; ``generator``
    is one generator for the whole batch or one per row (then row ``r`` equals
    :func:`generate_ids` of its prompt with generator ``r``, up to float rounding of the
    batched products; under greedy decoding every row is the prompt's text alone).
    """
    if len(prompts) == 0:
        raise UsageError("generation needs at least one prompt")
    for prompt in prompts:
        _check_request(prompt, length)
    if samples_per_prompt < 1:
        raise UsageError(f"num_samples must be a positive integer, got {samples_per_prompt}")
    if len(prompts) * samples_per_prompt > MAX_STREAMS:
        raise UsageError(f"{len(prompts)} prompts x {samples_per_prompt} samples is more than "
                         f"{MAX_STREAMS:,} streams side by side")
    sampling = sampling or Sampling()
    rows = len(prompts) * samples_per_prompt
    was_training = model.training
    model.eval()
    try:
        stepper, logits = warm_up_prompts(model, prompts, samples_per_prompt)
        chooser = TokenChooser(sampling, rows, model.vocab_size, stepper.device, generator, stepper.dtype)
        chosen = torch.empty(length, rows, dtype=torch.long, device=stepper.device)
        with torch.inference_mode():
            for t in range(length):
                tokens = chooser.choose(logits, out=chosen[t])
                if t + 1 < length:
                    logits = stepper.step(tokens)
        # One check at the end rather than a device sync per step: a row that found
        # nothing but <unk> kept going on garbage, but the call fails as a whole.
        if length and bool((chosen == 0).any()):
            raise UsageError(NO_TOKEN_MESSAGE)
        return chosen.t().tolist()
    finally:
        model.train(was_training)


@torch.no_grad()
def continuation_log_prob(model: RecurrentLM, prefix_ids: Sequence[int], ids: Sequence[int]) -> float:
    """Natural-log probability of ``ids`` after ``prefix_ids`` under the model (temperature 1, all tokens).

    One ``forward`` over ``prefix + ids[:-1]`` from the zero state; the log-softmax at each
    position of ``ids`` (float64), summed. 0 for no ids.
    """
    if not ids:
        return 0.0
    was_training = model.training
    model.eval()
    try:
        device = model.device
        X = torch.tensor([list(prefix_ids) + list(ids[:-1])], dtype=torch.long, device=device)
        logits, _ = model(X, model.begin_state(1, device))
        log_p = torch.log_softmax(logits[0, len(prefix_ids) - 1:].double(), dim=1)
        target = torch.tensor(list(ids), dtype=torch.long, device=device).view(-1, 1)
        return float(log_p.gather(1, target).sum())
    finally:
        model.train(was_training)


MAX_BEAM = 10_000


@dataclass
class BeamResult:
    """The best hypothesis of a beam search: its ``ids``, their total ``log_prob`` (nats,
    the model's full distribution) and ``score = log_prob / len(ids) ** length_penalty``."""

    ids: list[int]
    log_prob: float
    score: float


def _normalised(log_prob: float, count: int, length_penalty: float) -> float:
    return log_prob / count ** length_penalty if count else 0.0


@torch.no_grad()
def beam_search_ids(model: RecurrentLM, prefix_ids: Sequence[int], length: int, beam: int,
                    length_penalty: float = 1.0, end_ids: Sequence[int] = ()) -> BeamResult:
    """The continuation of at most ``length`` ids with the highest length-normalised log-probability.

    Keeps the ``beam`` best partial continuations (by total log-probability, as they all
    have the same length at a step); each step extends every one by every token but
    ``<unk>`` and keeps the ``beam`` best of the ``beam x V`` extensions. A continuation
    that emits one of ``end_ids`` is finished there (the end token included); the others
    finish at ``length`` tokens. The answer is the finished continuation with the highest
    ``log_prob / n ** length_penalty`` (``n`` its ids; 1: the mean per token, 0: the plain
    total, which favours short endings). Without ``end_ids`` every continuation has
    ``length`` ids and the normalisation does not change the ranking. ``beam = 1`` is
    greedy decoding; ``beam >= (V - 1) ** length`` examines every continuation.
    Log-probabilities come from the model's full softmax (``<unk>`` included, never chosen).
    """
    _check_request(prefix_ids, length)
    if not 1 <= beam <= MAX_BEAM:
        raise UsageError(f"beam must be an integer from 1 to {MAX_BEAM:,}, got {beam}")
    if not (math.isfinite(length_penalty) and length_penalty >= 0):
        raise UsageError(f"length_penalty must be a finite number >= 0, got {length_penalty}")
    if length == 0:
        return BeamResult([], 0.0, 0.0)
    was_training = model.training
    model.eval()
    try:
        stepper, logits = warm_up_prompts(model, [prefix_ids], beam, mask_unk=False)
        device, V = stepper.device, model.vocab_size
        end = torch.zeros(V, dtype=torch.bool, device=device)
        for i in end_ids:
            end[int(i)] = True
        ends = end.nonzero().view(-1)
        totals = torch.full((beam,), -math.inf, dtype=torch.float64, device=device)
        totals[0] = 0.0  # every row holds the same state: only the first one is a hypothesis yet
        history = torch.empty(beam, 0, dtype=torch.long, device=device)
        finished: list[tuple[float, float, list[int]]] = []  # (score, log_prob, ids)
        for t in range(length):
            extended = totals.view(-1, 1) + torch.log_softmax(logits.double(), dim=1)  # (beam, V)
            extended[:, 0] = -math.inf  # never <unk>
            n = t + 1
            if len(ends):
                for row, token in (extended[:, ends] > -math.inf).nonzero().tolist():
                    total = float(extended[row, ends[token]])
                    ids = history[row].tolist() + [int(ends[token])]
                    finished.append((_normalised(total, n, length_penalty), total, ids))
                finished = sorted(finished, key=lambda f: -f[0])[:beam]
                extended[:, ends] = -math.inf
            best = torch.topk(extended.view(-1), beam)
            parents = torch.div(best.indices, V, rounding_mode="floor")
            tokens = best.indices % V
            totals = best.values
            history = torch.cat([history[parents], tokens.view(-1, 1)], dim=1)
            if not bool(torch.isfinite(totals).any()):
                break
            if n == length:
                for row in torch.isfinite(totals).nonzero().view(-1).tolist():
                    total = float(totals[row])
                    finished.append((_normalised(total, n, length_penalty), total, history[row].tolist()))
                break
            stepper.load_state(map_state(lambda s: s[:, parents], stepper.state()))
            logits = stepper.step(tokens)
        if not finished:
            raise UsageError(NO_TOKEN_MESSAGE)
        score, total, ids = max(finished, key=lambda f: f[0])
        return BeamResult(ids, total, score)
    finally:
        model.train(was_training)


FLUSH_SECONDS = 0.05  # a streamed text is flushed at most this often: smooth to read, no syscall per token


def write_stream(pieces: Iterable[str], out: TextIO, flush_seconds: float = FLUSH_SECONDS) -> str:
    """Write text ``pieces`` to ``out`` as they come and return them joined.

    ``out`` is flushed when ``flush_seconds`` have passed since the last flush, and at
    the end: a reader sees the text appear as it is generated, but a fast model does not
    pay one write system call (and, through a pipe, one wake-up of the reader) per token.
    """
    parts: list[str] = []
    write, flush, clock = out.write, out.flush, time.perf_counter
    last_flush = clock()
    for piece in pieces:
        parts.append(piece)
        write(piece)
        now = clock()
        if now - last_flush >= flush_seconds:
            flush()
            last_flush = now
    flush()
    return "".join(parts)


def generation_tokens_per_second(model: RecurrentLM, length: int, batch_size: int = 1,
                                 greedy: bool = True) -> float:
    """Generated tokens per second (all rows together) for ``length`` tokens per row.

    ``batch_size == 1`` times :func:`generate_ids` (the streaming path), larger batches
    :func:`generate_batch_ids`; ``greedy=False`` samples at temperature 1 with a
    seeded generator. A short untimed run first takes one-off costs out of the
    measurement. Threads are the caller's choice (``torch.set_num_threads``).
    """
    if length < 1:
        raise UsageError(f"length must be a positive integer, got {length}")
    sampling = Sampling(greedy=greedy)
    prefix = [1 % model.vocab_size]

    def run(steps: int) -> None:
        generator = torch.Generator(device=model.device).manual_seed(0)
        if batch_size == 1:
            for _ in generate_ids(model, prefix, steps, sampling, generator):
                pass
        else:
            generate_batch_ids(model, prefix, steps, batch_size, sampling, generator)

    run(min(length, 32))
    start = time.perf_counter()
    run(length)
    return length * batch_size / (time.perf_counter() - start)
