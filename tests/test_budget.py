"""The size rule (rnnlab.training.budget): which rung a budget buys, and how a run records it."""
from __future__ import annotations

import math

import pytest

from rnnlab.errors import UsageError
from rnnlab.training.budget import LADDERS, LOOP_EFFICIENCY, MIN_STEPS, SIZES, TOKENS_PER_PARAMETER, choose, \
    count_parameters, probe_rate

MILLION = 1_000_000
# Tokens/s of each rung on the build machine (2 threads of an AVX-512-BF16 CPU without AMX,
# torch 2.13, vocabulary 100; benchmarks/sweep.py probe, benchmarks/results/rates.json).
BUILD_RATES: dict[tuple[str, str], tuple[float, ...]] = {
    ("lstm", "fp32"): (32_947, 23_358, 13_206, 7_264, 3_593),
    ("lstm", "bf16"): (47_898, 39_997, 20_454, 12_277, 5_776),
    ("gru", "fp32"): (28_714, 18_859, 13_993, 6_997, 3_729),
    ("gru", "bf16"): (28_850, 22_109, 16_336, 12_350, 6_720),
    ("mingru", "fp32"): (24_607, 14_886, 6_894, 3_884, 2_062),
    ("mingru", "bf16"): (35_517, 24_662, 12_929, 6_242, 3_674),
    ("minlstm", "fp32"): (23_122, 16_536, 6_928, 3_064, 1_761),
    ("minlstm", "bf16"): (34_114, 25_994, 11_832, 6_020, 3_220),
}


def build_machine(model, precision, asked=None):
    """A ``rate_of`` that answers with the build machine's rate of the rung (and logs the ask)."""
    ladder = LADDERS[model]

    def rate_of(options):
        index = next(k for k, rung in enumerate(ladder) if rung.options == options)
        if asked is not None:
            asked.append(index)
        return BUILD_RATES[(model, precision)][index]
    return rate_of


def rung_for(seconds, precision, model="lstm", train_tokens=MILLION, asked=None):
    """The rung the build machine's own speed buys."""
    return choose(model, "auto", 100, train_tokens, precision, max_time=seconds,
                  rate_of=build_machine(model, precision, asked))


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
    index = SIZES.index(expected)
    assert choice.predicted_rate == pytest.approx(LOOP_EFFICIENCY * BUILD_RATES[("lstm", precision)][index])
    assert choice.tokens == pytest.approx(seconds * 0.95 * choice.predicted_rate)
    assert f"{choice.predicted_rate:,.0f} tokens/s predicted" in choice.reason


def test_rungs_are_probed_smallest_first_and_only_up_to_the_first_the_budget_cannot_afford():
    asked = []
    assert rung_for(300, "bf16", asked=asked).rung.name == "small"
    assert asked == [1, 2]  # small affordable, medium not: large and xlarge never built
    asked.clear()
    rung_for(1, "fp32", asked=asked)
    assert asked == [1, 0]  # small is not affordable; tiny is probed for the plan it prints


def test_the_probe_measures_the_options_it_is_given():
    tiny, small = (dict(LADDERS["lstm"][k].options) for k in (0, 1))
    tiny.update(batch_size=4, num_steps=8)
    small.update(batch_size=4, num_steps=8, hidden_size=4 * tiny["hidden_size"])
    assert probe_rate(tiny, 50, "fp32", "cpu", steps=3) > probe_rate(small, 50, "fp32", "cpu", steps=3) > 0


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
    from rnnlab.tasks import lm_run as run
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
