"""The Python API raises rnnlab's own exceptions for bad arguments (README, Python API):
:class:`UsageError` (also a ``ValueError``) for a wrong type, shape or range, :class:`DataError`
for data that cannot be used (token ids outside the vocabulary, too little text),
:class:`CheckpointError` for a folder that is not a valid checkpoint; never an
``IndexError``/``RuntimeError``/``TypeError`` from inside torch or NumPy."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.errors import CheckpointError, DataError, UsageError


@pytest.fixture(scope="module")
def lm():
    vocab = rnnlab.Vocab(list("the quick brown fox"))
    model = rnnlab.build_model("gru", len(vocab), seed=0, hidden_size=4, num_layers=1, embed_size=4)
    return rnnlab.LanguageModel(model=model, vocab=vocab)


GENERATE = [
    (dict(temperature=float("inf")), UsageError, "temperature must be > 0 (a finite number)"),
    (dict(temperature=float("nan")), UsageError, "temperature must be > 0 (a finite number)"),
    (dict(temperature=0), UsageError, "temperature must be > 0 (a finite number)"),
    (dict(temperature="hot"), UsageError, "temperature must be a number"),
    (dict(top_k=-1), UsageError, "top_k must be >= 0"),
    (dict(top_k=2.5), UsageError, "top_k must be an integer"),
    (dict(top_p=0), UsageError, "top_p must be in (0, 1]"),
    (dict(top_p=float("nan")), UsageError, "top_p must be in (0, 1]"),
    (dict(seed=-1), UsageError, "seed must be an integer from 0"),
    (dict(seed=2**63), UsageError, "seed must be an integer from 0"),
    (dict(seed="zero"), UsageError, "seed must be an integer"),
    (dict(greedy="yes"), UsageError, "greedy must be True or False"),
    (dict(length=-1), UsageError, "length must be >= 0"),
    (dict(length=2.5), UsageError, "length must be an integer"),
    (dict(prefix=5), UsageError, "prefix must be a string"),
    (dict(colour="red"), UsageError, "unknown option 'colour'"),
]


@pytest.mark.parametrize("options,error,fragment", GENERATE, ids=[repr(o) for o, _, _ in GENERATE])
def test_generation_arguments(lm, options, error, fragment):
    options = {"prefix": "the", "length": 3, **options}
    with pytest.raises(error, match=re.escape(fragment)):
        lm.generate(**options)
    if "colour" not in options:
        with pytest.raises(error):
            list(lm.stream(**options))
        with pytest.raises(error):
            lm.generate_batch(**options, num_samples=2)


def test_generate_batch_arguments(lm):
    with pytest.raises(UsageError, match="num_samples must be an integer from 1 to 100000"):
        lm.generate_batch("the", 3, num_samples=0)
    with pytest.raises(UsageError, match="seed \\+ num_samples - 1"):
        lm.generate_batch("the", 3, num_samples=2, seed=2**63 - 1)
    assert len(lm.generate_batch("the", 3, num_samples=2, seed=1)) == 2


SCORE = [
    ([0, 1, 99], DataError, "token id 99, outside"),
    ([0, -1, 2], DataError, "token id -1, outside"),
    (torch.tensor([0, 1, 99]), DataError, "token id 99, outside"),
    (np.array([0.5, 1.0]), UsageError, "integer token ids, got dtype float64"),
    (np.zeros((2, 3), dtype=np.int64), UsageError, "one-dimensional"),
    ([], DataError, "at least 2"),
    ([1], DataError, "at least 2"),
    ("", DataError, "scoring needs at least 2"),
    ([[1, 2], [3]], UsageError, "integer token ids"),
    (b"bytes", UsageError, "sequence of integer token ids"),
]


@pytest.mark.parametrize("ids,error,fragment", SCORE, ids=[f"score-{i}" for i in range(len(SCORE))])
def test_score_arguments(lm, ids, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        lm.score(ids)


def test_score_and_evaluate_options(lm):
    with pytest.raises(UsageError, match="rows must be >= 1"):
        lm.score([1, 2, 3], rows=0)
    with pytest.raises(UsageError, match="num_steps must be >= 1"):
        lm.score([1, 2, 3], num_steps=-4)
    with pytest.raises(UsageError, match="model must be an rnnlab RecurrentLM"):
        rnnlab.evaluate("model", [1, 2])
    with pytest.raises(DataError, match="outside"):
        rnnlab.evaluate(lm.model, [1, 2, len(lm.vocab)])
    assert lm.score([1, 2, 3])["tokens"] == 2


BUILD = [
    (("transformer", 5), {}, "unknown model"),
    (("gru", 0), {}, "vocab_size must be an integer from 1"),
    (("gru", "5"), {}, "vocab_size must be an integer"),
    (("gru", 5), {"hidden_size": -3}, "hidden_size must be an integer from 1"),
    (("gru", 5), {"hidden_size": 4.0}, "hidden_size must be an integer"),
    (("gru", 5), {"dropout": float("nan")}, "dropout must be in [0, 1)"),
    (("gru", 5), {"heads": 4}, "'heads' is not an option of the gru model"),
    (("gru", 5), {"tie_weights": "yes"}, "tie_weights must be True or False"),
    (("gru", 5), {"nonlinearity": "sigmoid"}, "nonlinearity must be one of tanh, relu"),
    (("rnn-scratch", 5), {"num_layers": 2}, "'num_layers' is not an option of the rnn-scratch model"),
    (("gru", 5), {"seed": -1}, "seed must be an integer from 0"),
]


@pytest.mark.parametrize("args,kwargs,fragment", BUILD, ids=[f"build-{i}" for i in range(len(BUILD))])
def test_build_model_arguments(args, kwargs, fragment):
    with pytest.raises(UsageError, match=re.escape(fragment)):
        rnnlab.build_model(*args, **kwargs)


@pytest.mark.parametrize("overrides,fragment", [
    (dict(hidden_size="8"), "--hidden must be int"),
    (dict(tie_weights=1), "tie-weights must be bool"),
    (dict(corpus=5), "corpus must be str or None"),
    (dict(lr=float("inf")), "lr must be a finite number > 0"),
    (dict(learning_rate=1), "unknown training option"),
    (dict(optimizer=["adam"]), "optimizer must be str"),
])
def test_make_config_arguments(overrides, fragment):
    with pytest.raises(UsageError, match=re.escape(fragment)):
        rnnlab.make_config(**overrides)


def test_load_of_a_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="is not a folder"):
        rnnlab.load(tmp_path / "nothing")


def test_ngram_arguments():
    from rnnlab.ngram import NGramLM
    for order in ("3", float("nan"), float("inf"), None, 2.5):
        with pytest.raises(UsageError, match="order must be an integer"):
            NGramLM(order)
    with pytest.raises(UsageError, match="smoothing must be one of"):
        NGramLM(2, ["kn"])
    with pytest.raises(UsageError, match="k must be a number"):
        NGramLM(2, "addk", k="one")
    with pytest.raises(UsageError, match="vocab_size must be an integer"):
        NGramLM(2).fit([0, 1], 2.5)
    with pytest.raises(UsageError, match="dtype float64"):
        NGramLM(2).fit(np.array([0.0, 1.0]), 3)
    model = NGramLM(2).fit([1, 2, 1, 2], 3)
    with pytest.raises(DataError, match="outside"):
        model.evaluate([1, 3])
    with pytest.raises(UsageError, match="one-dimensional"):
        model.evaluate([[1, 2], [2, 1]])
    with pytest.raises(UsageError, match="length must be >= 0"):
        model.generate([1], -1)
    with pytest.raises(UsageError, match=re.escape("temperature must be > 0 (a finite number)")):
        model.generate([1], 2, temperature=float("inf"))
    with pytest.raises(UsageError, match="seed must be"):
        model.generate([1], 2, seed=-5)
    assert len(model.generate([1], 2, seed=0)) == 2


def test_forecasting_arguments():
    from rnnlab.forecasting.models import ForecastConfig, Forecaster
    for options, fragment in [(dict(hidden="10"), "hidden must be an integer"),
                              (dict(tau=True), "tau must be an integer"),
                              (dict(model=["mlp"]), "unknown forecaster"),
                              (dict(lr=float("inf")), "lr must be > 0 (a finite number)"),
                              (dict(seed=-1), "seed must be an integer from 0")]:
        with pytest.raises(UsageError, match=re.escape(fragment)):
            Forecaster(ForecastConfig(**options))
    forecaster = Forecaster(ForecastConfig(model="linear", tau=2, epochs=1))
    with pytest.raises(UsageError, match="one-dimensional"):
        forecaster.fit(np.zeros((10, 2)))
    with pytest.raises(UsageError, match="sequence of numbers"):
        forecaster.fit(["a", "b"])
    with pytest.raises(UsageError, match="a sequence of numbers, got a str"):
        forecaster.fit("1 2 3")
    series = np.sin(np.arange(40) / 3)
    forecaster.fit(series)
    with pytest.raises(UsageError, match="origin must be an integer from 0 to 40"):
        forecaster.predict(series, 2, origin=41)
    with pytest.raises(UsageError, match="steps must be >= 1"):
        forecaster.predict(series, 0)
    with pytest.raises(UsageError, match="origin must be an integer"):
        forecaster.predict_paths(series, [3.5], 2)
    assert forecaster.predict(series, 2).shape == (2,)


# ----------------------------------------------------------------------------------
# the data and loading entry points (issue 18's hostile holes)

TEXT_API = [
    (lambda: rnnlab.load(None), UsageError, "the checkpoint folder must be a path (a str or os.PathLike), got NoneType"),
    (lambda: rnnlab.load(3), UsageError, "got int"),
    (lambda: rnnlab.preprocess(None), UsageError, "text must be a string, got a NoneType"),
    (lambda: rnnlab.preprocess(b"abc", mode="raw"), UsageError, "text must be a string, got a bytes"),
    (lambda: rnnlab.tokenize("abc", mode="nonsense"), UsageError, "unknown mode 'nonsense'; choose one of d2l, raw"),
    (lambda: rnnlab.tokenize(None), UsageError, "segments must be a string or a list of strings, got a NoneType"),
    (lambda: rnnlab.tokenize(["a", 1], token="word"), UsageError, "a list holding a int"),
    (lambda: rnnlab.detokenize(None), UsageError, "tokens must be a list of strings, got a NoneType"),
    (lambda: rnnlab.Vocab.load(None), UsageError, "path must be a str or os.PathLike, got NoneType"),
]


@pytest.mark.parametrize("call,error,fragment", TEXT_API, ids=[f[2][:40] for f in TEXT_API])
def test_text_and_loading_arguments(call, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        call()


def test_vocab_to_tokens_refuses_ids_outside_the_vocabulary():
    vocab = rnnlab.Vocab(list("abc"))  # <unk>, a, b, c
    for ids in ([999], [-1], 4, -1, np.array([1, 9])):
        with pytest.raises(DataError, match=r"outside \[0, 4\) \(the vocabulary size\)"):
            vocab.to_tokens(ids)  # a negative id once wrapped around to the last token
    for ids in ("ab", [1.5], [[1, 2]], True):
        with pytest.raises(UsageError):
            vocab.to_tokens(ids)
    assert vocab.to_tokens([1, 3]) == ["a", "c"] and vocab.to_tokens(2) == "b"
    assert vocab.to_tokens(torch.tensor([3, 0])) == ["c", "<unk>"] and vocab.to_tokens(np.int64(1)) == "a"
    assert vocab.to_tokens([]) == [] and vocab.to_tokens((1,)) == ["a"]


def test_vocab_load_refuses_what_is_not_a_vocabulary(tmp_path):
    good = tmp_path / "vocab.json"
    rnnlab.Vocab(list("abc")).save(good)
    assert rnnlab.Vocab.load(good) == rnnlab.Vocab(list("abc"))
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bytes.json").write_bytes(b"\xff\xfe{}")
    (tmp_path / "partial.json").write_text('{"token_freqs": [["a", 1]]}')
    (tmp_path / "folder.json").mkdir()
    for name, fragment in [("text.json", "is not JSON"), ("list.json", "holds a JSON list, not an rnnlab vocabulary"),
                           ("bytes.json", "is not valid UTF-8"), ("partial.json", "not a valid rnnlab vocabulary"),
                           ("folder.json", "Is a directory"), ("missing.json", "No such file")]:
        with pytest.raises(DataError, match=re.escape(fragment)) as caught:
            rnnlab.Vocab.load(tmp_path / name)
        assert name in str(caught.value)


def test_vocab_encode_and_sampler_arguments():
    vocab = rnnlab.Vocab(list("abc"))
    rng = np.random.default_rng(0)
    ids = np.arange(100) % 3
    for call, fragment in [
            (lambda: rnnlab.Vocab(["a"], min_freq="2"), "min_freq must be an integer, got '2'"),
            (lambda: rnnlab.Vocab(["a"], min_freq=float("nan")), "min_freq must be an integer"),
            (lambda: rnnlab.Vocab(["a"], min_freq=-1), "min_freq must be >= 0, got -1"),
            (lambda: rnnlab.Vocab(5), "tokens must be a list of string tokens"),
            (lambda: rnnlab.Vocab(["a"], reserved_tokens=5), "reserved_tokens must be a list of strings"),
            (lambda: rnnlab.encode(None, vocab), "tokens must be a text or a list of string tokens, got NoneType"),
            (lambda: rnnlab.encode(["a"], None), "vocab must be an rnnlab Vocab, got NoneType"),
            (lambda: rnnlab.encode("a b", vocab, "word"), "word encoding takes a token list"),
            (lambda: list(rnnlab.sequential_batches(ids, 2, float("nan"), rng)), "num_steps must be an integer"),
            (lambda: list(rnnlab.random_batches(ids, 2, 5, None)), "rng must be a numpy.random.Generator"),
            (lambda: list(rnnlab.random_batches(np.zeros((30, 30), dtype=int), 2, 5, rng)),
             "corpus must be a one-dimensional array of token ids"),
            (lambda: list(rnnlab.random_batches("abcdefghijklmnop", 2, 5, rng)), "one-dimensional array"),
    ]:
        with pytest.raises(UsageError, match=re.escape(fragment)):
            call()
    assert rnnlab.encode(["a", "zz"], vocab).tolist() == [1, 0]
    assert len(list(rnnlab.random_batches(ids, 2, 5, rng))) > 0


@pytest.mark.parametrize("split", ["nan,0.5,0.5", "0.5,nan,0.1", "inf,0,0", "-0.5,0.5,0.5", "0.5,0.5",
                                   "0.9,0.2,0.1", (float("nan"), 0.5, 0.5)])
def test_split_fractions_are_finite_three_and_sum_to_at_most_one(split):
    from rnnlab.data.dataset import parse_split
    with pytest.raises(UsageError, match="--split fractions must be three finite non-negative numbers"):
        parse_split(split)
    for other in (5, None, ("a", 1, 2)):
        with pytest.raises(UsageError, match="--split must be 'd2l' or three fractions"):
            parse_split(other)
    assert parse_split("0.8,0.1,0.1") == (0.8, 0.1, 0.1) and parse_split("d2l") == "d2l"
