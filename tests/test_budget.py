"""The size rule (rnnlab.training.budget): which rung a budget buys, and how a run records it."""
from __future__ import annotations

import math

import pytest

from rnnlab.errors import UsageError
from rnnlab.training.budget import BUILD_RATES, LADDERS, MIN_STEPS, SIZES, TOKENS_PER_PARAMETER, choose, \
    count_parameters

MILLION = 1_000_000


def rung_for(seconds, precision, model="lstm", train_tokens=MILLION):
    """The rung the build machine's own speed buys (its measured rate of the smallest rung)."""
    rate = BUILD_RATES[(model, precision)][0]
    return choose(model, "auto", 100, train_tokens, precision, max_time=seconds, rate=rate)


def test_every_ladder_has_every_size_with_a_measured_rate():
    for model, ladder in LADDERS.items():
        assert tuple(rung.name for rung in ladder) == SIZES
        for precision in ("fp32", "bf16"):
            rates = BUILD_RATES[(model, precision)]
            assert len(rates) == len(SIZES) and all(isinstance(r, (int, float)) and r > 0 for r in rates)
        sizes = [count_parameters(rung.options, 100) for rung in ladder]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), model  # each rung is larger


@pytest.mark.parametrize("seconds, precision, expected", [
    (100, "fp32", "tiny"),    # 2 x 256 buys 2.5 tokens/parameter and only ~1,080 steps in float32
    (100, "bf16", "tiny"),    # 2 x 256 buys 4.3 tokens/parameter
    (300, "bf16", "small"),
    (1200, "bf16", "medium"),  # 2 x 512 would buy 4.2 tokens/parameter
    (1200, "fp32", "medium"),
])
def test_the_build_machine_budgets_buy_the_rungs_the_sweeps_chose(seconds, precision, expected):
    choice = rung_for(seconds, precision)
    assert choice.rung.name == expected, choice.reason
    assert f"budget {seconds:g} s" in choice.reason and precision in choice.reason
    assert choice.tokens >= TOKENS_PER_PARAMETER * choice.parameters


def test_larger_budgets_never_buy_smaller_models():
    for model in LADDERS:
        for precision in ("fp32", "bf16"):
            sizes = [SIZES.index(rung_for(s, precision, model).rung.name) for s in (1, 30, 100, 300, 1200, 3600, 1e6)]
            assert sizes == sorted(sizes) and sizes[0] == 0 and sizes[-1] == len(SIZES) - 1, (model, precision)


def test_a_rung_needs_enough_steps_as_well_as_tokens():
    # 5 epochs of a 100M-token corpus are plenty of tokens for any rung, but 1,000 steps are not.
    choice = choose("lstm", "auto", 100, 100 * MILLION, "bf16", epochs=5, max_steps=MIN_STEPS - 1)
    assert choice.rung.name == "tiny"
    choice = choose("lstm", "auto", 100, 100 * MILLION, "bf16", epochs=5, max_steps=100 * MIN_STEPS)
    assert choice.rung.name == "xlarge"
    # A tiny corpus for 20 epochs buys the smallest rung, however many steps.
    assert choose("lstm", "auto", 100, 10_000, "bf16", epochs=20).rung.name == "tiny"
    assert math.isinf(choose("lstm", "auto", 100, 10_000, "bf16").tokens)  # no budget: the largest


def test_given_options_win_and_size_takes_a_rung_by_name():
    choice = choose(None, "large", 100, 1000, "fp32", epochs=1, given={"hidden_size": 100})
    assert choice.rung.name == "large" and "hidden_size" not in choice.options
    assert choice.options["num_steps"] == 100 and choice.parameters == count_parameters(
        {**LADDERS["lstm"][3].options, "hidden_size": 100}, 100)
    with pytest.raises(UsageError, match="size"):
        choose(None, "huge", 100, 1000, "fp32", epochs=1)
    with pytest.raises(UsageError, match="--size applies to"):
        choose("rnn", "small", 100, 1000, "fp32", epochs=1)


def test_make_config_leaves_the_given_options_to_the_user(tmp_path):
    from rnnlab.training import run
    from rnnlab.training.config import make_config
    corpus = tmp_path / "text.txt"
    corpus.write_text("abcdefgh " * 2000)
    config = make_config(corpus=str(corpus), hidden_size=32, max_steps=3, sample_length=0)
    assert "hidden_size" not in config.rule_fields.split(",") and "lr" in config.rule_fields.split(",")
    _, summary = run.train(config, baselines=False)
    assert config.hidden_size == 32 and config.rule_fields == "" and "tiny" in config.size_rule  # 3 steps
    assert summary["size_rule"] == config.size_rule
    assert summary["val_nats_per_char"] == pytest.approx(summary["val_bits_per_token"] * math.log(2))
    assert make_config(preset="d2l-scratch").rule_fields == ""  # the book's runs are the book's sizes
