"""Training loop: BPTT modes, exact resume, divergence handling, bad configurations."""
from __future__ import annotations

import json
import math

import pytest
import torch

from rnnlab.data.dataset import prepare_text
from rnnlab.errors import CheckpointError, DataError, TrainingError, UsageError
from rnnlab.tasks import lm_run as run
from rnnlab.training.config import make_config
from rnnlab.tasks.lm import language_model_trainer as Trainer
from rnnlab.training.loop import StopTraining

TEXT = ("the time traveller for so it will be convenient to speak of him was expounding a recondite "
        "matter to us his grey eyes shone and twinkled and his usually pale face was flushed and animated ") * 12


def small(**overrides):
    base = dict(model="lstm", hidden_size=16, num_layers=2, dropout=0.1, embed_size=8, batch_size=4,
                num_steps=10, epochs=3, lr=0.01, sample_length=5, split="0.8,0.1,0.1")
    base.update(overrides)
    return make_config(**base)


def dataset(config):
    return prepare_text(TEXT, mode="d2l", token="char", split=config.split)


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("model", ["rnn-scratch", "rnn", "gru", "lstm"])
@pytest.mark.parametrize("sampling,bptt", [("random", "truncated"), ("sequential", "truncated"),
                                           ("sequential", "full"), ("sequential", "randomized")])
def test_every_bptt_mode_lowers_the_loss(model, sampling, bptt):
    config = small(model=model, sampling=sampling, bptt=bptt, epochs=6, lr=0.02, dropout=0.0)
    trainer = Trainer(config, dataset(config))
    summary = trainer.fit()
    history = trainer.progress.history
    assert summary["epochs"] == 6
    assert history[-1]["train_perplexity"] < history[0]["train_perplexity"]
    assert math.isfinite(summary["val_perplexity"])
    expected_steps = 6 if bptt == "full" else None
    if expected_steps:
        assert summary["steps"] == expected_steps  # one update per epoch


def test_gradient_norm_is_logged_before_clipping():
    config = small(clip=1e-6, epochs=1)
    trainer = Trainer(config, dataset(config))
    trainer.fit()
    record = trainer.progress.history[-1]
    assert record["grad_norm_mean"] > 1e-6  # the norm before clipping, not the clipped 1e-6


@pytest.mark.parametrize("stop_at", [5, 8])  # mid-epoch and (near) an epoch boundary
def test_resume_gives_identical_parameters(tmp_path, stop_at):
    # plateau: --max-steps is a stop here, not a schedule horizon (it is one for cosine)
    config = small(sampling="sequential", optimizer="adam", dropout=0.2, epochs=3, eval_every=1, lr_schedule="plateau")
    data = dataset(config)
    straight = Trainer(config, data)
    straight.fit()

    first = Trainer(small(sampling="sequential", optimizer="adam", dropout=0.2, epochs=3, max_steps=stop_at,
                          lr_schedule="plateau"),
                    data, out_dir=tmp_path / "run")
    first.fit()
    assert first.progress.step == stop_at
    # Resume in a fresh Trainer from the files only.
    second = Trainer(config, data, out_dir=tmp_path / "run")
    second.restore(tmp_path / "run")
    second.fit()
    assert second.progress.step == straight.progress.step
    a, b = params(straight.model), params(second.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_through_the_api_reloads_the_corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # recorded paths are read inside the current folder (or --corpus, --data-dir)
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TEXT)
    config = small(corpus=str(corpus), epochs=2, max_steps=3)
    run.train(config, out_dir=tmp_path / "ck")
    trainer, summary = run.resume(tmp_path / "ck", epochs=2)
    assert summary["stopped"] == "epochs" and summary["epochs"] == 2
    corpus.write_text(TEXT + "changed")
    with pytest.raises(DataError, match="changed since the checkpoint"):
        run.resume(tmp_path / "ck", epochs=3)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    config = small(epochs=5)
    trainer = Trainer(config, dataset(config), out_dir=tmp_path / "ck")

    def poison(record):
        if record["epoch"] == 1:
            with torch.no_grad():
                trainer.model.output.bias.fill_(float("nan"))

    trainer.callbacks.append(poison)
    with pytest.raises(TrainingError, match=r"loss became nan at step \d+ \(epoch 2\).*checkpoint"):
        trainer.fit()
    saved = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert saved["progress"]["epoch"] == 1
    from rnnlab.lm import LanguageModel
    lm = LanguageModel.load(tmp_path / "ck")
    assert all(torch.isfinite(p).all() for p in lm.model.parameters())


