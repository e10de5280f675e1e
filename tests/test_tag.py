"""Sequence tagging: CoNLL reading (IOB1/IOB2/IOBES), conlleval's entity F1 (by hand and
against seqeval), padding invariance, the ambiguous-token context task, the CLI and bad inputs."""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import torch

from rnnlab.cli import main
from rnnlab.data.labelled import TaggedSentence, iob1_to_iob2, read_conll
from rnnlab.errors import DataError, UsageError
from rnnlab.tasks.loop import FitOptions, fit
from rnnlab.tasks.metrics import entities, tagging_report
from rnnlab.tasks.synthetic import AMBIGUOUS, ambiguous_entities, write_conll
from rnnlab.tasks.tag import TaggingTask

SMALL = dict(embed_size=24, hidden_size=32, char_embed_size=8, char_hidden_size=8, dropout=0.2)


# ----------------------------------------------------------------------------------
# tags and entities


def test_entities_follow_conlleval_boundaries():
    assert entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert entities(["O", "I-PER", "I-PER", "O"]) == [("PER", 1, 2)]  # I after O starts an entity
    assert entities(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 2)]  # a type change starts one
    assert entities(["B-PER", "B-PER", "I-PER"]) == [("PER", 0, 0), ("PER", 1, 2)]
    assert entities(["S-PER", "B-LOC", "I-LOC", "E-LOC", "E-LOC"]) == [("PER", 0, 0), ("LOC", 1, 3), ("LOC", 4, 4)]
    assert entities(["O", "O"]) == []


def test_iob1_becomes_iob2():
    assert iob1_to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]) == \
        ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]
    assert iob1_to_iob2(iob2) == iob2


def test_hand_worked_scores_from_an_iob1_file(tmp_path):
    # IOB1 gold, as CoNLL-2003 was distributed: entities begin with I- unless they follow one of their type.
    path = tmp_path / "gold.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\n"
                    "John NNP B-NP I-PER\nSmith NNP I-NP I-PER\nvisited VBD B-VP O\nNew NNP B-NP I-LOC\n"
                    "York NNP I-NP I-LOC\n\n"
                    "Anna NNP B-NP I-PER\nBen NNP I-NP B-PER\nsaw VBD B-VP O\nParis NNP B-NP I-LOC\n\n")
    gold = read_conll(path)
    assert [s.tags for s in gold] == [("B-PER", "I-PER", "O", "B-LOC", "I-LOC"), ("B-PER", "B-PER", "O", "B-LOC")]
    assert gold[1].line == 9 and gold[0].tokens[0] == "John"
    # Predicted: John Smith right; New York typed ORG (wrong); Anna and Ben merged into one (wrong); Paris right.
    predicted = [["B-PER", "I-PER", "O", "B-ORG", "I-ORG"], ["B-PER", "I-PER", "O", "B-LOC"]]
    report = tagging_report([s.tags for s in gold], predicted)
    # gold entities 5 (PER John Smith, LOC New York, PER Anna, PER Ben, LOC Paris); predicted 4; correct 2
    assert report["entities"] == 5 and report["predicted_entities"] == 4
    assert report["entity_precision"] == pytest.approx(2 / 4)
    assert report["entity_recall"] == pytest.approx(2 / 5)
    assert report["entity_f1"] == pytest.approx(2 * 0.5 * 0.4 / 0.9)
    assert report["per_type"]["PER"]["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert report["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 1}
    assert report["token_accuracy"] == pytest.approx(6 / 9)  # New York's two tags and Ben's are wrong


def test_scores_match_seqeval_default_mode():
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.metrics.sequence_labeling import get_entities
    rng = random.Random(0)
    vocabulary = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-LOC", "S-PER", "I-ORG"]
    gold, predicted = [], []
    for _ in range(300):
        length = rng.randint(1, 12)
        gold.append([rng.choice(vocabulary) for _ in range(length)])
        # mostly right, some noise: invalid sequences (I- after O, E- without B-) included on purpose
        predicted.append([tag if rng.random() < 0.7 else rng.choice(vocabulary) for tag in gold[-1]])
    for tags in gold + predicted:
        assert entities(tags) == get_entities(tags)
    report = tagging_report(gold, predicted)
    assert report["entity_precision"] == pytest.approx(seqeval.precision_score(gold, predicted))
    assert report["entity_recall"] == pytest.approx(seqeval.recall_score(gold, predicted))
    assert report["entity_f1"] == pytest.approx(seqeval.f1_score(gold, predicted))
    theirs = seqeval.classification_report(gold, predicted, output_dict=True)
    for kind, scores in report["per_type"].items():
        if scores["support"]:
            assert scores["f1"] == pytest.approx(theirs[kind]["f1-score"])
            assert scores["precision"] == pytest.approx(theirs[kind]["precision"])


