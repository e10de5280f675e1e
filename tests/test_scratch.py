"""The from-scratch RNN: hand-written BPTT against autograd and finite differences (float64)."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.models import build_model, model_from_config
from rnnlab.models.scratch import ScratchRNN, _RNNFunction


def make(vocab=7, hidden=5, seed=0):
    model = build_model("rnn-scratch", vocab, seed=seed, hidden_size=hidden, init_std=0.5).double()
    with torch.no_grad():  # non-zero biases so their gradients are exercised too
        model.b_h.normal_(0, 0.3)
        model.b_q.normal_(0, 0.3)
    return model


def reference(params, X, h0, xi=None):
    """The same RNN in plain autograd ops with an explicit one-hot product (d2l's code)."""
    W_xh, W_hh, b_h, W_hq, b_q = params
    h, outputs = h0, []
    for t in range(X.shape[1]):
        if xi is not None:
            h = ScaleGrad.apply(h, xi[t])
        x = F.one_hot(X[:, t], W_xh.shape[0]).to(W_xh.dtype)
        h = torch.tanh(x @ W_xh + h @ W_hh + b_h)
        outputs.append(h @ W_hq + b_q)
    return torch.stack(outputs, 1), h


class ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = float(scale)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def loss_fn(logits, last, Y):
    """Cross-entropy plus a term on the final state, so dL/dH_T is exercised."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1)) + (last ** 2).sum() * 0.1


def grads_scratch(model, X, Y, h0, xi=None):
    model.zero_grad()
    h0 = h0.clone().requires_grad_()
    logits, last = model(X, h0.unsqueeze(0), xi)
    loss_fn(logits, last[0], Y).backward()
    return [p.grad.clone() for p in model.parameters()] + [h0.grad.clone()]


def grads_reference(model, X, Y, h0, xi=None):
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    h0 = h0.clone().requires_grad_()
    logits, last = reference(params, X, h0, xi)
    loss_fn(logits, last, Y).backward()
    return [p.grad for p in params] + [h0.grad]


def assert_close(got, want, tol=1e-6):
    for a, b in zip(got, want):
        scale = b.abs().max().clamp_min(1e-12)
        assert float((a - b).abs().max() / scale) < tol


def data(batch=3, steps=6, vocab=7, hidden=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(0, vocab, (batch, steps), generator=g)
    Y = torch.randint(0, vocab, (batch, steps), generator=g)
    h0 = torch.randn(batch, hidden, generator=g, dtype=torch.float64) * 0.5
    return X, Y, h0


def test_forward_matches_the_one_hot_reference():
    model = make()
    X, _, h0 = data()
    logits, last = model(X, h0.unsqueeze(0))
    ref_logits, ref_last = reference(list(model.parameters()), X, h0)
    assert torch.allclose(logits, ref_logits, atol=1e-12) and torch.allclose(last[0], ref_last, atol=1e-12)


def test_embedding_gather_equals_one_hot_product():
    W = torch.randn(9, 4, dtype=torch.float64)
    tokens = torch.tensor([[0, 3, 8], [8, 8, 1]])
    assert torch.equal(W[tokens], F.one_hot(tokens, 9).double() @ W)


def test_hand_written_gradients_match_autograd_including_the_initial_state():
    model = make()
    X, Y, h0 = data()
    assert_close(grads_scratch(model, X, Y, h0), grads_reference(model, X, Y, h0))


def test_gradients_match_finite_differences():
    model = make(vocab=4, hidden=3)
    X, _, h0 = data(batch=2, steps=4, vocab=4, hidden=3)
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    h0 = h0.clone().requires_grad_()

    def f(h0, W_xh, W_hh, b_h, W_hq, b_q):
        logits, last = _RNNFunction.apply(X.t().contiguous(), h0, W_xh, W_hh, b_h, W_hq, b_q, None)
        return logits, last

    assert torch.autograd.gradcheck(f, (h0, *params), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_truncated_bptt_equals_per_batch_autograd():
    """State carried between two batches but detached: each batch's gradient stops at its start."""
    model = make()
    X, Y, h0 = data(steps=8)
    first, second = (X[:, :4], Y[:, :4]), (X[:, 4:], Y[:, 4:])
    model.zero_grad()
    state = h0.unsqueeze(0)
    for Xb, Yb in (first, second):
        logits, state = model(Xb, state.detach())
        F.cross_entropy(logits.reshape(-1, 7), Yb.reshape(-1)).backward()
    got = [p.grad.clone() for p in model.parameters()]
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    logits, mid = reference(params, first[0], h0)
    F.cross_entropy(logits.reshape(-1, 7), first[1].reshape(-1)).backward()
    logits, _ = reference(params, second[0], mid.detach())
    F.cross_entropy(logits.reshape(-1, 7), second[1].reshape(-1)).backward()
    assert_close(got, [p.grad for p in params])


def test_full_bptt_across_batches_equals_autograd_over_the_whole_sequence():
    """State carried with its graph: the second batch's gradient flows into the first."""
    model = make()
    X, Y, h0 = data(steps=8)
    model.zero_grad()
    h0_leaf = h0.clone().requires_grad_()
    logits1, state = model(X[:, :4], h0_leaf.unsqueeze(0))
    logits2, state = model(X[:, 4:], state)
    logits = torch.cat([logits1, logits2], dim=1)
    loss_fn(logits, state[0], Y).backward()
    got = [p.grad.clone() for p in model.parameters()] + [h0_leaf.grad]
    assert_close(got, grads_reference(model, X, Y, h0))


def test_randomized_truncation_matches_autograd_for_a_fixed_draw():
    model = make()
    X, Y, h0 = data(steps=6)
    xi = torch.tensor([1 / 0.7, 0.0, 1 / 0.7, 1 / 0.7, 0.0, 1 / 0.7], dtype=torch.float64)
    assert_close(grads_scratch(model, X, Y, h0, xi), grads_reference(model, X, Y, h0, xi))


def test_randomized_truncation_is_unbiased():
    """Sum over every xi in {0, 1/p}^T weighted by its probability = the full gradient."""
    model = make(vocab=5, hidden=4)
    X, Y, h0 = data(batch=2, steps=4, vocab=5, hidden=4)
    p = 0.6
    expected = grads_scratch(model, X, Y, h0)
    total = [torch.zeros_like(g) for g in expected]
    for keep in itertools.product([False, True], repeat=X.shape[1]):
        prob = 1.0
        for k in keep:
            prob *= p if k else 1 - p
        xi = torch.tensor([1 / p if k else 0.0 for k in keep], dtype=torch.float64)
        for acc, g in zip(total, grads_scratch(model, X, Y, h0, xi)):
            acc += prob * g
    assert_close(total, expected, tol=1e-10)


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), steps=st.integers(1, 6), vocab=st.integers(2, 8), hidden=st.integers(1, 6),
       seed=st.integers(0, 10_000))
def test_property_hand_written_equals_autograd(batch, steps, vocab, hidden, seed):
    model = make(vocab=vocab, hidden=hidden, seed=seed)
    X, Y, h0 = data(batch, steps, vocab, hidden, seed)
    assert_close(grads_scratch(model, X, Y, h0), grads_reference(model, X, Y, h0))


def test_interface_shapes_and_config_round_trip():
    model = build_model("rnn-scratch", 11, hidden_size=8)
    state = model.begin_state(3)
    assert state.shape == (1, 3, 8)
    logits, new_state = model(torch.randint(0, 11, (3, 5)), state)
    assert logits.shape == (3, 5, 11) and new_state.shape == (1, 3, 8)
    clone = model_from_config(model.config())
    assert isinstance(clone, ScratchRNN) and clone.config() == model.config()
    assert [n for n, _ in model.named_parameters()] == ["W_xh", "W_hh", "b_h", "W_hq", "b_q"]


def test_initialisation_follows_d2l():
    model = build_model("rnn-scratch", 28, seed=0, hidden_size=512)
    with torch.no_grad():
        assert float(model.b_h.abs().max()) == 0 and float(model.b_q.abs().max()) == 0
        assert abs(float(model.W_hh.std()) - 0.01) < 5e-4