def test_callback_can_stop_training():
    config = small(epochs=10)
    trainer = Trainer(config, dataset(config))

    def stop(record):
        raise StopTraining

    trainer.callbacks.append(stop)
    summary = trainer.fit()
    assert summary["epochs"] == 1 and summary["stopped"] == "early_stop"


def fit_with_val_perplexities(trainer, values, monkeypatch):
    """Train while the validation perplexity reads ``values`` in turn (the rest is real)."""
    import rnnlab.tasks.lm as loop
    real, values = loop.evaluate, iter(values)

    def scripted(model, ids, **kw):
        return {**real(model, ids, **kw), "perplexity": next(values)}

    monkeypatch.setattr(loop, "evaluate", scripted)
    return trainer.fit()


def test_early_stopping_and_lr_decay(monkeypatch):  # improvement, then a plateau
    config = small(epochs=30, lr=0.5, optimizer="sgd", early_stop=2, lr_schedule="plateau", lr_decay=0.5,
                   lr_patience=1, dropout=0.0)
    trainer = Trainer(config, dataset(config))
    summary = fit_with_val_perplexities(trainer, [5.0, 4.0, 4.5, 4.6, 4.7, 4.8], monkeypatch)
    lrs = [h["lr"] for h in trainer.progress.history]
    assert summary["stopped"] == "early_stop" and summary["epochs"] == 4
    assert lrs == [0.5, 0.5, 0.5, 0.25]  # the lr each epoch trained with; it halves after each plateau
    assert trainer.progress.lr == 0.125


@pytest.mark.parametrize("max_time, stopped_at", [(None, 4), (1000.0, 7)])
def test_a_time_budget_stops_early_only_when_validation_gets_clearly_worse(monkeypatch, max_time, stopped_at):
    """Without a time budget two evaluations without a gain stop the run; with one, only two
    in a row more than CLEARLY_WORSE (2%) above the best do (4.1 and 4.2 against 4.0)."""
    from rnnlab.training.loop import CLEARLY_WORSE
    assert 4.05 < 4.0 * (1 + CLEARLY_WORSE) < 4.1
    config = small(epochs=12, early_stop=2, dropout=0.0, max_time=max_time)
    trainer = Trainer(config, dataset(config))
    summary = fit_with_val_perplexities(trainer, [5.0, 4.0, 4.05, 4.06, 4.03, 4.1, 4.2, 4.3, 4.4, 4.5, 4.6, 4.7],
                                        monkeypatch)
    assert summary["stopped"] == "early_stop" and summary["epochs"] == stopped_at
    assert summary["best_val_perplexity"] == 4.0


def test_tiny_gains_count_as_a_plateau_but_still_update_the_best(tmp_path, monkeypatch):
    config = small(epochs=30, early_stop=2, lr_decay=0.5, dropout=0.0)
    trainer = Trainer(config, dataset(config), out_dir=tmp_path)
    summary = fit_with_val_perplexities(trainer, [5.0, 4.9999, 4.9998, 4.9997], monkeypatch)
    assert summary["stopped"] == "early_stop" and summary["epochs"] == 3
    assert summary["best_val_perplexity"] == 4.9998
    assert json.loads((tmp_path / "best" / "config.json").read_text())["progress"]["best_value"] == 4.9998


def test_full_bptt_refuses_beyond_the_memory_bound():
    config = small(sampling="sequential", bptt="full", full_bptt_max_mb=0.001)
    with pytest.raises(TrainingError, match=r"full BPTT over .*--full-bptt-max-mb"):
        Trainer(config, dataset(config))


@pytest.mark.parametrize("overrides,message", [
    (dict(model="transformer"), "unknown model"),
    (dict(optimizer="lbfgs"), "unknown optimizer"),
    (dict(hidden_size=0), "--hidden must be an integer from 1 to"),
    (dict(batch_size=-1), "--batch-size must be an integer from 1 to"),
    (dict(bptt="sometimes"), "unknown BPTT"),
    (dict(bptt="full", sampling="random"), "needs --sampling sequential"),
    (dict(lr=0), "lr must be a finite number > 0"),
])
def test_bad_configurations_raise_usage_errors(overrides, message):
    with pytest.raises(UsageError, match=message):
        small(**overrides)