# ----------------------------------------------------------------------------------
# the model


def test_padding_never_changes_a_tag_score():
    sentences = ambiguous_entities(20, seed=3)
    task = TaggingTask.from_examples(sentences)
    model = task.build_model(seed=0, **SMALL).eval()
    short = min(sentences, key=lambda s: len(s.tokens))
    longer = sorted(sentences, key=lambda s: -len(s.tokens))[:5]
    assert len(longer[0].tokens) > len(short.tokens)

    def logits(batch_sentences):
        batch = next(task.batches(batch_sentences, len(batch_sentences)))  # longest first
        with torch.no_grad():
            out = task._logits(model, batch)
        return out[batch["indices"].index(len(batch_sentences) - 1), :len(short.tokens)]

    alone = logits([short])
    together = logits(longer + [short])
    assert torch.allclose(alone, together, atol=1e-6, rtol=0)


def _most_frequent_tag_per_word(train):
    """The best a model that sees one token at a time can do: the majority tag of each word."""
    counts: dict[str, Counter] = {}
    for sentence in train:
        for token, tag in zip(sentence.tokens, sentence.tags):
            counts.setdefault(token, Counter())[tag] += 1
    return lambda token: counts[token].most_common(1)[0][0] if token in counts else "O"


def test_bidirectional_tagger_resolves_the_ambiguous_token_from_context():
    train, val, test = ambiguous_entities(400, seed=0), ambiguous_entities(100, seed=1), ambiguous_entities(200, seed=2)
    task = TaggingTask.from_examples(train)
    model = task.build_model(seed=0, **SMALL)
    fit(task, model, train, val, FitOptions(epochs=10, batch_size=16, lr=5e-3, early_stop=3))
    report = task.evaluate(model, test)
    assert report["entity_f1"] >= 0.95, report
    predicted = task.predict_tags(model, test)
    apple = [(tag, gold) for s, p in zip(test, predicted) for token, tag, gold in zip(s.tokens, p, s.tags)
             if token == AMBIGUOUS]
    assert sum(tag == gold for tag, gold in apple) / len(apple) >= 0.95
    # one token at a time: the ambiguous word gets one tag whatever its context, right about half the time
    lookup = _most_frequent_tag_per_word(train)
    baseline = tagging_report([s.tags for s in test], [[lookup(t) for t in s.tokens] for s in test])
    baseline_apple = [lookup(AMBIGUOUS) == gold for _, gold in apple]
    assert sum(baseline_apple) / len(baseline_apple) <= 0.6
    assert baseline["entity_f1"] < 0.9 < report["entity_f1"]


# ----------------------------------------------------------------------------------
# the CLI and bad inputs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tag")
    write_conll(ambiguous_entities(300, seed=0), folder / "train.conll")
    write_conll(ambiguous_entities(80, seed=1), folder / "dev.conll")
    write_conll(ambiguous_entities(100, seed=2), folder / "test.conll")
    out = folder / "model"
    assert main(["-q", "tag", "train", "--data", str(folder / "train.conll"), "--val", str(folder / "dev.conll"),
                 "--out", str(out), "--epochs", "8", "--lr", "5e-3", "--hidden-size", "32", "--embed-size", "24",
                 "--char-size", "8", "--dropout", "0.2"]) == 0
    return folder, out


