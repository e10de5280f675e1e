"""Per-token stepping (rnnlab.models.stepping) and the batched, stepped generation built on it."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.data.vocab import Vocab
from rnnlab.errors import UsageError
from rnnlab.generation import (Sampling, TokenChooser, generate_batch_ids, generate_ids,
                               generation_tokens_per_second)
from rnnlab.lm import LanguageModel
from rnnlab.models import build_model
from rnnlab.models.base import RecurrentLM
from rnnlab.models.scratch import ScratchRNN
from rnnlab.models.stepping import ForwardStepper, LayeredStepper, make_stepper

# float32: 1e-5 absolute, plus 1e-5 relative for the large values an unbounded ReLU
# RNN reaches (at |x| ~ 20 one rounding step is already 2e-6).
TOL = 1e-5

CONFIGS = [("rnn-scratch", dict(hidden_size=16))] + [
    (cell, dict(hidden_size=8, num_layers=layers, embed_size=embed, **extra))
    for cell, extra in [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("gru", {}), ("lstm", {})]
    for layers in (1, 2) for embed in (0, 5)
]


def config_id(config):
    name, options = config
    return name + "".join(f"-{k}{v}" for k, v in options.items())


def random_model(name, vocab_size, seed, scale=None, **options):
    """A model in eval mode whose weights are large enough for the gates to saturate sometimes.

    (A ReLU RNN gets smaller ones: with gain 2 per step its state grows without bound.)
    """
    if scale is None:
        scale = 0.7 if options.get("nonlinearity") == "relu" else 2.0
    model = build_model(name, vocab_size, seed=seed, **options).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:  # not the fixed one-hot identity
                p.add_(torch.randn(p.shape, generator=generator) * scale / p.shape[-1] ** 0.5)
    return model


def random_state(model, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    zeros = model.begin_state(batch)
    if isinstance(zeros, tuple):
        return tuple(torch.randn(z.shape, generator=generator) for z in zeros)
    return torch.randn(zeros.shape, generator=generator)


def assert_states_close(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, atol=TOL, rtol=TOL)


def check_stepper_matches_forward(model, X, state):
    """Stepping through X from ``state`` gives forward's logits at every step and forward's final state."""
    with torch.no_grad():
        expected, expected_state = model(X, state)
    stepper = make_stepper(model, X.shape[0])
    stepper.load_state(state)
    for t in range(X.shape[1]):
        logits = stepper.step(X[:, t].contiguous())
        torch.testing.assert_close(logits, expected[:, t], atol=TOL, rtol=TOL)
    assert_states_close(stepper.state(), expected_state)


# ---- the stepper computes the forward's numbers -------------------------------------
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_stepper_equals_forward(config):
    name, options = config
    model = random_model(name, 13, seed=1, **options)
    assert isinstance(make_stepper(model, 1), LayeredStepper)  # the fast path, not the fallback
    X = torch.randint(0, 13, (3, 12), generator=torch.Generator().manual_seed(2))
    check_stepper_matches_forward(model, X, random_state(model, 3, seed=3))
    check_stepper_matches_forward(model, X, model.begin_state(3))


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_warm_up_with_forward_then_step(config):
    """A prefix read by forward (batch 1), its state copied to every row, then stepped == forward on it all."""
    name, options = config
    model = random_model(name, 11, seed=4, **options)
    sequence = torch.randint(0, 11, (1, 10), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected, _ = model(sequence, model.begin_state(1))
        _, state = model(sequence[:, :6], model.begin_state(1))
    stepper = make_stepper(model, 4)
    stepper.load_state(state)  # batch 1 -> every one of the 4 rows
    for t in range(6, 10):
        logits = stepper.step(sequence[0, t].repeat(4))
        torch.testing.assert_close(logits, expected[:, t].expand(4, -1), atol=TOL, rtol=TOL)


def test_the_stepper_is_a_snapshot_and_builds_no_graph():
    model = random_model("lstm", 9, seed=6, hidden_size=6, num_layers=2, embed_size=3)
    stepper = make_stepper(model, 2)
    before = stepper.step(torch.tensor([1, 2])).clone()
    assert not before.requires_grad
    with torch.no_grad():
        model.output.bias.add_(1.0)  # the stepper keeps its copy of the weights
    stepper.load_state(model.begin_state(2))
    torch.testing.assert_close(stepper.step(torch.tensor([1, 2])), before)


def test_mask_unk_only_changes_column_zero():
    model = random_model("gru", 9, seed=7, hidden_size=6, embed_size=3)
    plain, masked = make_stepper(model, 2), make_stepper(model, 2, mask_unk=True)
    tokens = torch.tensor([3, 4])
    a, b = plain.step(tokens), masked.step(tokens)
    assert torch.equal(a[:, 1:], b[:, 1:]) and torch.all(b[:, 0] == -float("inf"))


class DoubledScratch(ScratchRNN):
    """A subclass with its own forward: the stepper must not assume the parent's equations."""

    def forward(self, X, state, grad_scale=None):
        logits, state = super().forward(X, state, grad_scale)
        return 2 * logits, state


