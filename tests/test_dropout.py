"""rnnlab.models.dropout: the CPU dropout's distribution, gradient and seeding, and the
recurrent models' layer-by-layer path that uses it between layers."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from rnnlab.models import build_model
from rnnlab.models import recurrent
from rnnlab.models.dropout import Dropout, dropout, keep_threshold


@given(st.floats(0.0, 0.999))
def test_threshold_rounds_p_to_a_multiple_of_a_65536th_and_keeps_the_expectation(p):
    threshold, scale = keep_threshold(p)
    dropped = (threshold + 32768) / 65536  # the share of int16 values below the threshold
    assert abs(dropped - p) <= 0.5 / 65536
    assert scale * (1 - dropped) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_each_element_is_dropped_with_probability_p_in_every_lane(p):
    torch.manual_seed(0)
    count = 1 << 20
    out = dropout(torch.ones(count), p)
    _, scale = keep_threshold(p)
    values = out.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(scale, rel=1e-6)
    sigma = math.sqrt(p * (1 - p) / (count // 4))
    for lane in range(4):  # the four 16-bit draws of each 64-bit word are each uniform
        dropped = (out[lane::4] == 0).double().mean().item()
        assert abs(dropped - p) < 5 * sigma, (lane, dropped)
    # neighbouring elements are independent: P(both dropped) = p^2
    both = ((out[0::2] == 0) & (out[1::2] == 0)).double().mean().item()
    assert abs(both - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / (count // 2))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=3), st.floats(0.01, 0.9),
       st.sampled_from([torch.float32, torch.float64, torch.bfloat16]))
def test_output_and_gradient_are_the_kept_elements_scaled(shape, p, dtype):
    x = (torch.rand(shape, dtype=torch.float64) + 0.5).to(dtype).requires_grad_()
    out = dropout(x, p)
    assert out.dtype == dtype and out.shape == x.shape
    _, scale = keep_threshold(p)
    kept = out != 0
    assert torch.equal(out[kept], (x * torch.tensor(scale, dtype=dtype))[kept].detach())
    out.sum().backward()
    expected = torch.where(kept, torch.tensor(scale, dtype=dtype), torch.tensor(0.0, dtype=dtype))
    assert torch.equal(x.grad, expected)


def test_identity_when_evaluating_or_p_is_zero_and_seeded_masks_repeat():
    x = torch.randn(4, 5)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert Dropout(0.5).eval()(x) is x
    torch.manual_seed(3)
    first = dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.5), first)
    assert not torch.equal(dropout(x, 0.5), first)


@pytest.mark.parametrize("cell,options", [("lstm", {}), ("rnn", {}), ("rnn", {"nonlinearity": "relu"})])
def test_layer_by_layer_equals_the_torch_cell(monkeypatch, cell, options):
    """With the between-layer dropout made the identity, the layer-by-layer path that training
    with dropout takes gives nn.LSTM's/nn.RNN's outputs, state and gradients (float64)."""
    torch.manual_seed(0)
    model = build_model(cell, 11, seed=0, hidden_size=7, num_layers=3, embed_size=5, **options).double()
    model.rnn.dropout = 0.4  # the path is taken only with dropout between layers
    X = torch.randint(0, 11, (2, 6))
    state = model.begin_state(2)
    state = tuple(s.double().normal_() for s in state) if cell == "lstm" else state.double().normal_()
    embedded = model.embedding(X).detach()
    assert model.train()._drops_between_layers(embedded)
    monkeypatch.setattr(recurrent, "drop_elements", lambda x, p: x)
    ours, our_state = model._layer_by_layer(embedded, state)
    ours.sum().backward()
    our_grads = [p.grad.clone() for p in model.rnn.parameters()]
    model.zero_grad()
    model.rnn.dropout = 0.0
    theirs, their_state = model.rnn(embedded, state)
    theirs.sum().backward()
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    for a, b in zip(our_state if cell == "lstm" else (our_state,), their_state if cell == "lstm" else (their_state,)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for a, p in zip(our_grads, model.rnn.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=0, atol=1e-12)


def test_training_with_dropout_drops_between_layers_and_evaluation_does_not():
    model = build_model("lstm", 11, seed=0, hidden_size=16, num_layers=2, embed_size=8, dropout=0.5)
    X = torch.randint(0, 11, (2, 6))
    calls = []
    real = recurrent.drop_elements
    recurrent.drop_elements = lambda x, p: calls.append(p) or real(x, p)
    try:
        model.train()(X, model.begin_state(2))
        assert calls == [0.5]
        model.eval()
        first, _ = model(X, model.begin_state(2))
        second, _ = model(X, model.begin_state(2))
        assert torch.equal(first, second) and calls == [0.5]
    finally:
        recurrent.drop_elements = real


def test_locked_dropout_shares_one_mask_across_steps():
    from rnnlab.models.dropout import LockedDropout
    drop = LockedDropout(0.5).train()
    out = drop(torch.ones(3, 50, 8))
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same mask at every step
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(drop.eval()(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))
