"""rnnlab.training.bptt: the three strategies drive a model as their docstrings say."""
from __future__ import annotations

import pytest
import torch

from rnnlab.models import build_model, token_loss
from rnnlab.training.bptt import Full, Randomized, Truncated, make_bptt, randomized_scales
from rnnlab.training.config import make_config


def batches(count=3, batch=2, steps=5, vocab=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, vocab, (batch, steps), generator=generator),
             torch.randint(0, vocab, (batch, steps), generator=generator)) for _ in range(count)]


def model(**options):
    return build_model("lstm", 7, seed=0, hidden_size=6, num_layers=1, embed_size=4, **options)


@pytest.mark.parametrize("sampling,bptt,kind,carry", [("sequential", "truncated", Truncated, True),
                                                      ("random", "truncated", Truncated, False),
                                                      ("sequential", "randomized", Randomized, True),
                                                      ("sequential", "full", Full, None)])
def test_make_bptt_follows_the_configuration(sampling, bptt, kind, carry):
    strategy = make_bptt(make_config(sampling=sampling, bptt=bptt, bptt_keep_prob=0.7, seed=5, full_bptt_max_mb=9.0))
    assert type(strategy) is kind and strategy.name == bptt
    if carry is not None:
        assert strategy.carry_state is carry
    if kind is Randomized:
        assert (strategy.keep_prob, strategy.seed) == (0.7, 5)
    if kind is Full:
        assert strategy.max_megabytes == 9.0


def test_truncated_carries_the_detached_float32_state_only_when_sequential():
    net, (X, Y) = model(), batches(1)[0]
    loss, tokens, carry = Truncated(carry_state=True).loss(net, (X, Y), None, step=0)
    expected, state = net(X, net.begin_state(2))
    assert tokens == 10 and loss.item() == pytest.approx(token_loss(expected, Y).item(), abs=1e-6)
    assert all(not s.requires_grad and s.dtype == torch.float32 for s in carry)
    torch.testing.assert_close(carry[0], state[0].float().detach())
    # the next batch starts from it: the same loss as running the model from that state
    X2, Y2 = batches(2)[1]
    again, _, _ = Truncated(carry_state=True).loss(net, (X2, Y2), carry, step=1)
    from_state, _ = net(X2, carry)
    assert again.item() == pytest.approx(token_loss(from_state, Y2).item(), abs=1e-6)
    assert Truncated(carry_state=False).loss(net, (X, Y), carry, step=0)[2] is None


def test_randomized_passes_the_scales_of_its_seed_and_step():
    seen = []
    net = model()
    original = net.forward
    net.forward = lambda X, state, grad_scale=None: seen.append(grad_scale) or original(X, state, grad_scale)
    Randomized(carry_state=True, keep_prob=0.5, seed=3).loss(net, batches(1)[0], None, step=11)
    assert torch.equal(seen[0], randomized_scales(5, 0.5, 3, 11))


def test_full_is_one_step_whose_gradient_reaches_the_first_batch():
    strategy, data = Full(max_megabytes=100.0), batches(3)
    assert strategy.num_batches(data) == 1 and list(strategy.batches(data)) == [data]
    net = model()
    loss, tokens, carry = strategy.loss(net, data, None, step=0)
    assert tokens == 30 and carry is None
    ours = torch.autograd.grad(loss, net.rnn.weight_hh_l0)[0]

    def one_sequence(detach: bool):  # the three batches as one sequence, the state carried
        state, total = net.begin_state(2), 0.0
        for X, Y in data:
            logits, state = net(X, state)
            state = tuple(s.detach() for s in state) if detach else state
            total = total + token_loss(logits, Y, reduction="sum")
        return total / 30

    carried = one_sequence(detach=False)
    assert loss.item() == pytest.approx(carried.item(), abs=1e-6)
    torch.testing.assert_close(ours, torch.autograd.grad(carried, net.rnn.weight_hh_l0)[0], rtol=1e-5, atol=1e-7)
    cut = torch.autograd.grad(one_sequence(detach=True), net.rnn.weight_hh_l0)[0]
    assert (ours - cut).abs().max() > 1e-6  # gradients crossed the batch boundaries


def test_full_refuses_beyond_its_memory_bound():
    from rnnlab.errors import TrainingError
    with pytest.raises(TrainingError, match="--full-bptt-max-mb"):
        Full(max_megabytes=1e-6).check_memory(10_000, model())
    Full(max_megabytes=1e6).check_memory(10_000, model())