class TinyLM(RecurrentLM):
    """A model class the stepper has never heard of (state: a running sum of embeddings)."""

    name = "tiny"

    def __init__(self, vocab_size):
        super().__init__(vocab_size)
        self.embed = torch.nn.Embedding(vocab_size, 4)
        self.out = torch.nn.Linear(4, vocab_size)

    def begin_state(self, batch_size, device=None):
        return torch.zeros(1, batch_size, 4, device=device)

    def forward(self, X, state, grad_scale=None):
        running = state[0].unsqueeze(1) + torch.cumsum(self.embed(X), dim=1)
        return self.out(torch.tanh(running)), running[:, -1].unsqueeze(0)


@pytest.mark.parametrize("make", [lambda: DoubledScratch(9, hidden_size=5), lambda: TinyLM(9)])
def test_unknown_models_fall_back_to_forward(make):
    torch.manual_seed(0)
    model = make().eval()
    assert isinstance(make_stepper(model, 2), ForwardStepper)
    X = torch.randint(0, 9, (2, 7))
    check_stepper_matches_forward(model, X, random_state(model, 2, seed=1))
    ids = list(generate_ids(model, [1, 2], 20, Sampling(greedy=True)))
    assert len(ids) == 20 and 0 not in ids
    assert generate_batch_ids(model, [1, 2], 20, 3, Sampling(greedy=True)) == [ids] * 3


@settings(max_examples=40, deadline=None)
@given(cell=st.sampled_from(["rnn-scratch", "rnn", "rnn-relu", "gru", "lstm"]),
       vocab=st.integers(2, 12), hidden=st.integers(1, 9), layers=st.integers(1, 3),
       embed=st.integers(0, 6), batch=st.integers(1, 4), steps=st.integers(1, 8),
       seed=st.integers(0, 2**16), zero_state=st.booleans())
def test_stepper_equals_forward_property(cell, vocab, hidden, layers, embed, batch, steps, seed, zero_state):
    if cell == "rnn-scratch":
        model = random_model(cell, vocab, seed, hidden_size=hidden)
    else:
        extra = {"nonlinearity": "relu"} if cell == "rnn-relu" else {}
        model = random_model(cell.split("-")[0], vocab, seed, hidden_size=hidden, num_layers=layers,
                             embed_size=embed, **extra)
    X = torch.randint(0, vocab, (batch, steps), generator=torch.Generator().manual_seed(seed))
    state = model.begin_state(batch) if zero_state else random_state(model, batch, seed)
    check_stepper_matches_forward(model, X, state)