def test_corpus_shorter_than_one_batch(tmp_path):
    corpus = tmp_path / "short.txt"
    corpus.write_text("abcdefghij" * 3)
    with pytest.raises(DataError, match=r"batch_size \* num_steps \+ 1"):
        run.train(small(corpus=str(corpus), batch_size=8, num_steps=10))


def test_resume_from_a_folder_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not an rnnlab checkpoint"):
        run.resume(tmp_path)


def test_tampered_checkpoint_is_detected(tmp_path):
    config = small(epochs=1)
    Trainer(config, dataset(config), out_dir=tmp_path).fit()
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    from rnnlab.lm import LanguageModel
    with pytest.raises(CheckpointError, match="checksum"):
        LanguageModel.load(tmp_path)


def test_checkpoint_folder_contents(tmp_path):
    config = small(epochs=2)
    Trainer(config, dataset(config), out_dir=tmp_path).fit()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best", "config.json", "metrics.jsonl", "model.safetensors", "optimizer.safetensors",
                     "perplexity.png", "state.safetensors"]
    best = json.loads((tmp_path / "best" / "config.json").read_text())
    assert best["progress"]["best_value"] == min(
        json.loads(line)["val_perplexity"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines())
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["vocab"]["idx_to_token"][0] == "<unk>"
    assert saved["preprocessing"] == {"mode": "d2l", "token": "char"}
    assert saved["progress"]["epoch"] == 2
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_resume_is_exact_with_step_evaluations_and_lr_decay(tmp_path):
    """The extra evaluation at a max_steps stop must not change the resumed lr schedule."""
    options = dict(sampling="sequential", optimizer="adam", dropout=0.2, epochs=3, eval_every_steps=3,
                   lr_schedule="plateau", lr_decay=0.5, lr_patience=1, early_stop=0)
    first = Trainer(small(**options, max_steps=7), dataset(small(**options)), out_dir=tmp_path / "run")
    first.fit()
    assert_resume_matches_straight_run(options, tmp_path / "run")


def assert_resume_matches_straight_run(options, folder):
    """A fresh Trainer restored from ``folder`` ends with the lr and weights of one uninterrupted run."""
    data = dataset(small(**options))
    straight = Trainer(small(**options), data)
    straight.fit()
    second = Trainer(small(**options), data, out_dir=folder)
    second.restore(folder)
    second.fit()
    assert second.progress.lr == straight.progress.lr
    a, b = params(straight.model), params(second.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cosine_schedule_factor():
    from rnnlab.training.loop import FINAL_LR_RATIO, WARMUP_FRACTION, cosine_lr_factor
    assert cosine_lr_factor(0.0) == pytest.approx(0.0, abs=1e-9)
    assert cosine_lr_factor(WARMUP_FRACTION / 2) == pytest.approx(0.5 * (FINAL_LR_RATIO + (1 - FINAL_LR_RATIO) * 0.5
                                                                         * (1 + math.cos(math.pi * WARMUP_FRACTION / 2))))
    assert cosine_lr_factor(0.5) == pytest.approx(FINAL_LR_RATIO + (1 - FINAL_LR_RATIO) / 2)
    assert cosine_lr_factor(1.0) == pytest.approx(FINAL_LR_RATIO)
    assert cosine_lr_factor(3.0) == pytest.approx(FINAL_LR_RATIO)  # past the budget: stays at the floor
    values = [cosine_lr_factor(f / 100) for f in range(int(WARMUP_FRACTION * 100) + 1, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # decreasing after the warm-up


def test_cosine_schedule_spans_the_epochs():
    config = small(epochs=2, lr=0.01, lr_schedule="cosine", early_stop=0)
    trainer = Trainer(config, dataset(config))
    steps_per_epoch = len(trainer.task.loader)
    seen = []
    trainer.callbacks.append(lambda record: seen.append(record["lr"]))
    trainer.fit()
    last_fraction = (2 * steps_per_epoch - 1) / (2 * steps_per_epoch)  # lr is set before each update
    from rnnlab.training.loop import cosine_lr_factor
    assert seen[-1] == pytest.approx(0.01 * cosine_lr_factor(last_fraction))
    assert seen[0] > seen[-1]


def test_resume_is_exact_with_the_cosine_schedule(tmp_path):
    """Stopped at a step evaluation by a callback, resumed from the files: the same weights."""
    options = dict(sampling="sequential", optimizer="adam", dropout=0.2, epochs=3, eval_every_steps=4,
                   lr_schedule="cosine", early_stop=0)

    def stop_at_step_8(record):
        if record["step"] == 8:
            raise StopTraining
    first = Trainer(small(**options), dataset(small(**options)), out_dir=tmp_path / "run", callbacks=[stop_at_step_8])
    first.fit()
    assert first.progress.step == 8
    assert_resume_matches_straight_run(options, tmp_path / "run")


def test_a_huge_learning_rate_ends_cleanly():
    """lr 1e12: the loss explodes; the run must end in a perplexity of inf or a TrainingError,
    never an OverflowError from exp()."""
    config = small(lr=1e12, epochs=2, lr_schedule="constant", clip=None)
    trainer = Trainer(config, dataset(config))
    try:
        summary = trainer.fit()
    except TrainingError as error:
        assert "became" in str(error)
    else:
        assert summary["train_perplexity"] > 1e6 or math.isinf(summary["train_perplexity"])


def test_a_stop_request_ends_the_run_at_a_step_boundary(tmp_path, monkeypatch):
    """SIGTERM's path (rnnlab.interrupts): a request during a step is raised after it, the
    completed step is counted and saved; outside training it is raised at once."""
    from rnnlab import interrupts
    from rnnlab.checkpoint import load_config
    import rnnlab.tasks.lm as lm_task

    class Stop(KeyboardInterrupt):
        pass

    with pytest.raises(Stop):
        interrupts.stop_requested(Stop)  # not deferred: at once
    config = small(epochs=2)
    trainer = Trainer(config, dataset(config), out_dir=tmp_path / "run")
    real_loss, calls = lm_task.LanguageModelTask.loss, []

    def loss_then_signal(self, *args):
        calls.append(1)
        out = real_loss(self, *args)
        if len(calls) == 3:
            interrupts.stop_requested(Stop)  # as the handler would, in the middle of step 3
        return out

    monkeypatch.setattr(lm_task.LanguageModelTask, "loss", loss_then_signal)
    with pytest.raises(Stop):
        trainer.fit()
    assert len(calls) == 3 and trainer.progress.step == 3  # step 3 finished, step 4 never began
    saved = load_config(tmp_path / "run")
    assert saved["progress"]["step"] == 3 and saved["progress"]["stopped"] == "interrupted"
    interrupts.raise_if_requested()  # nothing left pending


def test_baselines_are_skipped_on_large_training_splits(monkeypatch):
    import rnnlab.tasks.lm as lm_task
    config = small(epochs=1)
    with_baselines = Trainer(config, dataset(config), baselines=True).fit()
    assert with_baselines["ngram_val_perplexity"] > 1 and with_baselines["ngram_order"] == 5
    monkeypatch.setattr(lm_task, "BASELINE_MAX_TOKENS", 100)
    skipped = Trainer(config, dataset(config), baselines=True).fit()
    assert skipped["ngram_val_perplexity"] is None and skipped["unigram_val_perplexity"] is None


def test_evaluation_scores_small_dtypes_and_memmaps_without_converting_them(tmp_path):
    """The validation stream is converted to int64 block by block: a uint8 array or a memmap
    gives the int64 result (tail and <unk> count included)."""
    import numpy as np

    from rnnlab.evaluation import evaluate
    from rnnlab.models import build_model
    model = build_model("gru", 30, seed=0, hidden_size=8, num_layers=1, embed_size=4)
    ids = np.random.default_rng(0).integers(0, 30, 1003).astype(np.uint8)
    path = tmp_path / "ids.bin"
    ids.tofile(path)
    memmap = np.memmap(path, dtype=np.uint8, mode="r")
    reference = evaluate(model, ids.astype(np.int64), rows=4, num_steps=16)
    assert reference["unknown_tokens"] == int((ids[1:] == 0).sum()) > 0
    for stream in (ids, memmap):
        result = evaluate(model, stream, rows=4, num_steps=16)
        assert result["nll_nats"] == pytest.approx(reference["nll_nats"], rel=1e-12)
        assert result["unknown_tokens"] == reference["unknown_tokens"] and result["tokens"] == 1002
