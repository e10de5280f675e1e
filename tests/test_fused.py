"""The fused GRU layer computes nn.GRU's function and gradients (float64, so any
difference is a bug, not rounding), for truncated, full and randomized BPTT."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.models import build_model
from rnnlab.models.fused import gru_forward, supports_fused_gru


def make(layers=2, hidden=6, embed=4, vocab=9, dropout=0.0, seed=0):
    model = build_model("gru", vocab, seed=seed, hidden_size=hidden, num_layers=layers, embed_size=embed,
                        dropout=dropout).double()
    with torch.no_grad():
        for name, p in model.rnn.named_parameters():
            if "bias" in name:
                p.normal_(0, 0.3)  # non-zero biases, so their gradients are exercised
    return model


def loss_and_grads(model, batches, state, fused, xi=None, carry_graph=False):
    """Sum of losses over consecutive batches with the state carried (detached unless carry_graph)."""
    model.fused = fused
    model.zero_grad()
    h0 = state.clone().requires_grad_()
    state, total = h0, 0.0
    for X, Y in batches:
        logits, state = model(X, state, xi)
        total = total + torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
        if not carry_graph:
            state = state.detach()
    total = total + (state ** 2).sum() * 0.1 if carry_graph else total
    total.backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None] + [h0.grad.clone()], logits


def batches(count=2, batch=3, steps=5, vocab=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, vocab, (batch, steps), generator=g), torch.randint(0, vocab, (batch, steps), generator=g))
            for _ in range(count)]


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("mode", ["truncated", "full", "randomized"])
def test_fused_gru_equals_nn_gru(layers, mode):
    model = make(layers=layers)
    data = batches()
    state = torch.randn(layers, 3, 6, dtype=torch.double) * 0.5  # a carried state
    xi = torch.tensor([1.0, 0.0, 2.0, 1.0, 0.5], dtype=torch.double) if mode == "randomized" else None
    fused, logits_fused = loss_and_grads(model, data, state, True, xi, carry_graph=mode == "full")
    reference, logits_ref = loss_and_grads(model, data, state, False, xi, carry_graph=mode == "full")
    torch.testing.assert_close(logits_fused, logits_ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(fused, reference):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_reference_randomized_path_is_the_unrolled_nn_gru():
    """Guard the comparison above: with fused off, randomized BPTT really unrolls nn.GRU."""
    model = make(layers=1)
    model.fused = False
    X = torch.randint(0, 9, (2, 4))
    xi = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.double)
    h0 = torch.randn(1, 2, 6, dtype=torch.double, requires_grad=True)
    logits, _ = model(X, h0, xi)
    logits.sum().backward()
    assert torch.count_nonzero(h0.grad) == 0  # xi_0 = 0 cuts the gradient into the initial state


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 7), batch=st.integers(1, 4), hidden=st.integers(1, 8), seed=st.integers(0, 10**6))
def test_fused_gru_layer_matches_nn_gru_on_random_shapes(steps, batch, hidden, seed):
    torch.manual_seed(seed)
    gru = torch.nn.GRU(3, hidden, 1, batch_first=True).double()
    x = torch.randn(batch, steps, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(1, batch, hidden, dtype=torch.double, requires_grad=True)
    out_ref, last_ref = gru(x, h0)
    grads_ref = torch.autograd.grad((out_ref.sin().sum() + last_ref.cos().sum()), [x, h0, *gru.parameters()])
    out, last = gru_forward(gru, x, h0)
    grads = torch.autograd.grad((out.sin().sum() + last.cos().sum()), [x, h0, *gru.parameters()])
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(last, last_ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_dropout_between_layers_is_applied_in_training_only():
    model = make(layers=2, dropout=0.5)
    X = torch.randint(0, 9, (2, 6))
    state = model.begin_state(2).double()
    model.eval()
    a, _ = model(X, state)
    b, _ = model(X, state)
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(0)
    c, _ = model(X, state)
    torch.manual_seed(1)
    d, _ = model(X, state)
    assert not torch.equal(c, d)


def test_fused_gru_is_used_only_where_it_applies():
    gru = torch.nn.GRU(3, 4, batch_first=True)
    assert supports_fused_gru(gru, torch.device("cpu"))
    assert not supports_fused_gru(gru, torch.device("cuda"))
    assert not supports_fused_gru(torch.nn.GRU(3, 4, batch_first=True, bidirectional=True), torch.device("cpu"))
    assert not supports_fused_gru(torch.nn.LSTM(3, 4, batch_first=True), torch.device("cpu"))