# ---- generation on top of the stepper ----------------------------------------------
def multinomial_choice(logits, sampling, generator):
    """The sampling generation used before stepping: mask, filter, softmax, ``torch.multinomial``."""
    logits = logits.float().clone()
    logits[0] = -float("inf")
    if sampling.greedy:
        return int(logits.argmax())
    logits = logits / sampling.temperature
    if sampling.top_k and sampling.top_k < logits.numel():
        logits[logits < torch.topk(logits, sampling.top_k).values[-1]] = -float("inf")
    probs = torch.softmax(logits, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        sorted_probs[torch.cumsum(sorted_probs, 0) - sorted_probs >= sampling.top_p] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def reference_ids(model, prefix, length, sampling, generator):
    """The generation used before stepping: a forward call per token, then :func:`multinomial_choice`."""
    with torch.no_grad():
        logits, state = model(torch.tensor([prefix]), model.begin_state(1))
        out = []
        for _ in range(length):
            token = multinomial_choice(logits[0, -1], sampling, generator)
            out.append(token)
            logits, state = model(torch.tensor([[token]]), state)
    return out


SAMPLINGS = [Sampling(greedy=True), Sampling(), Sampling(temperature=0.6), Sampling(temperature=1.5, top_k=4),
             Sampling(top_p=0.7), Sampling(temperature=2.0, top_k=6, top_p=0.9)]


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=repr)
@pytest.mark.parametrize("name", ["rnn-scratch", "lstm"])
def test_seeded_generation_matches_the_per_token_forward(sampling, name):
    """Same seed, same tokens as a forward per token + torch.multinomial (the draws are the same numbers)."""
    options = dict(hidden_size=16) if name == "rnn-scratch" else dict(hidden_size=12, num_layers=2, embed_size=5)
    model = random_model(name, 15, seed=8, **options)
    got = list(generate_ids(model, [3, 4, 5], 60, sampling, torch.Generator().manual_seed(9)))
    assert got == reference_ids(model, [3, 4, 5], 60, sampling, torch.Generator().manual_seed(9))


@pytest.mark.parametrize("name,options", [("rnn-scratch", dict(hidden_size=16)),
                                          ("lstm", dict(hidden_size=8, num_layers=2, embed_size=4)),
                                          ("gru", dict(hidden_size=8, embed_size=0))])
def test_greedy_never_emits_unk_even_when_it_would_win(name, options):
    model = random_model(name, 10, seed=10, **options)
    with torch.no_grad():
        bias = model.b_q if name == "rnn-scratch" else model.output.bias
        bias[0] = 100.0  # <unk> has the largest logit at every step
    ids = list(generate_ids(model, [1, 2], 80, Sampling(greedy=True)))
    assert len(ids) == 80 and 0 not in ids
    rows = generate_batch_ids(model, [1, 2], 80, 5, Sampling(greedy=True))
    assert rows == [ids] * 5
    sampled = generate_batch_ids(model, [1], 80, 5, Sampling(temperature=3.0), torch.Generator().manual_seed(0))
    assert all(0 not in row for row in sampled)


@pytest.mark.parametrize("sampling", [Sampling(greedy=True), Sampling(temperature=0.8, top_k=3)], ids=repr)
def test_only_unk_finite_is_an_error(sampling):
    model = random_model("gru", 6, seed=11, hidden_size=5, embed_size=3)
    with torch.no_grad():
        model.output.bias[1:] = -float("inf")
    with pytest.raises(UsageError, match="no token but <unk>"):
        list(generate_ids(model, [1, 2], 5, sampling, torch.Generator().manual_seed(0)))
    with pytest.raises(UsageError, match="no token but <unk>"):
        generate_batch_ids(model, [1, 2], 5, 3, sampling, torch.Generator().manual_seed(0))
    with pytest.raises(UsageError, match="no token but <unk>"):
        sampling.choose(torch.tensor([1.0, -float("inf"), -float("inf")]), None)


@pytest.mark.parametrize("name,options", [("rnn-scratch", dict(hidden_size=16)),
                                          ("rnn", dict(hidden_size=8, num_layers=2, nonlinearity="relu")),
                                          ("gru", dict(hidden_size=8, num_layers=2, embed_size=4)),
                                          ("lstm", dict(hidden_size=8, num_layers=2, embed_size=4))])
def test_batch_greedy_rows_equal_the_single_stream(name, options):
    model = random_model(name, 14, seed=12, **options)
    single = list(generate_ids(model, [5, 6, 7], 50, Sampling(greedy=True)))
    assert generate_batch_ids(model, [5, 6, 7], 50, 7, Sampling(greedy=True)) == [single] * 7


