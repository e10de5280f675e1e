"""minGRU and minLSTM (models/parallel.py): the parallel scan against the step-by-step
recurrence in float64 (outputs and gradients, a nonzero initial state, randomized
truncation), segments carried like one long sequence, bf16, and a trained checkpoint
scored through the token-by-token path."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.errors import UsageError
from rnnlab.models import build_model, model_from_config
from rnnlab.models.parallel import _LinearScan, sequential_scan

CELLS = ("mingru", "minlstm")


class ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = float(scale)
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def reference_scan(P, h0, cell, xi=None):
    """The recurrence in autograd's own ops, one step at a time (xi: scale into step t - 1)."""
    D = h0.shape[-1]
    h, outputs = h0, []
    for t in range(P.shape[1]):
        if xi is not None:
            h = ScaleGrad.apply(h, xi[t])
        outputs.append(sequential_scan(P[:, t:t + 1], h, cell)[:, 0])
        h = outputs[-1]
    return torch.stack(outputs, 1)


def gradients(fn, P, h0, weights):
    P, h0 = P.clone().requires_grad_(), h0.clone().requires_grad_()
    out = fn(P, h0)
    ((out * weights).sum() + 0.3 * (out[:, -1] ** 2).sum()).backward()  # the final state's gradient too
    return out.detach(), P.grad, h0.grad


@settings(max_examples=40, deadline=None, derandomize=True)
@given(cell=st.sampled_from(CELLS), batch=st.integers(1, 4), steps=st.integers(1, 9), width=st.integers(1, 6),
       seed=st.integers(0, 1000), randomized=st.booleans())
def test_parallel_scan_equals_the_step_by_step_recurrence(cell, batch, steps, width, seed, randomized):
    g = torch.Generator().manual_seed(seed)
    groups = 2 if cell == "mingru" else 3
    P = torch.randn(batch, steps, groups * width, generator=g, dtype=torch.float64) * 2
    h0 = torch.randn(batch, width, generator=g, dtype=torch.float64)
    weights = torch.randn(batch, steps, width, generator=g, dtype=torch.float64)
    xi = (torch.rand(steps, generator=g, dtype=torch.float64) < 0.6).double() / 0.6 if randomized else None
    fast = gradients(lambda P, h0: _LinearScan.apply(P, h0, xi, cell), P, h0, weights)
    slow = gradients(lambda P, h0: reference_scan(P, h0, cell, xi), P, h0, weights)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_scan_gradcheck(cell):
    g = torch.Generator().manual_seed(1)
    P = torch.randn(2, 5, (2 if cell == "mingru" else 3) * 3, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P, h0: _LinearScan.apply(P, h0, None, cell), (P, h0))


def model(cell, **options):
    options = {"hidden_size": 6, "num_layers": 2, "mlp_ratio": 1.5, **options}
    return build_model(cell, 11, seed=3, **options).double()


@pytest.mark.parametrize("cell", CELLS)
def test_segments_with_the_state_carried_equal_one_long_sequence(cell):
    """Outputs, and gradients when the state is not detached, of [X1 | X2] carried = one pass over X."""
    net = model(cell).eval()
    X = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(0))
    h0 = torch.randn(2, 3, 6, dtype=torch.float64)
    long_logits, long_state = net(X, h0)
    loss_long = long_logits.square().mean()
    grads_long = torch.autograd.grad(loss_long, list(net.parameters()))
    first, state = net(X[:, :5], h0)
    second, state = net(X[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), long_logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state, long_state, rtol=1e-12, atol=1e-12)
    loss = torch.cat([first, second], 1).square().mean()
    for a, b in zip(torch.autograd.grad(loss, list(net.parameters())), grads_long):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_one_token_at_a_time_equals_the_whole_segment(cell):
    """The path of generation and streaming evaluation: T = 1 calls, state carried."""
    from rnnlab.models.stepping import make_stepper
    net = model(cell).eval()
    X = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(1))
    logits, _ = net(X, net.begin_state(2))
    stepper = make_stepper(net, batch_size=2)
    stepped = torch.stack([stepper.step(X[:, t]).clone() for t in range(9)], 1)
    torch.testing.assert_close(stepped, logits, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell", CELLS)
def test_bf16_products_keep_a_float32_scan_close_to_fp32(cell):
    from rnnlab.precision import autocast
    torch.manual_seed(0)
    net = build_model(cell, 30, seed=0, hidden_size=64, num_layers=2, mlp_ratio=2.0).eval()
    X = torch.randint(0, 30, (4, 40))
    exact, state = net(X, net.begin_state(4))
    with autocast("cpu", "bf16"):
        approx, state16 = net(X, net.begin_state(4))
    assert state16.dtype == torch.float32  # the carried state (and the scan) stay float32
    probs, probs16 = exact.float().softmax(-1), approx.float().softmax(-1)
    assert (probs - probs16).abs().max() < 0.02  # bf16 has 8 bits of mantissa


def test_registry_checks_and_config_round_trip():
    for cell in CELLS:
        net = build_model(cell, 20, hidden_size=8, num_layers=3, mlp_ratio=0.0, dropout=0.1, tie_weights=True)
        again = model_from_config(net.config())
        assert again.config() == net.config()
        assert again.output.weight is again.embedding.weight
        assert again.blocks[0].mlp is None
    with pytest.raises(UsageError, match="mlp_ratio"):
        build_model("mingru", 20, mlp_ratio=-1.0)
    with pytest.raises(UsageError, match="embed_size"):
        build_model("minlstm", 20, embed_size=8)
    with pytest.raises(UsageError, match="dropout"):
        build_model("mingru", 20, dropout=1.0)


@pytest.mark.parametrize("cell,bptt", [("mingru", "truncated"), ("minlstm", "randomized"), ("mingru", "full")])
def test_trained_checkpoint_scores_the_same_token_by_token(tmp_path, cell, bptt):
    """rnnlab train -> checkpoint -> evaluate (parallel scan over chunks) = the stepper's NLL."""
    from rnnlab.evaluation import evaluate
    from rnnlab.lm import LanguageModel
    from rnnlab.models.stepping import make_stepper
    from rnnlab.tasks import lm_run as run
    from rnnlab.training.config import make_config
    text = "the quick brown fox jumps over the lazy dog. " * 60
    corpus = tmp_path / "text.txt"
    corpus.write_text(text)
    config = make_config(corpus=str(corpus), model=cell, hidden_size=16, num_layers=2, mlp_ratio=1.0,
                         batch_size=4, num_steps=16, epochs=2, bptt=bptt, sample_length=0, lr=0.01)
    _, summary = run.train(config, out_dir=tmp_path / "run", baselines=False)
    # (full BPTT: one update per epoch, so two updates in all)
    assert math.isfinite(summary["val_perplexity"]) and (bptt == "full" or summary["val_perplexity"] < 30)
    lm = LanguageModel.load(tmp_path / "run")
    ids = lm.encode(text[:300])
    parallel = evaluate(lm.model, ids, rows=1, num_steps=64)
    stepper = make_stepper(lm.model, batch_size=1)
    nll = 0.0
    for token, target in zip(ids[:-1], ids[1:]):
        logits = stepper.step(torch.tensor([int(token)]))
        nll -= torch.log_softmax(logits[0].double(), -1)[int(target)].item()
    assert nll / (len(ids) - 1) == pytest.approx(math.log(parallel["perplexity"]), rel=1e-5)