def test_cli_train_eval_predict_round_trip(trained, capsys):
    folder, out = trained
    capsys.readouterr()
    assert main(["-q", "tag", "eval", str(out), "--data", str(folder / "test.conll"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["entity_f1"] >= 0.9 and report["sentences"] == 100
    # the checkpoint reloads to the same predictions
    from rnnlab.tasks.base import load_task
    task, model, config = load_task(out, TaggingTask)
    sentences = read_conll(folder / "test.conll")
    assert task.evaluate(model, sentences)["entity_f1"] == pytest.approx(report["entity_f1"])
    assert config["progress"]["best_epoch"] >= 1
    assert main(["-q", "tag", "predict", str(out), "anna chen works for apple", "--json"]) == 0
    pairs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"][0]
    assert [token for token, _ in pairs] == ["anna", "chen", "works", "for", "apple"]
    assert main(["-q", "tag", "predict", str(out), "--data", str(folder / "test.conll")]) == 0
    assert capsys.readouterr().out.count("\n\n") == 99  # a blank line between 100 sentences
    # an existing run is never overwritten silently
    assert main(["-q", "tag", "train", "--data", str(folder / "train.conll"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_unseen_tag_in_the_eval_file(trained, tmp_path, capsys):
    _, out = trained
    path = tmp_path / "other.conll"
    path.write_text("anna B-PER\nchen I-PER\n\nrome B-GPE\n")
    assert main(["-q", "tag", "eval", str(out), "--data", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 4" in err and "'B-GPE'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("\n-DOCSTART- O\n\n", "no sentences"),
    ("John NNP B-PER\nSmith I-PER\n", "line 2: 2 columns, expected 3"),
    ("John\n", "line 1: one column"),
    ("John B-PER\nSmith NNP\n", "line 2: tag 'NNP' has no B-/I-/E-/S- prefix but line 1 has 'B-PER'"),
])
def test_bad_conll_files(tmp_path, text, message):
    path = tmp_path / "bad.conll"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        read_conll(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_sentence_over_the_limit_and_tag_column(tmp_path):
    path = tmp_path / "long.conll"
    path.write_text("".join(f"w{i} NN O\n" for i in range(7)) + "\nx VB O\n")
    with pytest.raises(DataError, match="line 1: a sentence of more than 5 tokens"):
        read_conll(path, max_tokens=5)
    with pytest.raises(DataError, match="no column 5"):
        read_conll(path, tag_col=5)
    assert read_conll(path, tagged=False)[1] == TaggedSentence(("x",), ("O",), 9)


def test_resume_is_exact(tmp_path):
    """k epochs (cut mid-epoch by the time budget) + resume + the rest == all epochs in one go."""
    train = ambiguous_entities(120, seed=0)
    options = dict(batch_size=8, lr=5e-3, seed=3)

    def fresh():
        task = TaggingTask.from_examples(train)
        return task, task.build_model(seed=0, **SMALL)

    task, model = fresh()
    fit(task, model, train, None, FitOptions(epochs=3, **options), out_dir=tmp_path / "whole")
    task, model = fresh()
    first = fit(task, model, train, None, FitOptions(epochs=3, max_time=1e-9, **options), out_dir=tmp_path / "cut")
    assert first["stopped"] == "max_time" and first["steps"] == 1  # cut after the first batch
    from rnnlab.tasks.base import load_task
    task, model, _ = load_task(tmp_path / "cut", TaggingTask)
    second = fit(task, model, train, None, FitOptions(epochs=3, **options), out_dir=tmp_path / "cut", resume=True)
    assert second["stopped"] == "epochs" and second["steps"] == 3 * 15
    _, whole, _ = load_task(tmp_path / "whole", TaggingTask)
    for name, value in whole.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name


# ----------------------------------------------------------------------------------
# the CRF output layer


def test_crf_matches_brute_force_over_all_paths():
    import itertools

    from rnnlab.tasks.models import CRF
    torch.manual_seed(0)
    crf = CRF(3)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])  # the second sequence has 3 tokens
    tags = torch.tensor([[0, 2, 1, 1], [2, 0, 1, -100]])
    nll = crf.neg_log_likelihood(emissions, tags, mask)
    paths = crf.decode(emissions, mask)
    for row, length in enumerate([4, 3]):
        def score(path):
            total = crf.start[path[0]] + crf.end[path[-1]] + sum(emissions[row, t, k] for t, k in enumerate(path))
            return total + sum(crf.transitions[a, b] for a, b in zip(path, path[1:]))
        every = {path: score(path).item() for path in itertools.product(range(3), repeat=length)}
        log_z = torch.logsumexp(torch.tensor(list(every.values())), 0).item()
        gold = tuple(tags[row, :length].tolist())
        assert nll[row].item() == pytest.approx(log_z - every[gold], abs=1e-5)
        assert tuple(paths[row]) == max(every, key=every.get)


def test_crf_tagger_padding_invariance_and_context():
    train, test = ambiguous_entities(300, seed=0), ambiguous_entities(100, seed=2)
    task = TaggingTask.from_examples(train)
    model = task.build_model(seed=0, crf=True, **SMALL).eval()
    short = min(test, key=lambda s: len(s.tokens))
    longer = sorted(test, key=lambda s: -len(s.tokens))[:5]
    assert task.predict_tags(model, [short]) == task.predict_tags(model, longer + [short])[-1:]
    mask = torch.tensor([[True] * len(short.tokens)])
    batch = next(task.batches([short], 1))
    alone = model.crf.neg_log_likelihood(task._logits(model, batch), batch["tags"], mask)
    together_batch = next(task.batches(longer + [short], 6))
    row = together_batch["indices"].index(5)
    together = model.crf.neg_log_likelihood(task._logits(model, together_batch), together_batch["tags"],
                                            together_batch["tags"] != -100)[row]
    assert torch.allclose(alone[0], together, atol=1e-5)
    fit(task, model, train, None, FitOptions(epochs=6, batch_size=16, lr=5e-3))
    assert task.evaluate(model, test)["entity_f1"] >= 0.95


def test_plain_tags_parts_of_speech(tmp_path):
    path = tmp_path / "pos.conll"
    sentences = [("the DT", "cat NN", "sat VBD"), ("a DT", "dog NN", "ran VBD", "home NN")] * 40
    path.write_text("\n\n".join("\n".join(s) for s in sentences) + "\n")
    read = read_conll(path)
    assert read[1].tags == ("DT", "NN", "VBD", "NN")  # no IOB conversion of plain tags
    task = TaggingTask.from_examples(read)
    assert task.metric == ("token_accuracy", "max")
    model = task.build_model(seed=0, **SMALL)
    fit(task, model, read, None, FitOptions(epochs=3, batch_size=8, lr=1e-2))
    assert task.evaluate(model, read)["token_accuracy"] == 1.0


def _names_or_words(seed: int, count: int, pool_seed: int) -> list[TaggedSentence]:
    """One slot per sentence: a capitalised name (B-PER) or a lowercase word (O), in the same contexts."""
    letters = random.Random(pool_seed)
    pool = ["".join([letters.choice("BCDFGKLMNPRST")] + [letters.choice("aeiou") + letters.choice("lnrstk")
                                                          for _ in range(letters.randint(1, 3))]) for _ in range(40)]
    templates = ["yesterday {} went home", "we met {} at the station", "{} said nothing", "ask {} about it"]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        name = rng.random() < 0.5
        word = rng.choice(pool) if name else rng.choice(pool).lower()
        tokens = rng.choice(templates).format(word).split()
        out.append(TaggedSentence(tuple(tokens), tuple("B-PER" if t == word and name else "O" for t in tokens), 0))
    return out


def test_character_encoder_tags_unseen_words_by_their_spelling():
    # test names and words come from another pool than training's: every one is unseen, only the
    # spelling (a capital) tells a name from a word; without characters all are <unk>
    train, test = _names_or_words(0, 300, pool_seed=1), _names_or_words(2, 200, pool_seed=3)
    scores = {}
    for chars in (25, 0):
        task = TaggingTask.from_examples(train)
        model = task.build_model(seed=0, embed_size=24, hidden_size=32, char_embed_size=chars,
                                 char_hidden_size=chars, dropout=0.2)
        fit(task, model, train, None, FitOptions(epochs=10, batch_size=16, lr=5e-3))
        scores[chars] = task.evaluate(model, test)["entity_f1"]
    assert scores[25] >= 0.85 and scores[25] > scores[0] + 0.1, scores


@pytest.mark.parametrize("key, value, fragment", [
    ("model.hidden_size", float("nan"), "key 'model.hidden_size' must be an integer from 1 to 1048576, got NaN"),
    ("model.crf", "false", "key 'model.crf' must be True or False, got \"false\""),
    ("model.char_embed_size", -1, "key 'model.char_embed_size' must be an integer from 0"),
    ("model.num_tags", 9, "key 'model.num_tags' is 9, but task.tags has"),
    ("task.lowercase", "false", "key 'task.lowercase' must be true or false"),
    ("task.tags", ["O", "O"], "key 'task.tags' lists 'O' twice; every tag must be distinct"),
    ("task.words", ["a", "b"], "key 'task.words' must be a list of strings starting with '<pad>', '<unk>'"),
    ("task.unk_replace", 2, "key 'task.unk_replace' must be a number from 0 to 1, got 2"),
])
def test_a_forged_tagger_config_is_one_checkpoint_error(tmp_path, key, value, fragment):
    import re

    from test_hostile_checkpoints import edit_config

    from rnnlab.errors import CheckpointError
    from rnnlab.tasks.base import load_task, save_task
    sentences = [TaggedSentence(("Ann", "sees", "Bob"), ("B-PER", "O", "B-PER"), 1),
                 TaggedSentence(("a", "b"), ("O", "O"), 5)]
    task = TaggingTask.from_examples(sentences)
    save_task(tmp_path / "tgr", task, task.build_model(seed=0, embed_size=4, hidden_size=4, char_embed_size=2,
                                                         char_hidden_size=2))
    load_task(tmp_path / "tgr", TaggingTask)  # the unedited folder loads
    edit_config(tmp_path / "tgr", key, value)
    with pytest.raises(CheckpointError, match=re.escape(fragment)):
        load_task(tmp_path / "tgr", TaggingTask)


def test_character_sizes_are_bounded_before_allocation():
    task = TaggingTask.from_examples([TaggedSentence(("a",), ("O",), 1)])
    with pytest.raises(UsageError, match="char_embed_size must be an integer from 1 to 1048576"):
        task.build_model(char_embed_size=10**11, char_hidden_size=10**11)
