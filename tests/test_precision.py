"""bfloat16 training: the same function and gradients as float32 within stated tolerances.

Tolerances: bfloat16 keeps 8 significant bits (relative rounding 2^-8 = 0.4%), and
the errors of a 12-step recurrence add up, so logits must agree within 3% of their
scale and every gradient within 5% (relative Frobenius norm of the difference).
"""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from rnnlab.data.dataset import prepare_text
from rnnlab.errors import UsageError
from rnnlab.models import build_model
from rnnlab.precision import autocast, compute_dtype, resolve_precision
from rnnlab.training.config import make_config
from rnnlab.tasks.lm import language_model_trainer as Trainer

LOGIT_TOLERANCE = 0.03
GRAD_TOLERANCE = 0.05


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float((approx.float() - exact.float()).norm() / exact.float().norm().clamp_min(1e-12))


def run(model, X, Y, state, precision, grad_scale=None):
    """Loss of a forward at ``precision`` plus a term on the final state; returns logits, grads."""
    model.zero_grad()
    state = state.clone().requires_grad_() if isinstance(state, torch.Tensor) else state
    with autocast("cpu", precision):
        logits, last = model(X, state, grad_scale) if grad_scale is not None else model(X, state)
    last = last[0] if isinstance(last, tuple) else last
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), Y.reshape(-1)) + last.float().pow(2).mean()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    if isinstance(state, torch.Tensor):
        grads["initial state"] = state.grad.clone()
    return logits.float().detach(), grads


def assert_close(model, X, Y, state, grad_scale=None):
    logits32, grads32 = run(model, X, Y, state, "fp32", grad_scale)
    logits16, grads16 = run(model, X, Y, state, "bf16", grad_scale)
    assert relative_error(logits16, logits32) < LOGIT_TOLERANCE
    assert grads16.keys() == grads32.keys()
    for name in grads32:
        assert grads16[name].dtype == torch.float32, name  # gradients land on float32 master weights
        assert relative_error(grads16[name], grads32[name]) < GRAD_TOLERANCE, name


@pytest.mark.parametrize("with_xi", [False, True])
def test_scratch_bf16_matches_fp32(with_xi):
    torch.manual_seed(0)
    model = build_model("rnn-scratch", 20, seed=1, hidden_size=64, init_std=0.1)
    X, Y = torch.randint(0, 20, (6, 12)), torch.randint(0, 20, (6, 12))
    carried = torch.randn(1, 6, 64) * 0.5  # a state carried from an earlier batch (sequential sampling)
    xi = torch.tensor([0.0, 1.25] * 6) if with_xi else None  # randomized truncation's scales
    assert_close(model, X, Y, carried, xi)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_torch_layers_bf16_match_fp32(cell):
    model = build_model(cell, 20, seed=1, hidden_size=32, num_layers=2, embed_size=16, dropout=0.0)
    X, Y = torch.randint(0, 20, (4, 10)), torch.randint(0, 20, (4, 10))
    assert_close(model, X, Y, model.begin_state(4))


def test_compute_dtype_follows_the_context():
    assert compute_dtype("cpu") is None
    with autocast("cpu", "bf16"):
        assert compute_dtype("cpu") == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert compute_dtype("cpu") is None


def test_resolve_precision(monkeypatch, caplog):
    import rnnlab.precision as precision
    assert resolve_precision("fp32") == "fp32"
    monkeypatch.setattr(precision, "bf16_native", lambda device="cpu": True)
    monkeypatch.setattr(precision, "bf16_supported", lambda device="cpu": True)
    assert resolve_precision("auto") == "bf16" and resolve_precision("bf16") == "bf16"
    # bfloat16 by conversion (AVX-512 without BF16): slower than float32, so only when asked for
    monkeypatch.setattr(precision, "bf16_native", lambda device="cpu": False)
    with caplog.at_level(logging.WARNING, logger="rnnlab"):
        assert resolve_precision("auto") == "fp32"
        assert caplog.text == ""
        assert resolve_precision("bf16") == "bf16"
    assert "no bfloat16 instructions" in caplog.text
    caplog.clear()
    monkeypatch.setattr(precision, "bf16_supported", lambda device="cpu": False)
    assert resolve_precision("auto") == "fp32"
    with caplog.at_level(logging.WARNING, logger="rnnlab"):
        assert resolve_precision("bf16") == "fp32"  # falls back, saying so once
    assert "not supported" in caplog.text
    with pytest.raises(UsageError, match="unknown precision 'fp8'"):
        resolve_precision("fp8")
    with pytest.raises(UsageError, match="unknown precision"):
        make_config(precision="half")


@pytest.mark.parametrize("flags, native", [({"avx512_bf16": True, "amx_bf16": False}, True),
                                           ({"avx512_bf16": False, "amx_bf16": True}, True),
                                           ({"avx512_bf16": False, "amx_bf16": False}, False)])
def test_bf16_native_on_x86_reads_the_cpus_bfloat16_instructions(monkeypatch, flags, native):
    import platform

    import rnnlab.precision as precision
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: {"avx512_f": True, **flags})
    monkeypatch.setattr(precision, "bf16_supported", lambda device="cpu": True)
    assert precision.bf16_native("cpu") is native
    monkeypatch.setattr(precision, "bf16_supported", lambda device="cpu": False)  # oneDNN cannot run it at all
    assert precision.bf16_native("cpu") is False
    # elsewhere (an ARM CPU), oneDNN's own answer
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(precision, "bf16_supported", lambda device="cpu": True)
    assert precision.bf16_native("cpu") is True


TEXT = "the time traveller for so it will be convenient to speak of him was expounding a recondite matter " * 20


@pytest.mark.parametrize("model", ["rnn-scratch", "lstm"])
def test_bf16_training_checkpoints_float32_and_loads_on_fp32(tmp_path, model, monkeypatch):
    import rnnlab.precision as precision
    monkeypatch.setattr(precision, "bf16_supported", lambda device="cpu": True)  # the path runs on any CPU
    config = make_config(model=model, hidden_size=32, num_layers=1, embed_size=8, batch_size=4, num_steps=10,
                         epochs=3, lr=0.01 if model == "lstm" else 1.0, optimizer="adam" if model == "lstm" else "sgd",
                         precision="bf16", sample_length=0, split="0.8,0.1,0.1")
    data = prepare_text(TEXT, mode="d2l", token="char", split=config.split)
    trainer = Trainer(config, data, out_dir=tmp_path / "run")
    summary = trainer.fit()
    assert summary["precision"] == "bf16"
    history = trainer.progress.history
    assert history[-1]["train_perplexity"] < history[0]["train_perplexity"]
    from safetensors.torch import load_file
    tensors = load_file(tmp_path / "run" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in tensors.values())
    from rnnlab.lm import LanguageModel
    lm = LanguageModel.load(tmp_path / "run")  # evaluated in float32, no autocast
    assert abs(lm.score(data.val)["perplexity"] - summary["val_perplexity"]) < 1e-6 * summary["val_perplexity"]