@pytest.mark.parametrize("sampling", SAMPLINGS[1:], ids=repr)
def test_batch_row_i_with_generator_i_equals_the_single_stream(sampling):
    model = random_model("lstm", 14, seed=13, hidden_size=10, num_layers=2, embed_size=4)
    seeds = [21, 22, 23, 24]
    rows = generate_batch_ids(model, [2, 3], 100, len(seeds), sampling,
                              [torch.Generator().manual_seed(s) for s in seeds])
    singles = [list(generate_ids(model, [2, 3], 100, sampling, torch.Generator().manual_seed(s))) for s in seeds]
    assert rows == singles
    assert len({tuple(r) for r in rows}) > 1  # the rows really are different samples


def test_one_generator_for_the_batch_is_reproducible():
    model = random_model("gru", 12, seed=14, hidden_size=8, embed_size=4)
    run = lambda: generate_batch_ids(model, [1], 40, 6, Sampling(), torch.Generator().manual_seed(5))  # noqa: E731
    first = run()
    assert first == run() and len({tuple(r) for r in first}) > 1
    one = generate_batch_ids(model, [1], 40, 1, Sampling(), torch.Generator().manual_seed(5))
    assert one == [list(generate_ids(model, [1], 40, Sampling(), torch.Generator().manual_seed(5)))]


def test_batch_arguments_are_checked():
    model = random_model("gru", 6, seed=15, hidden_size=4)
    with pytest.raises(UsageError, match="num_samples"):
        generate_batch_ids(model, [1], 5, 0)
    with pytest.raises(UsageError, match="prefix"):
        generate_batch_ids(model, [], 5, 2)
    with pytest.raises(UsageError, match="generators"):
        generate_batch_ids(model, [1], 5, 3, Sampling(), [torch.Generator()] * 2)
    assert generate_batch_ids(model, [1], 0, 2) == [[], []]


def test_generation_restores_training_mode_and_streams_lazily():
    model = random_model("lstm", 8, seed=16, hidden_size=6, embed_size=3)
    model.train()
    stream = generate_ids(model, [1], 1000, Sampling(greedy=True))
    first = next(stream)  # the first token does not wait for a whole chunk
    assert first != 0 and not model.training
    stream.close()
    assert model.training
    generate_batch_ids(model, [1], 5, 2)
    assert model.training


def test_noise_blocks_do_not_change_the_draws():
    """Drawing a row's race noise 64 steps at a time gives the tokens of drawing it step by step."""
    logits = torch.randn(100, 2, 9, generator=torch.Generator().manual_seed(0))
    logits[:, :, 0] = -float("inf")
    sampling = Sampling(temperature=0.9, top_p=0.95)
    cpu = torch.device("cpu")
    for make_generators in (lambda: torch.Generator().manual_seed(1),  # one row, one generator
                            lambda: [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]):
        rows = 1 if isinstance(make_generators(), torch.Generator) else 2
        blocked = TokenChooser(sampling, rows, 9, cpu, make_generators())
        stepwise = TokenChooser(sampling, rows, 9, cpu, make_generators(), block=1)
        for z in logits[:, :rows]:
            assert torch.equal(blocked.choose(z).clone(), stepwise.choose(z))


def test_language_model_generate_batch_matches_generate():
    torch.manual_seed(0)
    vocab = Vocab(list("hello world, the quick brown fox"))
    lm = LanguageModel(random_model("gru", len(vocab), seed=17, hidden_size=12, embed_size=6), vocab)
    greedy = lm.generate("the", 30, greedy=True)
    assert lm.generate_batch("the", 30, 3, greedy=True) == [greedy] * 3
    samples = lm.generate_batch("the", 30, 3, temperature=1.3, seed=40)
    assert samples == [lm.generate("the", 30, temperature=1.3, seed=40 + i) for i in range(3)]
    assert all(s.startswith("the") and len(s) == 33 for s in samples)


def test_generation_tokens_per_second_is_positive():
    model = random_model("rnn-scratch", 10, seed=18, hidden_size=8)
    assert generation_tokens_per_second(model, 50) > 0
    assert generation_tokens_per_second(model, 20, batch_size=4, greedy=False) > 0


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=repr)
def test_sampling_choose_keeps_its_draws(sampling):
    logits = torch.randn(20, 12, generator=torch.Generator().manual_seed(3)) * 2
    ours, reference = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    for z in logits:
        assert sampling.choose(z, ours) == multinomial_choice(z, sampling, reference)


def test_cli_num_samples_goes_through_the_batch_and_keeps_per_sample_seeds(tmp_path, capsys):
    import json

    from rnnlab.cli import main
    corpus = tmp_path / "fox.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    out = tmp_path / "ck"
    assert main(["train", "--corpus", str(corpus), "--model", "gru", "--hidden", "12", "--layers", "1",
                 "--embed", "6", "--batch-size", "4", "--num-steps", "8", "--sample-length", "0",
                 "--epochs", "1", "--out", str(out), "--json"]) == 0
    capsys.readouterr()

    def samples(*extra):
        assert main(["generate", str(out), "--prefix", "the ", "--length", "25", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])["samples"]

    batch = samples("--num-samples", "3", "--seed", "5", "--temperature", "1.5")
    assert batch == [samples("--seed", str(5 + i), "--temperature", "1.5")[0] for i in range(3)]
    assert main(["generate", str(out), "--prefix", "the ", "--length", "10", "--num-samples", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and all(line.startswith("the ") and len(line) == 14 for line in printed)


def test_cli_prompts_from_a_file_several_at_once_and_beam_search(tmp_path, capsys, monkeypatch):
    import json

    from rnnlab.cli import main
    from rnnlab.lm import LanguageModel
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fox.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    assert main(["-q", "train", "--corpus", "fox.txt", "--model", "gru", "--hidden", "12", "--layers", "1",
                 "--embed", "6", "--batch-size", "4", "--num-steps", "8", "--sample-length", "0",
                 "--epochs", "1", "--out", "ck"]) == 0
    capsys.readouterr()

    def run(*extra):
        assert main(["-q", "generate", "ck", "--length", "12", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    (tmp_path / "one.txt").write_text("the lazy\n")  # the editor's final line break is not part of it
    assert run("--prefix-file", "one.txt", "--seed", "3")["samples"] == run("--prefix", "the lazy", "--seed", "3")["samples"]
    (tmp_path / "many.txt").write_text("the quick\n\n  \nover the\r\nd\n")
    from_file = run("--prefix-file", "many.txt", "--prompts-per-line", "--greedy")
    repeated = run("--prefix", "the quick", "--prefix", "over the", "--prefix", "d", "--greedy")
    assert from_file == repeated and from_file["prompts"] == ["the quick", "over the", "d"]
    lm = LanguageModel.load(tmp_path / "ck")
    assert [t["text"] for t in from_file["texts"]] == [lm.generate(p, 12, greedy=True) for p in from_file["prompts"]]
    assert all(t["log_prob"] < 0 for t in from_file["texts"])
    beam = run("--prefix", "the", "--prefix", "fox", "--beam", "3", "--stop", ".")
    expected = [lm.beam_search(p, 12, beam=3, stop=["."]) for p in ("the", "fox")]
    assert [t["text"] for t in beam["texts"]] == [g.text for g in expected]
    assert [t["score"] for t in beam["texts"]] == pytest.approx([g.score for g in expected])
    assert main(["-q", "generate", "ck", "--prefix", "the", "--prefix", "a", "--length", "5", "--beam", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [lm.generate(p, 5, greedy=True) for p in ("the", "a")]
    # --stop when sampling: the streamed text (one prompt, printed) and the batched one (--json) end at it
    assert main(["-q", "generate", "ck", "--prefix", "the", "--length", "60", "--seed", "4", "--stop", " "]) == 0
    assert capsys.readouterr().out == lm.generate("the", 60, seed=4, stop=" ") + "\n"
    sampled = run("--prefix", "the", "--prefix", "fox", "--seed", "4", "--stop", " ", "--stop", "o")
    assert sampled["stop"] == [" ", "o"]
    assert [t["text"] for t in sampled["texts"]] == [
        g.text for g in lm.generate_prompts(["the", "fox"], 12, seed=4, stop=[" ", "o"])]


def test_single_stream_steps_on_one_thread_but_the_caller_keeps_its_threads():
    model = build_model("rnn-scratch", 9, seed=0, hidden_size=8)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = [torch.get_num_threads() for _ in generate_ids(model, [1], 70)]
        assert seen == [2] * 70  # chunks run on one thread; never while the caller holds a token
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
